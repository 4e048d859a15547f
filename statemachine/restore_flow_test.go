package statemachine_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/copier"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/planner"
	"github.com/bucketvault/bucketvault/shared/reporter"
	"github.com/bucketvault/bucketvault/shared/s3fake"
	"github.com/bucketvault/bucketvault/statemachine"
	"github.com/bucketvault/bucketvault/statemachine/local"
)

// restoreFlow is the restore state machine on the recording fake (MinIO cannot archive), with the
// planner, copier and reporter handlers in-process.
type restoreFlow struct {
	f       *s3fake.S3
	planner *planner.Handler
	exec    *local.Executor
	waits   []time.Duration
	// onWait, when set, runs during each Wait state (n counts them from 1).
	onWait func(n int)
}

func newRestoreFlow(t *testing.T) *restoreFlow {
	t.Helper()
	f := s3fake.New()
	for _, b := range []string{"src", "bak", "run", "target"} {
		f.AddBucket(b, b == "bak")
	}
	logger := slog.New(slog.DiscardHandler)
	arn := func(name string) string { return "arn:aws:lambda:us-east-1:123456789012:function:" + name }
	def, err := statemachine.Render(statemachine.Restore, map[string]string{
		"PlannerFunctionArn": arn("planner"), "CopierFunctionArn": arn("copier"), "ReporterFunctionArn": arn("reporter"), "RunBucket": "run",
	})
	if err != nil {
		t.Fatal(err)
	}
	rf := &restoreFlow{f: f}
	rf.planner = &planner.Handler{S3: f, Logger: logger, Config: planner.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run",
		RestoreTargets: []string{"target"}, BatchSize: 1000, BatchBytes: 1 << 40, ThawCheckSeconds: 3600}}
	cp := &copier.Handler{S3: f, Logger: logger, Config: copier.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run",
		RestoreTargets: []string{"target"}, Concurrency: 4, MultipartThreshold: 5 << 30, PartSize: 8 << 20, PartConcurrency: 2}}
	rp := &reporter.Handler{S3: f, Logger: logger, Config: reporter.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run"}}
	rf.exec, err = local.New(def, local.Options{
		StateMachineName: "bucketvault-restore", S3: f, Logger: logger,
		Functions: map[string]local.FunctionConfig{
			"planner":  {Handler: lambdafn.Handler(rf.planner.Handle, nil)},
			"copier":   {Handler: lambdafn.Handler(cp.Handle, nil)},
			"reporter": {Handler: lambdafn.Handler(rp.Handle, nil)},
		},
		Sleep: func(ctx context.Context, d time.Duration) error {
			rf.waits = append(rf.waits, d)
			if rf.onWait != nil {
				rf.onWait(len(rf.waits))
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rf
}

// restoreReport is the part of the execution output these tests read.
type restoreReport struct {
	Listed, Copied, Archived, Batches int64
	RestoredAt                        string
}

func (rf *restoreFlow) run(t *testing.T, name, input string) (*local.Execution, restoreReport) {
	t.Helper()
	x, err := rf.exec.Run(context.Background(), name, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "SUCCEEDED" {
		t.Fatalf("restore %s %s: %s", x.Status, x.Error, x.Cause)
	}
	var rep restoreReport
	if err := json.Unmarshal(x.Output, &rep); err != nil {
		t.Fatalf("output %s: %v", x.Output, err)
	}
	return x, rep
}

func (rf *restoreFlow) target(t *testing.T, key string) (string, bool) {
	t.Helper()
	out, err := rf.f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("target"), Key: aws.String(key)})
	if err != nil {
		return "", false
	}
	got, _ := io.ReadAll(out.Body)
	return string(got), true
}

// entered counts the times the execution entered a state.
func entered(x *local.Execution, state string) int {
	n := 0
	for _, ev := range x.Events {
		if strings.HasSuffix(ev.Type, "StateEntered") && ev.Details["name"] == state {
			n++
		}
	}
	return n
}

// Archived versions: the restore state machine thaws them, waits in its Wait/Choice loop until
// they are readable, then copies. A thaw check that looks at one version per invocation
// (THAW_CHECK_MAX_ITEMS 1) loops CheckThaw over all of them before it decides.
func TestRestoreThawsArchivedVersionsThenCopies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxItems   int64
		wantChecks int // CheckThaw invocations: two passes over two archived versions
	}{
		{"one invocation per check", 0, 2},
		{"one version per invocation", 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rf := newRestoreFlow(t)
			rf.planner.Config.ThawCheckMaxItems = tc.maxItems
			rf.f.Put("bak", "cold/a.txt", []byte("alpha"))
			rf.f.Put("bak", "cold/b.txt", []byte("beta"))
			rf.f.Archive("bak", "GLACIER")
			rf.f.Put("bak", "warm.txt", []byte("warm"))
			rf.onWait = func(n int) {
				if n == 2 {
					rf.f.ThawAll() // the archive tier finishes thawing during the second wait
				}
			}
			x, rep := rf.run(t, "restore-cold", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "thawCheckSeconds": 900}`)
			if rep.Copied != 3 || rep.Archived != 2 || rep.RestoredAt != "2030-01-01T00:00:00Z" {
				t.Fatalf("output %s", x.Output)
			}
			if !slices.Equal(rf.waits, []time.Duration{900 * time.Second, 900 * time.Second}) {
				t.Errorf("waits %v, want two of 15 minutes", rf.waits)
			}
			if n := entered(x, "CheckThaw"); n != tc.wantChecks {
				t.Errorf("CheckThaw ran %d times, want %d", n, tc.wantChecks)
			}
			if n := rf.f.Count("RestoreObject"); n != 2 {
				t.Errorf("%d RestoreObject calls, want one per archived version", n)
			}
			for key, want := range map[string]string{"cold/a.txt": "alpha", "cold/b.txt": "beta", "warm.txt": "warm"} {
				if got, ok := rf.target(t, key); !ok || got != want {
					t.Errorf("%s = %q (present %v), want %q", key, got, ok, want)
				}
			}
			var types []string
			for _, ev := range x.Events {
				if strings.HasPrefix(ev.Type, "Wait") {
					types = append(types, ev.Type)
				}
			}
			if len(types) != 4 {
				t.Errorf("history has wait events %v, want two entered/exited pairs", types)
			}
		})
	}
}

// A batch file that a failed planner attempt left under the batch prefix, past the batches of
// the plan, is never run: the Copy Map reads the plan's manifest, not a listing of the prefix.
func TestRestoreRunsOnlyThePlansBatches(t *testing.T) {
	rf := newRestoreFlow(t)
	rf.f.Put("bak", "wanted.txt", []byte("wanted"))
	rf.f.Put("bak", "stale.txt", []byte("stale"))
	const name = "restore-stale"
	// What an earlier attempt wrote as batch 1 before it failed; this plan writes batch 0 only.
	body, err := batch.Encode(batch.Header{Version: batch.Version, Source: "bak", Destination: "target"},
		[]batch.Item{{Op: batch.OpCopy, Key: "stale.txt", Change: "new", Size: 5, LastModified: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	rf.f.Put("run", batch.Key(name, 1), body)

	x, rep := rf.run(t, name, `{"keys": ["wanted.txt"], "at": "2030-01-01T00:00:00Z", "targetBucket": "target"}`)
	if rep.Listed != 1 || rep.Copied != 1 || rep.Batches != 1 {
		t.Fatalf("output %s", x.Output)
	}
	if got, ok := rf.target(t, "wanted.txt"); !ok || got != "wanted" {
		t.Fatalf("wanted.txt = %q (present %v)", got, ok)
	}
	if _, ok := rf.target(t, "stale.txt"); ok {
		t.Fatal("the stale batch ran: stale.txt was copied into the target")
	}
}

// A restore with nothing to copy (the target already holds every version) does not start the
// Copy Map over an empty manifest, and succeeds.
func TestRestoreNothingToCopy(t *testing.T) {
	rf := newRestoreFlow(t)
	rf.f.Put("bak", "same.txt", []byte("same"))
	rf.f.Put("target", "same.txt", []byte("same"))
	x, rep := rf.run(t, "restore-same", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target"}`)
	if rep.Listed != 1 || rep.Copied != 0 || rep.Batches != 0 {
		t.Fatalf("output %s", x.Output)
	}
	if n := entered(x, "Copy"); n != 0 {
		t.Fatalf("the Copy Map ran %d times over an empty plan", n)
	}
}

// A key whose version and delete marker tie at the moment is restored (no data lost) and named
// in the report's notes with what was chosen and why.
func TestRestoreNamesAmbiguousKeys(t *testing.T) {
	rf := newRestoreFlow(t)
	rf.planner.S3 = s3fake.Coarse{S3: rf.f, Precision: time.Minute}
	rf.f.Tick(time.Hour)
	rf.f.Put("bak", "tie.txt", []byte("kept data"))
	if _, err := rf.f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String("tie.txt")}); err != nil {
		t.Fatal(err)
	}
	at := rf.f.Tick(time.Hour)
	rf.f.Tick(time.Hour)
	rf.f.Put("bak", "tie.txt", []byte("later")) // the tie is not the key's latest state

	x, rep := rf.run(t, "restore-tie", `{"at": "`+at.Format(time.RFC3339)+`", "targetBucket": "target"}`)
	if got, ok := rf.target(t, "tie.txt"); !ok || got != "kept data" || rep.Copied != 1 {
		t.Fatalf("tie.txt = %q (present %v); output %s", got, ok, x.Output)
	}
	var out struct {
		Notes []struct{ Key, Note string }
	}
	if err := json.Unmarshal(x.Output, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Notes) != 1 || out.Notes[0].Key != "tie.txt" || !strings.Contains(out.Notes[0].Note, "delete marker") {
		t.Fatalf("notes %+v, want one naming tie.txt and the delete marker", out.Notes)
	}
}
