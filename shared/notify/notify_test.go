package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/retry"
)

func sample(status, errName string) report.Report {
	r := report.Report{Status: status, Error: errName, Execution: "backup-20260301T020000Z-ab12",
		StartedAt: "2026-03-01T02:00:00.000Z", FinishedAt: "2026-03-01T02:04:12.000Z",
		SourceBucket: "primary", BackupBucket: "primary-backup", Listed: 50000, New: 1000, Changed: 204,
		Unchanged: 48796, ToDelete: 3, Copied: 1204, Deleted: 3, BytesCopied: 2254857830, ReportKey: "runs/backup-20260301T020000Z-ab12/report.json",
		Guards: []report.Guard{{Name: "deletion", Count: 3, Of: 49000, Percent: 0.006, MaxPercent: 25, Floor: 10}}}
	if status == report.Failed {
		r.Copied, r.Failed, r.Cause = 1190, 14, "14 objects were not backed up"
	}
	return r
}

func TestSubject(t *testing.T) {
	cases := []struct {
		name string
		r    report.Report
		want string
	}{
		{"success", sample(report.Succeeded, ""), "✔ backup of primary: 1,204 copied, 3 deleted, 0 failed (2.1 GiB, 4 m 12 s)"},
		{"failure", sample(report.Failed, "BackupIncomplete"), "✘ backup of primary: BackupIncomplete, 1,190 copied, 3 deleted, 14 failed (2.1 GiB, 4 m 12 s)"},
		{"restore", func() report.Report {
			r := sample(report.Succeeded, "")
			r.RestoredAt, r.TargetBucket = "2026-02-28T00:00:00Z", "primary"
			return r
		}(), "✔ restore of primary-backup to primary: 1,204 copied, 3 deleted, 0 failed (2.1 GiB, 4 m 12 s)"},
		{"long bucket name is cut below 100 characters", func() report.Report {
			r := sample(report.Succeeded, "")
			r.SourceBucket = strings.Repeat("b", 63) + "\nx"
			return r
		}(), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Build(tc.r, nil, Place{RunBucket: "runs"}).Subject
			if n := utf8.RuneCountInString(got); n > MaxSubjectRunes || strings.ContainsAny(got, "\n\r") {
				t.Fatalf("subject of %d characters or with a line break: %q", n, got)
			}
			if tc.want != "" && got != tc.want {
				t.Errorf("subject\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	r := sample(report.Failed, "BackupIncomplete")
	r.MostChanged = []report.FolderChanges{{Folder: "invoices/", New: 1200, Changed: 4}, {Folder: "", Deleted: 3}}
	var failures []report.Failure
	for i := range 14 {
		failures = append(failures, report.Failure{Key: "k" + string(rune('a'+i)), Op: "copy", Error: "AccessDenied"})
	}
	s := Build(r, failures, Place{Region: "eu-west-1", Account: "111122223333", StateMachine: "bucketvault-backup", RunBucket: "runs", ConsoleURL: "https://console.example/"})
	if len(s.Failures) != DefaultFailuresShown || s.FailuresMore != 4 {
		t.Errorf("failures %d shown, %d more; want %d and 4", len(s.Failures), s.FailuresMore, DefaultFailuresShown)
	}
	wantLinks := Links{
		Execution:     "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:eu-west-1:111122223333:execution:bucketvault-backup:backup-20260301T020000Z-ab12",
		Report:        "s3://runs/runs/backup-20260301T020000Z-ab12/report.json",
		ReportConsole: "https://s3.console.aws.amazon.com/s3/object/runs?region=eu-west-1&prefix=runs/backup-20260301T020000Z-ab12/report.json",
		Console:       "https://console.example/runs/backup-20260301T020000Z-ab12",
	}
	if s.Links != wantLinks {
		t.Errorf("links %+v\nwant %+v", s.Links, wantLinks)
	}
	if g := s.Guards[0]; g.Allowed != 12250 || g.Headroom != 12247 {
		t.Errorf("guard headroom %+v, want 12,250 allowed (25%% of 49,000), 12,247 headroom", g)
	}
	if s.DurationSeconds != 252 || s.Kind != "backup" || s.Status != report.Failed || s.Error != "BackupIncomplete" {
		t.Errorf("summary %+v", s)
	}
	text := s.Text()
	for _, want := range []string{"FAILED: BackupIncomplete", "copy ka: AccessDenied",
		"Changes:   invoices/: 1,204 (1,200 new, 4 changed, 0 deleted)\n           (top level): 3 (0 new, 0 changed, 3 deleted)", "… and 4 more, every one named in s3://runs/", "headroom 12,247", "Execution: https://eu-west-1.console"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"https://hooks.slack.com/services/T000/B000/XXXXSECRET": "https://hooks.slack.com/…",
		"https://hc-ping.com/5f2d-uuid?x=1":                     "https://hc-ping.com/…",
		"discord://tokenSECRET@12345":                           "discord://12345",
		"ntfy://user:passSECRET@ntfy.sh/topic":                  "ntfy://ntfy.sh/…",
		"http://127.0.0.1:8080":                                 "http://127.0.0.1:8080",
	}
	for in, want := range cases {
		if got := Redact(in); got != want || strings.Contains(got, "SECRET") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if got := FailURL("https://hc-ping.com/abc/"); got != "https://hc-ping.com/abc/fail" {
		t.Errorf("FailURL = %q", got)
	}
}

func TestWanted(t *testing.T) {
	ok, quiet, bad := Summary{Status: report.Succeeded, Counts: Counts{Copied: 1}}, Summary{Status: report.Succeeded}, Summary{Status: report.Failed}
	cases := []struct {
		on               string
		ok, quiet, isBad bool
	}{{OnAlways, true, true, true}, {OnFailure, false, false, true}, {OnChange, true, false, true}}
	for _, tc := range cases {
		c := Config{On: tc.on}
		if c.Wanted(ok) != tc.ok || c.Wanted(quiet) != tc.quiet || c.Wanted(bad) != tc.isBad {
			t.Errorf("NOTIFY_ON=%s: changed %v, quiet %v, failed %v", tc.on, c.Wanted(ok), c.Wanted(quiet), c.Wanted(bad))
		}
	}
	if _, err := ConfigFromEnv(envconf.Map(map[string]string{"NOTIFY_ON": "sometimes"})); err == nil {
		t.Error("NOTIFY_ON=sometimes accepted")
	}
}

type recorder struct {
	mu    sync.Mutex
	paths []string
	body  []byte
}

func TestSend(t *testing.T) {
	rec := &recorder{}
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.paths = append(rec.paths, r.Method+" "+r.URL.Path)
		if r.Method == http.MethodPost {
			rec.body = b
		}
	}))
	defer ok.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer refusing.Close()
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(hang)
	var chatted []string
	n := &Notifier{
		Config: Config{On: OnAlways, URLs: []string{ok.URL + "/hook/SECRET", refusing.URL + "/SECRET", hanging.URL, "slack://SECRET@channel"},
			Heartbeat: ok.URL + "/ping/uuid", Budget: 5 * time.Second},
		Policy:         retry.Policy{MaxAttempts: 3, Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }},
		AttemptTimeout: 200 * time.Millisecond,
		Chat: func(u, msg string, params map[string]string) error {
			chatted = append(chatted, u+" "+params["title"])
			return nil
		},
	}
	s := Build(sample(report.Failed, "BackupIncomplete"), nil, Place{RunBucket: "runs"})
	out := n.Send(context.Background(), s)
	want := []report.Notification{
		{Target: ok.URL + "/… (NOTIFY_URLS #1)", Kind: KindWebhook, Status: report.NotificationSent, Attempts: 1},
		{Target: refusing.URL + "/… (NOTIFY_URLS #2)", Kind: KindWebhook, Status: report.NotificationError, Error: "after 3 attempts: HTTP 500: no", Attempts: 3},
		{Target: hanging.URL + " (NOTIFY_URLS #3)", Kind: KindWebhook, Status: report.NotificationError, Attempts: 3},
		{Target: "slack://channel (NOTIFY_URLS #4)", Kind: KindChat, Status: report.NotificationSent, Attempts: 1},
		{Target: ok.URL + "/…", Kind: KindHeartbeat, Status: report.NotificationSent, Attempts: 1},
	}
	if len(out) != len(want) {
		t.Fatalf("outcomes %+v", out)
	}
	for i := range want {
		got := out[i]
		if i == 2 {
			if !strings.Contains(got.Error, "deadline exceeded") {
				t.Errorf("hanging target's error %q", got.Error)
			}
			got.Error = ""
		}
		if got != want[i] || strings.Contains(out[i].Error, "SECRET") {
			t.Errorf("outcome %d: %+v, want %+v", i, out[i], want[i])
		}
	}
	if strings.Join(rec.paths, ",") != "POST /hook/SECRET,GET /ping/uuid/fail" && strings.Join(rec.paths, ",") != "GET /ping/uuid/fail,POST /hook/SECRET" {
		t.Errorf("requests %v", rec.paths)
	}
	var got Summary
	if err := json.Unmarshal(rec.body, &got); err != nil || got.Status != report.Failed || got.Error != "BackupIncomplete" || got.Counts.Failed != 14 {
		t.Errorf("posted summary %s (%v)", rec.body, err)
	}
	if len(chatted) != 1 || chatted[0] != "slack://SECRET@channel "+s.Subject {
		t.Errorf("chat sends %v", chatted)
	}
}

func TestPublishInput(t *testing.T) {
	s := Build(sample(report.Succeeded, ""), nil, Place{RunBucket: "runs"})
	in := PublishInput("arn:aws:sns:us-east-1:1:t", s, s.Text())
	attrs := map[string]string{}
	for k, v := range in.MessageAttributes {
		if aws.ToString(v.DataType) != "String" {
			t.Errorf("attribute %s of type %s", k, aws.ToString(v.DataType))
		}
		attrs[k] = aws.ToString(v.StringValue)
	}
	if attrs["status"] != "SUCCEEDED" || attrs["error"] != NoError || attrs["kind"] != "backup" || len(attrs) != 3 {
		t.Errorf("attributes %v", attrs)
	}
	if aws.ToString(in.Subject) != s.Subject || !strings.HasPrefix(aws.ToString(in.Message), s.Subject+"\n") {
		t.Errorf("subject %q message %q", aws.ToString(in.Subject), aws.ToString(in.Message))
	}
}

// A backup's further destinations are in its summary: a line each, with its problem, and the
// failures naming the destination they concern count toward the failures not shown.
func TestBuildDestinations(t *testing.T) {
	r := sample(report.Failed, "BackupIncomplete")
	r.Destinations = []report.Destination{
		{DestinationTotals: report.DestinationTotals{Name: "dr", Bucket: "dr-b", New: 2}, Copied: 2, Batches: 1},
		{DestinationTotals: report.DestinationTotals{Name: "offsite", Bucket: "far-b", New: 12}, Copied: 2, Failed: 10, Batches: 1, FailedBatches: 0},
	}
	var failures []report.Failure
	for i := range int(r.Failed) {
		failures = append(failures, report.Failure{Key: fmt.Sprint("p", i), Op: "copy", Error: "AccessDenied"})
	}
	for i := range 10 {
		failures = append(failures, report.Failure{Key: fmt.Sprint("f", i), Op: "copy", Error: "connection refused", Destination: "offsite"})
	}
	s := Build(r, failures, Place{RunBucket: "runs"})
	if len(s.Destinations) != 2 || s.Destinations[0].Problem != "" || !strings.Contains(s.Destinations[1].Problem, `destination "offsite" (far-b): 10 objects were not written`) {
		t.Fatalf("destinations %+v", s.Destinations)
	}
	if want := r.Failed + 10 - int64(len(s.Failures)); s.FailuresMore != want {
		t.Errorf("%d failures more, want %d", s.FailuresMore, want)
	}
	text := Build(r, failures[len(failures)-3:], Place{RunBucket: "runs"}).Text()
	for _, want := range []string{"Copy:      dr (s3://dr-b): 2 copied, 0 deleted, 0 failed: complete", "Copy:      offsite (s3://far-b): 2 copied, 0 deleted, 10 failed: destination", "copy f9 to offsite: connection refused"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

// Deliver puts a bad setting first, sends to the targets there are, and logs every outcome that
// is not a send; with no target it sends nothing.
func TestDeliver(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer refusing.Close()
	quick := retry.Policy{MaxAttempts: 1}
	for _, tt := range []struct {
		name     string
		n        *Notifier
		cfgErr   error
		want     []string // target: status
		wantLogs int
	}{
		{name: "nothing set", n: nil, want: nil},
		{name: "a bad setting, no target", cfgErr: errors.New("NOTIFY_ON: bad"), want: []string{"configuration: error"}, wantLogs: 1},
		{name: "a bad setting and a refusing target", cfgErr: errors.New("NOTIFY_ON: bad"),
			n:    &Notifier{Config: Config{On: OnAlways, URLs: []string{refusing.URL}, Budget: time.Second}, Policy: quick},
			want: []string{"configuration: error", refusing.URL + " (NOTIFY_URLS #1): error"}, wantLogs: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			out := Deliver(context.Background(), tt.n, Config{}, tt.cfgErr, Build(sample(report.Failed, "BackupIncomplete"), nil, Place{}), slog.New(slog.NewTextHandler(&logs, nil)))
			var got []string
			for _, o := range out {
				got = append(got, o.Target+": "+string(o.Status))
			}
			if !slices.Equal(got, tt.want) || strings.Count(logs.String(), "notification not sent") != tt.wantLogs {
				t.Fatalf("outcomes %v, want %v; logs:\n%s", got, tt.want, logs.String())
			}
		})
	}
}
