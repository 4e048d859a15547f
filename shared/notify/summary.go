package notify

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/units"
)

// SummaryVersion is the version of the Summary schema; it grows only with an incompatible change.
const SummaryVersion = 1

// Summary is one run's summary for machines: what the generic webhook POSTs, and what the
// readable text is written from. Its schema (every key always present, except where omitempty):
//
//	version          1
//	subject          the one-line summary (Subject)
//	status           "SUCCEEDED" or "FAILED"
//	kind             "backup" or "restore"
//	dryRun           a dry run copies nothing
//	execution        the execution name
//	error, cause     the execution's error name and cause ("" when it succeeded)
//	source, backup   the buckets; target, targetPrefix for a restore; prefix the run's selection
//	startedAt, finishedAt  RFC 3339 times
//	durationSeconds  finishedAt − startedAt
//	counts           listed, new, changed, unchanged, copied, deleted, failed, skipped,
//	                 alreadyPresent, deletionsWithheld (as in report.json)
//	bytes            bytes copied; bytesPerSecond their rate over the run
//	guards           each backup guard's count, limit and headroom (Guard)
//	failures         the first DefaultFailuresShown failures: key, op, error
//	failuresMore     how many more failures report.json names
//	cost             report.json's cost
//	links            execution (Step Functions console, on AWS), report (s3:// URI),
//	                 reportConsole (S3 console, on AWS), console (the restore console's page of the run)
type Summary struct {
	Version         int     `json:"version"`
	Subject         string  `json:"subject"`
	Status          string  `json:"status"`
	Kind            string  `json:"kind"`
	DryRun          bool    `json:"dryRun"`
	Execution       string  `json:"execution"`
	Error           string  `json:"error"`
	Cause           string  `json:"cause"`
	Source          string  `json:"source"`
	Backup          string  `json:"backup"`
	Target          string  `json:"target,omitempty"`
	TargetPrefix    string  `json:"targetPrefix,omitempty"`
	Prefix          string  `json:"prefix"`
	StartedAt       string  `json:"startedAt"`
	FinishedAt      string  `json:"finishedAt"`
	DurationSeconds float64 `json:"durationSeconds"`
	Counts          Counts  `json:"counts"`
	Bytes           int64   `json:"bytes"`
	BytesPerSecond  float64 `json:"bytesPerSecond"`
	Guards          []Guard `json:"guards"`
	// Destinations are a backup's further destinations: each one's counts and what went wrong.
	Destinations []Destination `json:"destinations"`
	// MostChanged are the folders with the most new, changed and deleted keys (backup).
	MostChanged  []report.FolderChanges `json:"mostChanged"`
	Failures     []report.Failure       `json:"failures"`
	FailuresMore int64                  `json:"failuresMore"`
	Cost         report.Cost            `json:"cost"`
	Links        Links                  `json:"links"`
}

// Destination is one further destination's line in a summary.
type Destination struct {
	Name    string `json:"name"`
	Bucket  string `json:"bucket"`
	Copied  int64  `json:"copied"`
	Deleted int64  `json:"deleted"`
	Failed  int64  `json:"failed"`
	Problem string `json:"problem,omitempty"`
}

// Counts are a run's object counts, as report.json has them.
type Counts struct {
	Listed            int64 `json:"listed"`
	New               int64 `json:"new"`
	Changed           int64 `json:"changed"`
	Unchanged         int64 `json:"unchanged"`
	Copied            int64 `json:"copied"`
	Deleted           int64 `json:"deleted"`
	Failed            int64 `json:"failed"`
	Skipped           int64 `json:"skipped"`
	AlreadyPresent    int64 `json:"alreadyPresent"`
	DeletionsWithheld int64 `json:"deletionsWithheld"`
}

// Guard is a backup guard's verdict with its headroom: Allowed is how many the run could have
// touched without tripping it (the larger of the floor and MaxPercent of Of), Headroom how many
// more than Count (negative when tripped).
type Guard struct {
	Name       string  `json:"name"`
	Count      int64   `json:"count"`
	Of         int64   `json:"of"`
	Percent    float64 `json:"percent"`
	MaxPercent float64 `json:"maxPercent"`
	Floor      int64   `json:"floor"`
	Allowed    int64   `json:"allowed"`
	Headroom   int64   `json:"headroom"`
	Tripped    bool    `json:"tripped"`
}

// Links point a person to the run.
type Links struct {
	Execution     string `json:"execution,omitempty"`
	Report        string `json:"report"`
	ReportConsole string `json:"reportConsole,omitempty"`
	Console       string `json:"console,omitempty"`
}

// Place is where the run ran, for its links.
type Place struct {
	// Region and Account of the state machine; both empty off AWS (no console links).
	Region, Account string
	// StateMachine is the state machine's name.
	StateMachine string
	// RunBucket holds report.json.
	RunBucket string
	// ConsoleURL is the restore console's base URL, when one is deployed.
	ConsoleURL string
}

// Build summarises a report. failures are the first failures (report.json names them all).
func Build(r report.Report, failures []report.Failure, p Place) Summary {
	kind := "backup"
	if r.RestoredAt != "" {
		kind = "restore"
	}
	s := Summary{
		Version: SummaryVersion, Status: r.Status, Kind: kind, DryRun: r.DryRun, Execution: r.Execution,
		Error: r.Error, Cause: r.Cause, Source: r.SourceBucket, Backup: r.BackupBucket,
		Target: r.TargetBucket, TargetPrefix: r.TargetPrefix, Prefix: r.Prefix,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		Counts: Counts{Listed: r.Listed, New: r.New, Changed: r.Changed, Unchanged: r.Unchanged,
			Copied: r.Copied, Deleted: r.Deleted, Failed: r.Failed, Skipped: r.Skipped,
			AlreadyPresent: r.AlreadyPresent, DeletionsWithheld: r.Withheld},
		Bytes: r.BytesCopied, Guards: []Guard{}, Destinations: []Destination{}, Failures: []report.Failure{}, Cost: r.Cost,
		MostChanged: r.MostChanged,
	}
	if s.MostChanged == nil {
		s.MostChanged = []report.FolderChanges{}
	}
	start, err1 := time.Parse(time.RFC3339, r.StartedAt)
	end, err2 := time.Parse(time.RFC3339, r.FinishedAt)
	if err1 == nil && err2 == nil && end.After(start) {
		s.DurationSeconds = round(end.Sub(start).Seconds(), 3)
		s.BytesPerSecond = round(float64(r.BytesCopied)/end.Sub(start).Seconds(), 1)
	}
	for _, g := range r.Guards {
		allowed := max(g.Floor, int64(math.Floor(g.MaxPercent*float64(g.Of)/100)))
		s.Guards = append(s.Guards, Guard{Name: g.Name, Count: g.Count, Of: g.Of, Percent: g.Percent,
			MaxPercent: g.MaxPercent, Floor: g.Floor, Allowed: allowed, Headroom: allowed - g.Count, Tripped: g.Tripped})
	}
	for _, f := range failures[:min(len(failures), DefaultFailuresShown)] {
		s.Failures = append(s.Failures, f.Short())
	}
	failed := r.Failed
	for i := range r.Destinations {
		d := &r.Destinations[i]
		failed += d.Failed
		s.Destinations = append(s.Destinations, Destination{Name: d.Name, Bucket: d.Bucket, Copied: d.Copied, Deleted: d.Deleted, Failed: d.Failed,
			Problem: report.Shorten(d.Problem(), report.MaxTextInOutput)})
	}
	s.FailuresMore = max(0, failed-int64(len(s.Failures)))
	s.Links.Report = fmt.Sprintf("s3://%s/%s", p.RunBucket, r.ReportKey)
	if p.Region != "" && p.Account != "" && p.StateMachine != "" {
		arn := fmt.Sprintf("arn:%s:states:%s:%s:execution:%s:%s", partition(p.Region), p.Region, p.Account, p.StateMachine, r.Execution)
		s.Links.Execution = fmt.Sprintf("https://%s.console.aws.amazon.com/states/home?region=%s#/v2/executions/details/%s", p.Region, p.Region, arn)
		s.Links.ReportConsole = fmt.Sprintf("https://s3.console.aws.amazon.com/s3/object/%s?region=%s&prefix=%s", p.RunBucket, p.Region, r.ReportKey)
	}
	if p.ConsoleURL != "" {
		s.Links.Console = strings.TrimRight(p.ConsoleURL, "/") + "/runs/" + r.Execution
	}
	s.Subject = subject(s)
	return s
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// subject is the one-line summary, at most MaxSubjectRunes characters (SNS takes fewer than 100).
func subject(s Summary) string {
	mark, what := "✔", s.Kind
	if s.Status != report.Succeeded {
		mark = "✘"
	}
	if s.DryRun {
		what = "dry run of " + what
	}
	where := s.Source
	if s.Kind == "restore" {
		where = s.Backup + " to " + s.Target
	}
	failed := ""
	if s.Status != report.Succeeded {
		failed = s.Error + ", "
	}
	line := fmt.Sprintf("%s %s of %s: %s%s copied, %s deleted, %s failed (%s, %s)", mark, what, where, failed,
		Count(s.Counts.Copied), Count(s.Counts.Deleted), Count(s.Counts.Failed), units.Bytes(s.Bytes), Duration(s.DurationSeconds))
	return clip(line, MaxSubjectRunes)
}

// clip cuts s to at most n characters, marking the cut with "…", and removes control characters.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// Count renders n with thousands separators: 1,204.
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Duration renders seconds for people: 0.4 s, 12 s, 4 m 12 s, 2 h 5 m.
func Duration(sec float64) string {
	switch {
	case sec < 10:
		return strconv.FormatFloat(round(sec, 1), 'f', -1, 64) + " s"
	case sec < 60:
		return fmt.Sprintf("%d s", int64(math.Round(sec)))
	case sec < 3600:
		t := int64(math.Round(sec))
		return fmt.Sprintf("%d m %d s", t/60, t%60)
	}
	t := int64(math.Round(sec / 60))
	return fmt.Sprintf("%d h %d m", t/60, t%60)
}

func round(f float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(f*p) / p
}

// Text is the summary for a person: the e-mail body of the SNS message, and the chat message.
func (s Summary) Text() string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("%s", s.Subject)
	line("")
	switch {
	case s.Status == report.Succeeded:
		line("The %s %s succeeded.", s.Kind, s.Execution)
	default:
		line("The %s %s FAILED: %s", s.Kind, s.Execution, s.Error)
		if s.Cause != "" {
			line("  %s", report.Shorten(s.Cause, 1024))
		}
	}
	line("")
	if s.Kind == "restore" {
		line("From:      s3://%s as of the run's moment, to s3://%s/%s", s.Backup, s.Target, s.TargetPrefix)
	} else {
		line("From:      s3://%s/%s  to  s3://%s", s.Source, s.Prefix, s.Backup)
	}
	line("Started:   %s, finished %s (%s)", s.StartedAt, s.FinishedAt, Duration(s.DurationSeconds))
	line("Objects:   %s listed: %s new, %s changed, %s unchanged", Count(s.Counts.Listed), Count(s.Counts.New), Count(s.Counts.Changed), Count(s.Counts.Unchanged))
	line("Done:      %s copied, %s deleted, %s failed, %s skipped, %s already present, %s deletions withheld",
		Count(s.Counts.Copied), Count(s.Counts.Deleted), Count(s.Counts.Failed), Count(s.Counts.Skipped), Count(s.Counts.AlreadyPresent), Count(s.Counts.DeletionsWithheld))
	line("Bytes:     %s copied at %s/s", units.Bytes(s.Bytes), units.Bytes(int64(s.BytesPerSecond)))
	for _, d := range s.Destinations {
		state := "complete"
		if d.Problem != "" {
			state = d.Problem
		}
		line("Copy:      %s (s3://%s): %s copied, %s deleted, %s failed: %s", d.Name, d.Bucket, Count(d.Copied), Count(d.Deleted), Count(d.Failed), state)
	}
	for _, g := range s.Guards {
		state := fmt.Sprintf("headroom %s", Count(g.Headroom))
		if g.Tripped {
			state = "TRIPPED"
		}
		line("Guard:     %s: %s of %s (%.1f%%), limit %g%% or %s at least (%s allowed): %s",
			g.Name, Count(g.Count), Count(g.Of), g.Percent, g.MaxPercent, Count(g.Floor), Count(g.Allowed), state)
	}
	for i, f := range s.MostChanged {
		head := "Changes:  "
		if i > 0 {
			head = "          "
		}
		folder := f.Folder
		if folder == "" {
			folder = "(top level)"
		}
		line("%s %s: %s (%s new, %s changed, %s deleted)", head, folder, Count(f.Total()), Count(f.New), Count(f.Changed), Count(f.Deleted))
	}
	if len(s.Failures) > 0 {
		line("")
		line("Failures:")
		for _, f := range s.Failures {
			if f.Destination != "" {
				line("  %s %s to %s: %s", f.Op, f.Key, f.Destination, f.Error)
				continue
			}
			line("  %s %s: %s", f.Op, f.Key, f.Error)
		}
		if s.FailuresMore > 0 {
			line("  … and %s more, every one named in %s", Count(s.FailuresMore), s.Links.Report)
		}
	}
	c := s.Cost
	line("")
	line("Cost:      ≈ $%.4f (%s LIST, %s PUT/COPY, %s GET, %s DELETE requests; %.1f Lambda GB-s; %s state transitions; %s list prices, estimated)",
		c.USD, Count(c.Requests.List), Count(c.Requests.Put), Count(c.Requests.Get), Count(c.Requests.Delete),
		c.LambdaGBSeconds, Count(c.StateTransitions), c.Region)
	line("")
	line("Report:    %s", s.Links.Report)
	if s.Links.ReportConsole != "" {
		line("           %s", s.Links.ReportConsole)
	}
	if s.Links.Execution != "" {
		line("Execution: %s", s.Links.Execution)
	}
	if s.Links.Console != "" {
		line("Console:   %s", s.Links.Console)
	}
	return b.String()
}
