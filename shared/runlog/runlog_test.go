package runlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func putReport(t *testing.T, f *s3fake.S3, r report.Report) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	f.Put("runs", "runs/"+r.Execution+"/report.json", b)
}

// setup records six runs: four with reports (one under a name without a time, started last of
// them), one only under work/ (running), and one with only a history (its report never written).
func setup(t *testing.T, pageSize int) *s3fake.S3 {
	f := s3fake.New()
	f.PageSize = pageSize
	f.AddBucket("runs", false)
	putReport(t, f, report.Report{Status: report.Succeeded, Execution: "backup-20261201T000000Z-aaaa", StartedAt: "2026-12-01T00:00:01Z", FinishedAt: "2026-12-01T00:05:00Z"})
	putReport(t, f, report.Report{Status: report.Failed, Execution: "backup-20261203T000000Z-cccc", StartedAt: "2026-12-03T00:00:01Z", FinishedAt: "2026-12-03T00:07:30.5Z"})
	putReport(t, f, report.Report{Status: report.Succeeded, Execution: "restore-20261202T000000Z-bbbb", StartedAt: "2026-12-02T00:00:01Z", FinishedAt: "2026-12-02T00:01:00Z", RestoredAt: "2026-12-01T00:05:00Z", TargetBucket: "src"})
	putReport(t, f, report.Report{Status: report.Succeeded, Execution: "nightly-x", StartedAt: "2026-12-04T00:00:00Z", FinishedAt: "2026-12-04T00:01:00Z"})
	f.Put("runs", "work/backup-20261205T000000Z-eeee/batches/000000.jsonl", []byte("{}"))
	f.Put("runs", "work/backup-20261203T000000Z-cccc/batches/000000.jsonl", []byte("{}")) // finished: its work files stay a while
	f.Put("runs", "runs/backup-20261130T000000Z-zzzz/history.json", []byte("{}"))
	f.Put("runs", "lock/src/bak.json", []byte("{}"))
	return f
}

// List: newest first by startedAt (a name without a time sorted by its report), at most limit,
// a run without a report marked NoReport; only the reports listed (and those of names without a
// time) are read.
func TestList(t *testing.T) {
	all := []string{"backup-20261205T000000Z-eeee", "nightly-x", "backup-20261203T000000Z-cccc", "restore-20261202T000000Z-bbbb",
		"backup-20261201T000000Z-aaaa", "backup-20261130T000000Z-zzzz"}
	tests := []struct {
		limit    int
		want     []string
		maxReads int // GetObject calls: the untimed name's startedAt, then one per run listed
	}{
		{0, all, 1 + 6},
		{2, all[:2], 1 + 2},
		{3, all[:3], 1 + 3},
		{100, all, 1 + 6},
	}
	for _, page := range []int{1, 2, 1000} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("page %d limit %d", page, tt.limit), func(t *testing.T) {
				f := setup(t, page)
				runs, err := List(context.Background(), f, "runs", tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, r := range runs {
					got = append(got, r.Execution)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("runs = %v, want %v", got, tt.want)
				}
				if n := f.Count("GetObject"); n != tt.maxReads {
					t.Errorf("%d report reads, want %d", n, tt.maxReads)
				}
				byName := map[string]Run{}
				for _, r := range runs {
					byName[r.Execution] = r
				}
				checks := []struct{ name, status, kind, startedAt string }{
					{"backup-20261205T000000Z-eeee", NoReport, Backup, "2026-12-05T00:00:00Z"},
					{"nightly-x", report.Succeeded, Backup, "2026-12-04T00:00:00Z"},
					{"backup-20261203T000000Z-cccc", report.Failed, Backup, "2026-12-03T00:00:01Z"},
					{"restore-20261202T000000Z-bbbb", report.Succeeded, Restore, "2026-12-02T00:00:01Z"},
					{"backup-20261130T000000Z-zzzz", NoReport, Backup, "2026-11-30T00:00:00Z"},
				}
				for _, c := range checks {
					r, ok := byName[c.name]
					if !ok {
						continue
					}
					if r.Status != c.status || r.Kind != c.kind || r.StartedAt != c.startedAt {
						t.Errorf("%s: status %q kind %q startedAt %q, want %q %q %q", c.name, r.Status, r.Kind, r.StartedAt, c.status, c.kind, c.startedAt)
					}
				}
			})
		}
	}
}

// Kind and the report survive the JSON a CLI prints: the report's fields at the top level.
func TestRunJSON(t *testing.T) {
	f := setup(t, 0)
	r, err := Get(context.Background(), f, "runs", "restore-20261202T000000Z-bbbb")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["kind"] != "restore" || m["execution"] != "restore-20261202T000000Z-bbbb" || m["targetBucket"] != "src" {
		t.Fatalf("JSON %s", b)
	}
}

func TestGet(t *testing.T) {
	tests := []struct {
		name, want, status string
		err                any
	}{
		{"backup-20261201T000000Z-aaaa", "", report.Succeeded, nil},
		{"backup-20261205T000000Z-eeee", "", NoReport, nil},
		{"backup-20261130T000000Z-zzzz", "", NoReport, nil},
		{"backup-20991201T000000Z-none", `no run named "backup-20991201T000000Z-none" in s3://runs/runs/`, "", &fault.InvalidInput{}},
		{"../lock", `"../lock" is not a run name`, "", &fault.InvalidInput{}},
		{"", `"" is not a run name`, "", &fault.InvalidInput{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t, 0)
			r, err := Get(context.Background(), f, "runs", tt.name)
			if tt.err == nil {
				if err != nil || r.Status != tt.status || r.Execution != tt.name {
					t.Fatalf("Get = %+v, %v; want status %q", r, err, tt.status)
				}
				return
			}
			var invalid *fault.InvalidInput
			if !errors.As(err, &invalid) || err.Error() != tt.want {
				t.Fatalf("err = %v, want InvalidInput %q", err, tt.want)
			}
		})
	}
}

func TestMoment(t *testing.T) {
	tests := []struct {
		at, want, err string
	}{
		{"2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z", ""},
		{"2026-11-20T11:00:00.25+01:00", "2026-11-20T10:00:00.25Z", ""},
		{"backup-20261203T000000Z-cccc", "2026-12-03T00:07:30.5Z", ""},
		{"nightly-x", "2026-12-04T00:01:00Z", ""},
		{"2026-13-45T99:00:00Z", "", `"2026-13-45T99:00:00Z" is not an RFC 3339 time such as 2026-11-20T10:00:00Z, nor a run name`},
		{"2026-11-20", "", `"2026-11-20" is not an RFC 3339 time`},
		{"yesterday", "", `no backup execution named "yesterday" in s3://runs/runs/ (no runs/yesterday/report.json)`},
		{"restore-20261202T000000Z-bbbb", "", `execution "restore-20261202T000000Z-bbbb" is a restore, not a backup`},
		{"backup-20261205T000000Z-eeee", "", `no backup execution named "backup-20261205T000000Z-eeee"`},
		{"a/b", "", `"a/b" is not a run name`},
		{"", "", "no moment given"},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			f := setup(t, 0)
			got, err := Moment(context.Background(), f, "runs", tt.at)
			if tt.err == "" {
				if err != nil || !got.Equal(mustTime(t, tt.want)) {
					t.Fatalf("Moment = %v, %v; want %s", got, err, tt.want)
				}
				return
			}
			var invalid *fault.InvalidInput
			if !errors.As(err, &invalid) || !strings.HasPrefix(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one-line InvalidInput starting %q", err, tt.err)
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A missing run bucket is one line naming it, whatever the call.
func TestMissingBucket(t *testing.T) {
	f := setup(t, 0)
	calls := map[string]func() error{
		"List": func() error { _, err := List(context.Background(), f, "nope", 0); return err },
		"Get": func() error {
			_, err := Get(context.Background(), f, "nope", "backup-20261201T000000Z-aaaa")
			return err
		},
		"Moment": func() error {
			_, err := Moment(context.Background(), f, "nope", "backup-20261201T000000Z-aaaa")
			return err
		},
	}
	names := make([]string, 0, len(calls))
	for n := range calls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		err := calls[n]()
		var nf *fault.BucketNotFound
		if !errors.As(err, &nf) || err.Error() != `run bucket "nope" does not exist` || !fault.IsCode(err, "NoSuchBucket") {
			t.Errorf("%s: err = %v, want BucketNotFound naming the bucket, caused by NoSuchBucket", n, err)
		}
	}
}

// FirstBackup skips a backup without a report (20261130) and a restore, and reads no more reports
// than it needs; an empty bucket has none.
func TestFirstBackup(t *testing.T) {
	f := setup(t, 2)
	first, found, err := FirstBackup(context.Background(), f, "runs")
	if err != nil || !found || !first.Equal(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC)) {
		t.Fatalf("first backup finished %v (found %v, %v), want 2026-12-01T00:05:00Z", first, found, err)
	}
	empty := s3fake.New()
	empty.AddBucket("runs", false)
	if _, found, err := FirstBackup(context.Background(), empty, "runs"); found || err != nil {
		t.Fatalf("empty run bucket: found %v, %v", found, err)
	}
}

// The run a moment fell in: inside a backup's startedAt … finishedAt, that backup; between
// backups, before the first, or during a restore, none.
func TestAttributor(t *testing.T) {
	f := setup(t, 1000)
	a, err := NewAttributor(context.Background(), f, "runs")
	if err != nil {
		t.Fatal(err)
	}
	for at, want := range map[string]string{
		"2026-12-01T00:03:00Z": "backup-20261201T000000Z-aaaa",
		"2026-12-01T00:05:00Z": "backup-20261201T000000Z-aaaa",
		"2026-12-01T00:05:01Z": "",
		"2026-12-03T00:07:30Z": "backup-20261203T000000Z-cccc",
		"2026-12-02T00:00:30Z": "", // a restore ran then
		"2026-11-01T00:00:00Z": "",
		"2026-12-01T00:00:00Z": "", // its name's second, before its startedAt
	} {
		tm, _ := time.Parse(time.RFC3339, at)
		got, err := a.Run(context.Background(), tm)
		if err != nil || got != want {
			t.Errorf("Run(%s) = %q, %v; want %q", at, got, err, want)
		}
	}
}

// Two backups started in the same second (names tell the second only): the first to finish is the
// first backup, and each moment is attributed to the one whose window holds it, whatever their
// names' order.
func TestSameSecondBackups(t *testing.T) {
	f := s3fake.New()
	f.AddBucket("runs", false)
	putReport(t, f, report.Report{Status: report.Succeeded, Execution: "backup-20261206T000000Z-zzzz", StartedAt: "2026-12-06T00:00:00.1Z", FinishedAt: "2026-12-06T00:00:00.3Z"})
	putReport(t, f, report.Report{Status: report.Succeeded, Execution: "backup-20261206T000000Z-aaaa", StartedAt: "2026-12-06T00:00:00.5Z", FinishedAt: "2026-12-06T00:00:00.7Z"})
	first, found, err := FirstBackup(context.Background(), f, "runs")
	if err != nil || !found || !first.Equal(time.Date(2026, 12, 6, 0, 0, 0, 300e6, time.UTC)) {
		t.Fatalf("first backup finished %v (found %v, %v)", first, found, err)
	}
	a, err := NewAttributor(context.Background(), f, "runs")
	if err != nil {
		t.Fatal(err)
	}
	for ms, want := range map[int]string{200: "backup-20261206T000000Z-zzzz", 600: "backup-20261206T000000Z-aaaa", 400: ""} {
		got, err := a.Run(context.Background(), time.Date(2026, 12, 6, 0, 0, 0, ms*1e6, time.UTC))
		if err != nil || got != want {
			t.Errorf("Run(+%d ms) = %q, %v; want %q", ms, got, err, want)
		}
	}
}

// A name NewName gives carries its kind and its start time to the second, which List reads back.
func TestNewName(t *testing.T) {
	now := time.Date(2026, 12, 4, 21, 40, 5, 999e6, time.FixedZone("CET", 3600))
	for _, kind := range []string{Backup, Restore, Verify} {
		name := NewName(kind, now)
		if !strings.HasPrefix(name, kind+"-20261204T204005Z-") || len(name) != len(kind)+26 {
			t.Errorf("NewName(%s) = %q", kind, name)
		}
		if got := timeOf(name); !got.Equal(now.Truncate(time.Second)) || kindOf(name, nil) != kind {
			t.Errorf("%q: time %v kind %q", name, got, kindOf(name, nil))
		}
	}
	if NewName(Backup, now) == NewName(Backup, now) {
		t.Error("two names of the same second are equal")
	}
}

// LastSucceeded picks the newest backup of these buckets that SUCCEEDED and was not a dry run,
// passing over failed runs, dry runs, other buckets' backups, restores and verify runs; a verify
// run is listed with its kind and refused as a moment.
func TestLastSucceeded(t *testing.T) {
	ok := func(name, src, bak string, dry bool) report.Report {
		return report.Report{Status: report.Succeeded, Execution: name, SourceBucket: src, BackupBucket: bak, DryRun: dry, StartedAt: "2026-12-01T00:00:01Z", FinishedAt: "2026-12-01T00:05:00Z"}
	}
	tests := []struct {
		name    string
		reports []report.Report
		want    string
	}{
		{"none", nil, ""},
		{"only failed", []report.Report{{Status: report.Failed, Execution: "backup-20261201T000000Z-aaaa", SourceBucket: "src", BackupBucket: "bak"}}, ""},
		{"newest wins", []report.Report{ok("backup-20261201T000000Z-aaaa", "src", "bak", false), ok("backup-20261202T000000Z-bbbb", "src", "bak", false)}, "backup-20261202T000000Z-bbbb"},
		// Two runs started in the same second: the one that finished last, whatever their names.
		{"same second: the later finish", func() []report.Report {
			a, b := ok("backup-20261202T000000Z-ffff", "src", "bak", false), ok("backup-20261202T000000Z-0000", "src", "bak", false)
			a.FinishedAt, b.FinishedAt = "2026-12-02T00:00:00.400Z", "2026-12-02T00:00:00.900Z"
			return []report.Report{a, b}
		}(), "backup-20261202T000000Z-0000"},
		{"skips failed, dry, other buckets, restore, verify", []report.Report{
			ok("backup-20261201T000000Z-aaaa", "src", "bak", false),
			{Status: report.Failed, Execution: "backup-20261202T000000Z-bbbb", SourceBucket: "src", BackupBucket: "bak"},
			ok("backup-20261203T000000Z-cccc", "src", "bak", true),
			ok("backup-20261204T000000Z-dddd", "other", "bak", false),
			ok("restore-20261205T000000Z-eeee", "src", "bak", false),
			{Status: report.Succeeded, Execution: "verify-20261206T000000Z-ffff", SourceBucket: "src", BackupBucket: "bak", Verify: &report.Verify{}},
		}, "backup-20261201T000000Z-aaaa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := s3fake.New()
			f.AddBucket("runs", false)
			for _, r := range tt.reports {
				putReport(t, f, r)
			}
			r, found, err := LastSucceeded(context.Background(), f, "runs", "src", "bak")
			if err != nil {
				t.Fatal(err)
			}
			if got := ""; found {
				got = r.Execution
				if got != tt.want {
					t.Fatalf("LastSucceeded = %q, want %q", got, tt.want)
				}
			} else if tt.want != "" {
				t.Fatalf("none found, want %q", tt.want)
			}
		})
	}
}

// A verify run is listed as one, and is not a moment to restore to.
func TestVerifyKind(t *testing.T) {
	f := setup(t, 0)
	putReport(t, f, report.Report{Status: report.Failed, Error: "VerifyMismatch", Execution: "verify-20261206T000000Z-ffff", StartedAt: "2026-12-06T00:00:00Z", FinishedAt: "2026-12-06T00:01:00Z", Verify: &report.Verify{Checked: 3}})
	putReport(t, f, report.Report{Status: report.Succeeded, Execution: "drill-x", StartedAt: "2026-12-06T00:00:00Z", FinishedAt: "2026-12-06T00:01:00Z", Verify: &report.Verify{}})
	runs, err := List(context.Background(), f, "runs", 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Kind != Verify || r.Verify == nil {
			t.Errorf("%s: kind %q, verify %v; want a verify run", r.Execution, r.Kind, r.Verify)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2", len(runs))
	}
	_, err = Moment(context.Background(), f, "runs", "verify-20261206T000000Z-ffff")
	if err == nil || !strings.Contains(err.Error(), "is a verify, not a backup") {
		t.Fatalf("Moment of a verify run: %v", err)
	}
}
