package reporter

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func setup() (*s3fake.S3, *Handler) {
	f := s3fake.New()
	f.AddBucket("run", false)
	return f, &Handler{S3: f, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run"}, Logger: slog.New(slog.DiscardHandler)}
}

func putJSON(f *s3fake.S3, key string, v any) {
	b, _ := json.Marshal(v)
	f.Put("run", key, b)
}

// putBatch stores a batch of copies of keys under key.
func putBatch(f *s3fake.S3, key string, keys ...string) string {
	var items []batch.Item
	for _, k := range keys {
		items = append(items, batch.Item{Op: batch.OpCopy, Key: k, Change: "new", Size: 1})
	}
	body, _ := batch.Encode(batch.Header{Version: 1, Source: "src", Destination: "bak"}, items)
	f.Put("run", key, body)
	return key
}

func putManifest(t *testing.T, f *s3fake.S3, keys ...string) {
	t.Helper()
	if err := batch.WriteManifestKeys(context.Background(), f, "run", "exec", keys); err != nil {
		t.Fatal(err)
	}
}

// state is the state machine's data as the backup's List and Copy states leave it.
type state struct {
	Cursor  *report.Cursor[json.RawMessage] `json:"cursor,omitempty"`
	Guards  []report.Guard                  `json:"guards,omitempty"`
	Done    bool                            `json:"done"`
	DryRun  bool                            `json:"dryRun"`
	Copy    *MapResult                      `json:"copy,omitempty"`
	Failure *StateError                     `json:"failure,omitempty"`
}

func cursor(t report.Totals) *report.Cursor[json.RawMessage] {
	return &report.Cursor[json.RawMessage]{Totals: t, Position: json.RawMessage(`{"after":"z"}`)}
}

func invokeRaw(h *Handler, req Request) (report.Report, error) {
	payload, _ := json.Marshal(req)
	out, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
	if err != nil {
		return report.Report{}, err
	}
	var r report.Report
	err = json.Unmarshal(out, &r)
	return r, err
}

func invoke(t *testing.T, h *Handler, req Request) report.Report {
	t.Helper()
	r, err := invokeRaw(h, req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func stored(t *testing.T, f *s3fake.S3) report.Report {
	t.Helper()
	out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String("runs/exec/report.json")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func tripped(name string, count, of int64) report.Guard {
	errName := map[string]string{guard.Deletion: "DeletionGuardTripped", guard.Change: "MassChangeDetected"}[name]
	return report.Guard{Name: name, Count: count, Of: of, MaxPercent: 25, Floor: 10, Tripped: true, Error: errName,
		Message: fmt.Sprintf("%s guard: %d of %d. If intended, start an execution with {\"maxDeletePercent\": 100}", name, count, of)}
}

func passed(name string) report.Guard { return report.Guard{Name: name, MaxPercent: 25, Floor: 10} }

func TestStatus(t *testing.T) {
	copyDone := &MapResult{MapRunArn: "arn"}
	b0, b1, d0 := batch.Key("exec", 0), batch.Key("exec", 1), batch.DeleteKey("exec", 0)
	tests := []struct {
		name         string
		state        state
		batches      map[string][]string // batch key → its keys
		manifest     []string            // nil: no manifest
		outcomes     map[string]report.Outcome
		wantError    string
		wantCause    []string
		wantFail     int64
		wantBatches  int64
		wantWithheld int64
	}{
		{name: "all copied", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 2, New: 2}), Guards: []report.Guard{passed(guard.Deletion), passed(guard.Change)}},
			batches: map[string][]string{b0: {"a", "b"}}, manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}}, wantBatches: 1},
		{name: "one object failed", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 2, New: 2})},
			batches: map[string][]string{b0: {"a", "b"}}, manifest: []string{b0},
			outcomes:  map[string]report.Outcome{b0: {Items: 2, Copied: 1, Failed: 1, Failures: []report.Failure{{Key: "b", Op: "copy", Error: "AccessDenied"}}}},
			wantError: "BackupIncomplete", wantCause: []string{"1 objects were not backed up"}, wantFail: 1, wantBatches: 1},
		{name: "a batch never completed", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 3, New: 3})},
			batches: map[string][]string{b0: {"a"}, b1: {"b", "c"}}, manifest: []string{b0, b1}, outcomes: map[string]report.Outcome{b0: {Items: 1, Copied: 1}},
			wantError: "BackupIncomplete", wantCause: []string{"1 of 2 batches failed"}, wantFail: 2, wantBatches: 2},
		{name: "lister failed", state: state{Failure: &StateError{Error: "BucketNotFound", Cause: `{"errorMessage":"source bucket \"x\" does not exist","errorType":"BucketNotFound"}`}},
			wantError: "BucketNotFound", wantCause: []string{`source bucket "x" does not exist`}},
		{name: "counts do not add up", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 3, New: 3})},
			batches: map[string][]string{b0: {"a", "b"}}, manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}},
			wantError: "BackupIncomplete", wantCause: []string{"counts do not add up"}, wantBatches: 1},
		{name: "filtered: listed = new + changed + unchanged + excluded", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 4, New: 2, Excluded: 2, ExcludedByRule: map[string]int64{"glob:*.tmp": 1, "size>1GiB": 1}})},
			batches: map[string][]string{b0: {"a", "b"}}, manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}}, wantBatches: 1},
		{name: "listed objects unaccounted for", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 5, New: 2, Excluded: 2, ExcludedByRule: map[string]int64{"glob:*.tmp": 2}})},
			batches: map[string][]string{b0: {"a", "b"}}, manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}},
			wantError: "BackupIncomplete", wantCause: []string{"counts do not add up: 5 listed but 4 sorted (new 2 + changed 0 + unchanged 0 + excluded 2)"}, wantBatches: 1},
		{name: "excluded by rule do not sum to excluded", state: state{Done: true, DryRun: true, Cursor: cursor(report.Totals{Listed: 3, New: 1, Excluded: 2, ExcludedByRule: map[string]int64{"glob:*.tmp": 1}})},
			wantError: "BackupIncomplete", wantCause: []string{"the excluded counted by rule sum to 1"}},
		{name: "dry run", state: state{Done: true, DryRun: true, Cursor: cursor(report.Totals{Listed: 3, New: 3})}},
		// Nothing to copy or mark: the Copy state is skipped and the manifest is empty.
		{name: "idle run", state: state{Done: true, Cursor: cursor(report.Totals{Listed: 3, Unchanged: 3}), Guards: []report.Guard{passed(guard.Deletion), passed(guard.Change)}}, manifest: []string{}},
		{name: "no manifest: the copy phase never started", state: state{Done: true, Cursor: cursor(report.Totals{Listed: 1, New: 1}), Failure: &StateError{Error: "States.ItemReaderFailed", Cause: "access denied"}},
			wantError: "BackupIncomplete", wantCause: []string{"the copy phase failed (States.ItemReaderFailed: access denied)"}},
		// A batch file a failed lister attempt left behind is not in the manifest: neither run nor reported.
		{name: "stale batch", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 1, New: 1})},
			batches: map[string][]string{b0: {"a"}, batch.Key("exec", 7): {"stale"}}, manifest: []string{b0},
			outcomes: map[string]report.Outcome{b0: {Items: 1, Copied: 1}}, wantBatches: 1},
		// The deletion guard tripped: its deletions are withheld (not in the manifest) and count as
		// accounted for; the copies ran; the run ends with the guard's error.
		{name: "deletion guard tripped, copies done", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 9, New: 1, Changed: 1, Unchanged: 7, ToDelete: 11, BackupObjects: 19}),
			Guards: []report.Guard{tripped(guard.Deletion, 11, 19), passed(guard.Change)}},
			batches: map[string][]string{b0: {"n", "c"}, d0: {"gone"}}, manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}},
			wantError: "DeletionGuardTripped", wantCause: []string{"deletion guard: 11 of 19", `{"maxDeletePercent": 100}`}, wantBatches: 1, wantWithheld: 11},
		{name: "deletion guard tripped, a copy failed", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 2, New: 2, ToDelete: 11, BackupObjects: 11}),
			Guards: []report.Guard{tripped(guard.Deletion, 11, 11), passed(guard.Change)}},
			batches: map[string][]string{b0: {"a", "b"}}, manifest: []string{b0},
			outcomes:  map[string]report.Outcome{b0: {Items: 2, Copied: 1, Failed: 1, Failures: []report.Failure{{Key: "b", Op: "copy", Error: "AccessDenied"}}}},
			wantError: "BackupIncomplete", wantCause: []string{"1 objects were not backed up", "also tripped DeletionGuardTripped: deletion guard: 11 of 11"}, wantFail: 1, wantBatches: 1, wantWithheld: 11},
		{name: "mass change after the copies", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 20, Changed: 15, Unchanged: 5, BackupObjects: 20}),
			Guards: []report.Guard{passed(guard.Deletion), tripped(guard.Change, 15, 20)}},
			batches: map[string][]string{b0: {"x"}}, manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 15, Copied: 15}},
			wantError: "MassChangeDetected", wantCause: []string{"change guard: 15 of 20"}, wantBatches: 1},
		{name: "both guards", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 20, Changed: 15, Unchanged: 5, ToDelete: 12, BackupObjects: 32}),
			Guards: []report.Guard{tripped(guard.Deletion, 12, 32), tripped(guard.Change, 15, 32)}},
			batches: map[string][]string{b0: {"x"}}, manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 15, Copied: 15}},
			wantError: "DeletionGuardTripped", wantCause: []string{"deletion guard: 12 of 32", "also tripped MassChangeDetected: change guard: 15 of 32"}, wantBatches: 1, wantWithheld: 12},
		{name: "dry run trips a guard", state: state{Done: true, DryRun: true, Cursor: cursor(report.Totals{ToDelete: 11, BackupObjects: 11}), Guards: []report.Guard{tripped(guard.Deletion, 11, 11)}},
			wantError: "DeletionGuardTripped", wantCause: []string{"deletion guard: 11 of 11"}},
		// Archived sources skipped by name count as accounted for: the run succeeds.
		{name: "archived sources skipped", state: state{Done: true, Copy: copyDone, Cursor: cursor(report.Totals{Listed: 2, New: 2, Archived: 1})},
			batches: map[string][]string{b0: {"warm", "cold"}}, manifest: []string{b0},
			outcomes:    map[string]report.Outcome{b0: {Items: 2, Copied: 1, Skipped: 1, Skips: []report.Skip{{Key: "cold", Reason: "archived (GLACIER): not copied"}}}},
			wantBatches: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			for key, keys := range tt.batches {
				putBatch(f, key, keys...)
				if o, ok := tt.outcomes[key]; ok {
					okey, _ := batch.OutcomeKey(key)
					putJSON(f, okey, o)
				}
			}
			if tt.manifest != nil {
				putManifest(t, f, tt.manifest...)
			}
			r := invoke(t, h, Request{Execution: "exec", StartedAt: "2026-11-24T02:00:00.000Z", Input: json.RawMessage(`{}`), State: mustJSON(tt.state)})
			wantStatus := report.Succeeded
			if tt.wantError != "" {
				wantStatus = report.Failed
			}
			if r.Status != wantStatus || r.Error != tt.wantError || r.Failed != tt.wantFail || r.Batches != tt.wantBatches || r.Withheld != tt.wantWithheld {
				t.Fatalf("report status %s error %q cause %q failed %d batches %d withheld %d", r.Status, r.Error, r.Cause, r.Failed, r.Batches, r.Withheld)
			}
			for _, want := range tt.wantCause {
				if !strings.Contains(r.Cause, want) {
					t.Errorf("cause %q lacks %q", r.Cause, want)
				}
			}
			if len(r.Guards) != len(tt.state.Guards) {
				t.Errorf("report guards %+v, state's %+v", r.Guards, tt.state.Guards)
			}
			for _, f := range r.Failures {
				if f.Key == "stale" {
					t.Errorf("a stale batch's object was reported: %+v", f)
				}
			}
			s := stored(t, f)
			if s.Status != r.Status || int64(len(s.Failures)) != s.Failed || s.Guards == nil || s.Notes == nil {
				t.Fatalf("stored report %+v", s)
			}
		})
	}
}

// The cursor and the guards decide the run: a renamed field in either fails loudly instead of
// reading as zero. The rest of the state (what AWS adds) is read leniently.
func TestStateDecodedStrictly(t *testing.T) {
	for _, tt := range []struct{ name, state, want string }{
		{"renamed totals field", `{"done":true,"cursor":{"totals":{"listed":1,"nwe":1},"position":{}}}`, `unknown field "nwe"`},
		{"flat cursor of an old lister", `{"done":true,"cursor":{"after":"a","nextBatch":1,"listed":1}}`, `unknown field "after"`},
		{"renamed guard field", `{"done":true,"cursor":{"totals":{},"position":null},"guards":[{"name":"deletion","trippd":true}]}`, `unknown field "trippd"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, h := setup()
			_, err := invokeRaw(h, Request{Execution: "exec", State: json.RawMessage(tt.state)})
			if err == nil || !strings.Contains(err.Error(), tt.want) || reflect.TypeOf(err).Elem().Name() != "InvalidInput" {
				t.Fatalf("err = %v (%T), want InvalidInput naming %s", err, err, tt.want)
			}
		})
	}
	f, h := setup()
	putManifest(t, f)
	// A restore's state: the planner's own fields and position, and what the Map adds.
	r := invoke(t, h, Request{Execution: "exec", Input: json.RawMessage(`{"at":"2030-01-01T00:00:00Z","requestedBy":"Ana <ana@example.com>"}`),
		State: json.RawMessage(`{"done":true,"thawPending":0,"restoredAt":"2030-01-01T00:00:00Z",` +
			`"cursor":{"totals":{"listed":2,"unchanged":2},"position":{"after":"k","scope":1}},"copy":{"MapRunArn":"arn","ResultWriterDetails":{"Bucket":"run","Key":"m"},"Extra":1}}`)})
	if r.Status != report.Succeeded || r.Listed != 2 || r.RestoredAt != "2030-01-01T00:00:00Z" || len(r.Guards) != 0 || r.RequestedBy != "Ana <ana@example.com>" {
		t.Fatalf("restore report %+v", r)
	}
	var stored report.Report
	if err := json.Unmarshal(f.Versions("run", batch.ReportKey("exec"))[len(f.Versions("run", batch.ReportKey("exec")))-1].Body, &stored); err != nil || stored.RequestedBy != r.RequestedBy {
		t.Fatalf("report.json requestedBy %q (%v), want %q", stored.RequestedBy, err, r.RequestedBy)
	}
}

// Notes of every batch reach the report, in the manifest's batch order and by key within a batch.
func TestNotesAggregated(t *testing.T) {
	f, h := setup()
	b0, b1 := putBatch(f, batch.Key("exec", 0), "m", "z"), putBatch(f, batch.Key("exec", 1), "a")
	putManifest(t, f, b0, b1)
	for key, o := range map[string]report.Outcome{
		b0: {Items: 2, Copied: 2, Notes: []report.Note{{Key: "z", Note: "tie"}, {Key: "m", Note: "tie"}}},
		b1: {Items: 1, Copied: 1, Notes: []report.Note{{Key: "a", Note: "tie"}}},
	} {
		okey, _ := batch.OutcomeKey(key)
		putJSON(f, okey, o)
	}
	r := invoke(t, h, Request{Execution: "exec", State: mustJSON(state{Done: true, Copy: &MapResult{}, Cursor: cursor(report.Totals{Listed: 3, New: 3})})})
	var keys []string
	for _, n := range r.Notes {
		keys = append(keys, n.Key)
	}
	if r.Status != report.Succeeded || !reflect.DeepEqual(keys, []string{"m", "z", "a"}) {
		t.Fatalf("status %s, notes %+v", r.Status, r.Notes)
	}
}

// report.json names every failure and skip; the execution output carries as many of the first
// ones as fit in report.DefaultOutputListBytes, and counts the rest. 100 failures and 100 skips
// with 1 KiB keys made an output over 256 KiB (States.DataLimitExceeded) before the cut was by bytes.
func TestOutputBoundedByBytes(t *testing.T) {
	long := func(i int) string { return fmt.Sprintf("k%04d/", i) + strings.Repeat("x", 1018) }
	for _, tt := range []struct {
		name            string
		failures, skips int
		key             func(int) string
		wantAllInOutput bool
	}{
		{"100 short failures fit", 100, 0, func(i int) string { return fmt.Sprintf("k%03d", i) }, true},
		{"100 failures and 100 skips with 1 KiB keys", 100, 100, long, false},
		{"5000 failures with 1 KiB keys", 5000, 0, long, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			var keys []string
			o := report.Outcome{}
			for i := range tt.failures + tt.skips {
				k := tt.key(i)
				keys = append(keys, k)
				if i < tt.failures {
					o.Failed++
					o.Failures = append(o.Failures, report.Failure{Key: k, Op: "copy", Error: "operation error S3: CopyObject, " + strings.Repeat("AccessDenied ", 60)})
				} else {
					o.Skipped++
					o.Skips = append(o.Skips, report.Skip{Key: k, Reason: "archived (GLACIER): not copied"})
				}
			}
			o.Items = len(keys)
			b0 := putBatch(f, batch.Key("exec", 0), keys...)
			okey, _ := batch.OutcomeKey(b0)
			putJSON(f, okey, o)
			putManifest(t, f, b0)
			payload, _ := json.Marshal(Request{Execution: "exec", State: mustJSON(state{Done: true, Copy: &MapResult{}, Cursor: cursor(report.Totals{Listed: int64(len(keys)), New: int64(len(keys))})})})
			out, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) > 128<<10 {
				t.Fatalf("execution output is %d bytes", len(out))
			}
			var r report.Report
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			lists, _ := json.Marshal([]any{r.Failures, r.Skips, r.Notes})
			if len(lists) > report.DefaultOutputListBytes+8 {
				t.Errorf("failures, skips and notes in the output: %d bytes", len(lists))
			}
			if int64(len(r.Failures))+r.FailuresOmitted != int64(tt.failures) || int64(len(r.Skips))+r.SkipsOmitted != int64(tt.skips) {
				t.Fatalf("output: %d failures + %d omitted, %d skips + %d omitted", len(r.Failures), r.FailuresOmitted, len(r.Skips), r.SkipsOmitted)
			}
			if all := r.FailuresOmitted+r.SkipsOmitted == 0; all != tt.wantAllInOutput {
				t.Errorf("all in output = %v, want %v", all, tt.wantAllInOutput)
			}
			if len(r.Failures) == 0 || r.Failures[0].Key != keys[0] || len(r.Failures[0].Error) > report.MaxTextInOutput+len("…") {
				t.Errorf("first failure in the output: %+v", r.Failures[:min(1, len(r.Failures))])
			}
			s := stored(t, f)
			if len(s.Failures) != tt.failures || len(s.Skips) != tt.skips || s.FailuresOmitted != 0 || s.SkipsOmitted != 0 {
				t.Fatalf("report.json: %d failures, %d skips, omitted %d/%d", len(s.Failures), len(s.Skips), s.FailuresOmitted, s.SkipsOmitted)
			}
			for i, f := range s.Failures {
				if f.Key != keys[i] || f.Batch != b0 || !strings.HasSuffix(f.Error, "AccessDenied ") {
					t.Fatalf("report.json failure %d: %+v", i, f)
				}
			}
		})
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// An exact restore's dry run names, as notes, the objects its real run would remove: the removal
// items of the batches in its preview manifest; a dry run without one (any other) names nothing.
func TestDryRunNamesRemovals(t *testing.T) {
	for _, withPreview := range []bool{true, false} {
		f, h := setup()
		items := []batch.Item{
			{Op: batch.OpDelete, Key: "docs/note.txt", Change: "removed", Size: 6, Reason: "not in the backup: never backed up"},
			{Op: batch.OpDelete, Key: "docs/a.txt.locked", DestKey: "r/docs/a.txt.locked", Change: "removed", Size: 9, Reason: "not in the backup: never backed up"},
		}
		body, _ := batch.Encode(batch.Header{Version: 1, Source: "bak", Destination: "vt"}, items)
		f.Put("run", batch.Key("exec", 0), body)
		if withPreview {
			if err := batch.WritePreviewManifest(context.Background(), f, "run", "exec", 1); err != nil {
				t.Fatal(err)
			}
		}
		st := map[string]any{"cursor": cursor(report.Totals{Listed: 2, Unchanged: 2, ToDelete: 2, Batches: 1}), "done": true, "dryRun": true,
			"restoredAt": "2026-11-20T10:00:00Z", "targetBucket": "vt"}
		r := invoke(t, h, Request{Execution: "exec", State: mustJSON(st)})
		var want []report.Note
		if withPreview {
			want = []report.Note{
				{Key: "docs/note.txt", Note: "would be removed (exact restore): not in the backup: never backed up"},
				{Key: "r/docs/a.txt.locked", Note: "would be removed (exact restore): not in the backup: never backed up"},
			}
		}
		if r.Status != report.Succeeded || r.ToDelete != 2 || r.Deleted != 0 || len(r.Notes) != len(want) || (len(want) > 0 && !reflect.DeepEqual(r.Notes, want)) {
			t.Errorf("preview %v: status %s, toDelete %d, deleted %d, notes %+v", withPreview, r.Status, r.ToDelete, r.Deleted, r.Notes)
		}
		if s := stored(t, f); !reflect.DeepEqual(s.Notes, r.Notes) && len(s.Notes)+len(r.Notes) > 0 {
			t.Errorf("report.json notes %+v, output %+v", s.Notes, r.Notes)
		}
	}
}
