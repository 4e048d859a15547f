// Package runlog reads the runs recorded in the run bucket: each backup or restore execution's
// report (runs/<execution>/report.json), the runs still in progress (work/<execution>/ without a
// report), and the moment a backup run stands for.
package runlog

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
)

// S3 is what reading the runs needs of an S3 client.
type S3 interface {
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Kinds of run, from the execution name's prefix (or, for a name without one, from its report).
const (
	Backup  = "backup"
	Restore = "restore"
	// Verify is a verify run (a restore drill, package shared/verify).
	Verify = "verify"
)

// NoReport is the Status of a run that has no report.json: it is still running, or it was stopped
// (by hand, or by its state machine's timeout) before its reporter ran. Its StartedAt is the time
// in its name, when the name has one; every other report field is empty.
const NoReport = "NO_REPORT"

// DefaultConcurrency is how many report.json reads List has in flight.
const DefaultConcurrency = 8

// Run is one run's report plus its kind.
type Run struct {
	report.Report
	Kind string `json:"kind"` // Backup, Restore or Verify; "" when neither the name nor a report tells
}

// Prefixes of the run bucket: reports live under runs/<execution>/, a run's work files under
// work/<execution>/ from its first step until they expire.
const (
	runsPrefix = "runs/"
	workPrefix = "work/"
)

// nameTime matches the names NewName gives executions: kind-20261204T214005Z-bafaa825.
var nameTime = regexp.MustCompile(`^(backup|restore|verify)-(\d{8}T\d{6}Z)-`)

// nameTimeLayout is the start time's layout in a name.
const nameTimeLayout = "20060102T150405Z"

// NewName is a new execution name of kind (Backup, Restore or Verify) started at now: the kind, the time
// to the second and 8 random hex digits, so that names sort by time and List can order runs
// without reading their reports.
func NewName(kind string, now time.Time) string {
	return kind + "-" + now.UTC().Format(nameTimeLayout) + "-" + strings.Split(uuid.NewString(), "-")[0]
}

// timeOf is the start time written in a run's name; zero when the name has none (executions
// started in the AWS console or by EventBridge Scheduler have names of their own).
func timeOf(name string) time.Time {
	m := nameTime.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}
	}
	t, err := time.Parse(nameTimeLayout, m[2])
	if err != nil {
		return time.Time{}
	}
	return t
}

// kindOf is a run's kind from its name, else from its report.
func kindOf(name string, r *report.Report) string {
	switch {
	case strings.HasPrefix(name, Backup+"-"):
		return Backup
	case strings.HasPrefix(name, Restore+"-"):
		return Restore
	case strings.HasPrefix(name, Verify+"-"):
		return Verify
	case r == nil:
		return ""
	case r.Verify != nil:
		return Verify
	case r.RestoredAt != "" || r.TargetBucket != "":
		return Restore
	}
	return Backup
}

// List returns the runs recorded in runBucket, newest first by startedAt (runs of the same
// startedAt by name, descending), at most limit of them (0: all).
//
// It lists the run names first — runs/ and work/ with Delimiter "/", one entry per run, so a
// request per 1,000 runs — and orders them by the time in their names. Only the newest limit
// runs' reports are read, so memory holds limit reports (each holds every failure of its run),
// plus the names. A name without a time (an execution started outside bucketvault's tools) costs
// one extra read of its report to learn its startedAt. A run under work/ without a report is
// listed with Status NoReport.
func List(ctx context.Context, client S3, runBucket string, limit int) ([]Run, error) {
	if limit < 0 {
		return nil, &fault.InvalidInput{Msg: fmt.Sprintf("limit %d must not be negative", limit)}
	}
	names := map[string]bool{} // name → it has a directory under runs/
	for _, p := range []string{runsPrefix, workPrefix} {
		err := commonPrefixes(ctx, client, runBucket, p, func(name string) {
			names[name] = names[name] || p == runsPrefix
		})
		if err != nil {
			return nil, err
		}
	}
	type candidate struct {
		name string
		at   time.Time
	}
	cands := make([]candidate, 0, len(names))
	var untimed []int
	for name := range names {
		cands = append(cands, candidate{name, timeOf(name)})
		if cands[len(cands)-1].at.IsZero() && names[name] {
			untimed = append(untimed, len(cands)-1)
		}
	}
	// Names without a time: their reports' startedAt, read with bounded concurrency.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(DefaultConcurrency)
	for _, i := range untimed {
		g.Go(func() error {
			r, found, err := readReport(gctx, client, runBucket, cands[i].name)
			if err != nil || !found {
				return err
			}
			cands[i].at, _ = time.Parse(time.RFC3339Nano, r.StartedAt)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	newest := func(a, b candidate) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return strings.Compare(b.name, a.name)
	}
	slices.SortFunc(cands, newest)
	if limit > 0 && len(cands) > limit {
		cands = cands[:limit]
	}
	runs := make([]Run, len(cands))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(DefaultConcurrency)
	for i, c := range cands {
		g.Go(func() error {
			r, err := get(gctx, client, runBucket, c.name, false)
			runs[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	startedAt := func(r Run) time.Time {
		if t, err := time.Parse(time.RFC3339Nano, r.StartedAt); err == nil {
			return t
		}
		return timeOf(r.Execution)
	}
	slices.SortStableFunc(runs, func(a, b Run) int {
		return cmp.Or(startedAt(b).Compare(startedAt(a)), strings.Compare(b.Execution, a.Execution))
	})
	return runs, nil
}

// commonPrefixes calls fn with the name of every "directory" directly under prefix.
func commonPrefixes(ctx context.Context, client S3, bucket, prefix string, fn func(name string)) error {
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return s3Error(err, bucket, fmt.Sprintf("list s3://%s/%s", bucket, prefix))
		}
		for _, cp := range out.CommonPrefixes {
			if name := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), prefix), "/"); name != "" {
				fn(name)
			}
		}
	}
	return nil
}

// Get returns the run named name. A run without a report but with files under runs/ or work/ has
// Status NoReport; a name with neither is a *fault.InvalidInput.
func Get(ctx context.Context, client S3, runBucket, name string) (Run, error) {
	if err := checkName(name); err != nil {
		return Run{}, err
	}
	return get(ctx, client, runBucket, name, true)
}

// get reads name's run. When its report is missing and lookAround is set, it looks for the run's
// other files (List knows they exist: it found the name).
func get(ctx context.Context, client S3, runBucket, name string, lookAround bool) (Run, error) {
	r, found, err := readReport(ctx, client, runBucket, name)
	if err != nil {
		return Run{}, err
	}
	if found {
		return Run{Report: *r, Kind: kindOf(name, r)}, nil
	}
	if lookAround {
		exists := false
		for _, p := range []string{batch.RunPrefix(name), batch.WorkPrefix(name)} {
			out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(runBucket), Prefix: aws.String(p), MaxKeys: aws.Int32(1)})
			if err != nil {
				return Run{}, s3Error(err, runBucket, fmt.Sprintf("list s3://%s/%s", runBucket, p))
			}
			if len(out.Contents) > 0 {
				exists = true
				break
			}
		}
		if !exists {
			return Run{}, &fault.InvalidInput{Msg: fmt.Sprintf("no run named %q in s3://%s/%s", name, runBucket, runsPrefix)}
		}
	}
	run := Run{Report: report.Report{Status: NoReport, Execution: name}, Kind: kindOf(name, nil)}
	if t := timeOf(name); !t.IsZero() {
		run.StartedAt = t.Format(time.RFC3339)
	}
	return run, nil
}

// readReport reads runs/<name>/report.json; found is false when there is none.
func readReport(ctx context.Context, client S3, runBucket, name string) (r *report.Report, found bool, err error) {
	key := batch.ReportKey(name)
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(runBucket), Key: aws.String(key)})
	if err != nil {
		if fault.IsCode(err, "NoSuchKey", "NotFound") {
			return nil, false, nil
		}
		return nil, false, s3Error(err, runBucket, fmt.Sprintf("read s3://%s/%s", runBucket, key))
	}
	defer out.Body.Close()
	r = new(report.Report)
	if err := json.NewDecoder(out.Body).Decode(r); err != nil {
		return nil, false, fmt.Errorf("read s3://%s/%s: %w", runBucket, key, err)
	}
	return r, true, nil
}

// Moment resolves at to a moment: an RFC 3339 time as it is, or a backup run's name to its
// report's finishedAt (the state of the backup bucket that run left). An unparseable time, a
// name of no run, a restore run or a run without a usable finishedAt is a *fault.InvalidInput
// with one line saying so.
func Moment(ctx context.Context, client S3, runBucket, at string) (time.Time, error) {
	if at == "" {
		return time.Time{}, &fault.InvalidInput{Msg: "no moment given: give an RFC 3339 time such as 2026-11-20T10:00:00Z, or a backup run's name"}
	}
	t, isTime, err := restoreinput.ParseMoment(at)
	if err != nil {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("%q is not an RFC 3339 time such as 2026-11-20T10:00:00Z, nor a run name", at), Err: err}
	}
	if isTime {
		return t, nil
	}
	if err := checkName(at); err != nil {
		return time.Time{}, err
	}
	r, found, err := readReport(ctx, client, runBucket, at)
	if err != nil {
		return time.Time{}, err
	}
	if !found {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("no backup execution named %q in s3://%s/%s (no %s)", at, runBucket, runsPrefix, batch.ReportKey(at))}
	}
	if k := kindOf(at, r); k == Restore || k == Verify {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("execution %q is a %s, not a backup", at, k)}
	}
	t, err = time.Parse(time.RFC3339Nano, r.FinishedAt)
	if err != nil {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("report of %q has no usable finishedAt (%q)", at, r.FinishedAt), Err: err}
	}
	return t, nil
}

// checkName refuses what cannot be an execution name (Step Functions allows neither whitespace
// nor "/"), so that it never names another run's files.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		return &fault.InvalidInput{Msg: fmt.Sprintf("%q is not a run name", name)}
	}
	return nil
}

// s3Error wraps an S3 error with what was being done; a missing bucket becomes a one-line
// *fault.BucketNotFound.
func s3Error(err error, bucket, doing string) error {
	if fault.IsCode(err, "NoSuchBucket") {
		return &fault.BucketNotFound{Msg: fmt.Sprintf("run bucket %q does not exist", bucket), Err: err}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// backupsByTime returns the names of the backups recorded under runs/ whose names carry their
// start time, oldest first, with that time. Only names are listed: no report is read.
func backupsByTime(ctx context.Context, client S3, runBucket string) ([]string, []time.Time, error) {
	type named struct {
		name string
		at   time.Time
	}
	var all []named
	err := commonPrefixes(ctx, client, runBucket, runsPrefix, func(name string) {
		if t := timeOf(name); !t.IsZero() && strings.HasPrefix(name, Backup+"-") {
			all = append(all, named{name, t})
		}
	})
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(all, func(a, b named) int { return cmp.Or(a.at.Compare(b.at), strings.Compare(a.name, b.name)) })
	names, times := make([]string, len(all)), make([]time.Time, len(all))
	for i, n := range all {
		names[i], times[i] = n.name, n.at
	}
	return names, times, nil
}

// FirstBackup returns when the oldest backup that has a report finished; found is false when
// none has. It lists the run names and reads reports from the oldest on until one has a
// finishedAt, so it costs a listing and usually one read, whatever the number of runs. Backups
// whose names carry no start time (started outside bucketvault's tools) are not considered.
func FirstBackup(ctx context.Context, client S3, runBucket string) (finished time.Time, found bool, err error) {
	names, times, err := backupsByTime(ctx, client, runBucket)
	if err != nil {
		return time.Time{}, false, err
	}
	for i, name := range names {
		// Names tell the start to the second only: of backups started in the same second as the
		// first one found, the earliest finish counts.
		if found && !times[i].Equal(times[i-1]) {
			break
		}
		r, ok, err := readReport(ctx, client, runBucket, name)
		if err != nil {
			return time.Time{}, false, err
		}
		if !ok {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, r.FinishedAt); err == nil && (!found || t.Before(finished)) {
			finished, found = t, true
		}
	}
	return finished, found, nil
}

// Attributor names the backup run during which a moment fell (a version written then was written
// by it), reading at most one report per run it is asked about.
type Attributor struct {
	client    S3
	runBucket string
	names     []string
	times     []time.Time
	windows   map[string][2]time.Time // name → startedAt, finishedAt
}

// NewAttributor lists the backups of runBucket (names only).
func NewAttributor(ctx context.Context, client S3, runBucket string) (*Attributor, error) {
	names, times, err := backupsByTime(ctx, client, runBucket)
	if err != nil {
		return nil, err
	}
	return &Attributor{client: client, runBucket: runBucket, names: names, times: times, windows: map[string][2]time.Time{}}, nil
}

// Run returns the backup that was running at t ("" when none was, as far as the reports tell):
// the latest backup started (to the second, as its name says) at or before t, when its report's
// startedAt … finishedAt holds t.
func (a *Attributor) Run(ctx context.Context, t time.Time) (string, error) {
	i, _ := slices.BinarySearchFunc(a.times, t.Truncate(time.Second), func(x, target time.Time) int {
		if x.After(target) {
			return 1
		}
		return -1
	})
	// Names tell the start to the second only: every backup started in the latest second at or
	// before t is a candidate.
	for j := i - 1; j >= 0 && a.times[j].Equal(a.times[i-1]); j-- {
		w, err := a.window(ctx, a.names[j])
		if err != nil {
			return "", err
		}
		if !w[0].IsZero() && !t.Before(w[0]) && !t.After(w[1]) {
			return a.names[j], nil
		}
	}
	return "", nil
}

// window is a backup's startedAt and finishedAt, from its report (zero without one).
func (a *Attributor) window(ctx context.Context, name string) ([2]time.Time, error) {
	if w, ok := a.windows[name]; ok {
		return w, nil
	}
	var w [2]time.Time
	r, found, err := readReport(ctx, a.client, a.runBucket, name)
	if err != nil {
		return w, err
	}
	if found {
		w[0], _ = time.Parse(time.RFC3339Nano, r.StartedAt)
		w[1], _ = time.Parse(time.RFC3339Nano, r.FinishedAt)
	}
	a.windows[name] = w
	return w, nil
}

// LastSucceeded returns the report of the newest backup of source into backup that SUCCEEDED and
// was not a dry run; found is false when there is none. It lists the run names, then reads
// reports from the newest backup on until one qualifies, so it usually costs a listing and a
// read or two. Backups whose names carry no start time are not considered.
func LastSucceeded(ctx context.Context, client S3, runBucket, source, backup string) (r *report.Report, found bool, err error) {
	names, times, err := backupsByTime(ctx, client, runBucket)
	if err != nil {
		return nil, false, err
	}
	var best *report.Report
	for i := len(names) - 1; i >= 0; i-- {
		if best != nil && !times[i].Equal(timeOf(best.Execution)) {
			break // names carry their start to the second: runs of that second are all read
		}
		r, ok, err := readReport(ctx, client, runBucket, names[i])
		if err != nil {
			return nil, false, err
		}
		if ok && r.Status == report.Succeeded && !r.DryRun && r.SourceBucket == source && r.BackupBucket == backup &&
			(best == nil || r.FinishedAt > best.FinishedAt) { // RFC 3339 in UTC, fixed width: ordered as text
			best = r
		}
	}
	return best, best != nil, nil
}
