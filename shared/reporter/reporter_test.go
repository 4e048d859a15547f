package reporter

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
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

func putBatch(f *s3fake.S3, seq int, keys ...string) string {
	var items []batch.Item
	for _, k := range keys {
		items = append(items, batch.Item{Op: batch.OpCopy, Key: k, Change: "new", Size: 1})
	}
	body, _ := batch.Encode(batch.Header{Version: 1, Source: "src", Destination: "bak"}, items)
	key := batch.Key("exec", seq)
	f.Put("run", key, body)
	return key
}

func invoke(t *testing.T, h *Handler, req Request) report.Report {
	t.Helper()
	payload, _ := json.Marshal(req)
	out, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(out, &r); err != nil {
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

func TestStatus(t *testing.T) {
	copyDone := &MapResult{MapRunArn: "arn"}
	tests := []struct {
		name      string
		state     State
		outcomes  map[int]report.Outcome // batch seq → outcome; batches without one failed
		batches   map[int][]string
		wantError string
		wantCause string
		wantFail  int64
	}{
		{name: "all copied", state: State{Done: true, Copy: copyDone, Cursor: &Totals{Listed: 2, New: 2}},
			batches: map[int][]string{0: {"a", "b"}}, outcomes: map[int]report.Outcome{0: {Items: 2, Copied: 2}}},
		{name: "one object failed", state: State{Done: true, Copy: copyDone, Cursor: &Totals{Listed: 2, New: 2}},
			batches:   map[int][]string{0: {"a", "b"}},
			outcomes:  map[int]report.Outcome{0: {Items: 2, Copied: 1, Failed: 1, Failures: []report.Failure{{Key: "b", Op: "copy", Error: "AccessDenied"}}}},
			wantError: "BackupIncomplete", wantCause: "1 objects were not backed up", wantFail: 1},
		{name: "a batch never completed", state: State{Done: true, Copy: copyDone, Cursor: &Totals{Listed: 3, New: 3}},
			batches: map[int][]string{0: {"a"}, 1: {"b", "c"}}, outcomes: map[int]report.Outcome{0: {Items: 1, Copied: 1}},
			wantError: "BackupIncomplete", wantCause: "1 of 2 batches failed", wantFail: 2},
		{name: "lister failed", state: State{Failure: &StateError{Error: "DeletionGuardTripped", Cause: `{"errorMessage":"would mark 9 of 10","errorType":"DeletionGuardTripped"}`}},
			wantError: "DeletionGuardTripped", wantCause: "would mark 9 of 10"},
		{name: "counts do not add up", state: State{Done: true, Copy: copyDone, Cursor: &Totals{Listed: 3, New: 3}},
			batches: map[int][]string{0: {"a", "b"}}, outcomes: map[int]report.Outcome{0: {Items: 2, Copied: 2}},
			wantError: "BackupIncomplete", wantCause: "counts do not add up"},
		{name: "dry run", state: State{Done: true, DryRun: true, Cursor: &Totals{Listed: 3, New: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			for seq, keys := range tt.batches {
				key := putBatch(f, seq, keys...)
				if o, ok := tt.outcomes[seq]; ok {
					okey, _ := batch.OutcomeKey(key)
					putJSON(f, okey, o)
				}
			}
			r := invoke(t, h, Request{Execution: "exec", StartedAt: "2026-11-24T02:00:00.000Z", Input: json.RawMessage(`{}`), State: mustJSON(tt.state)})
			wantStatus := report.Succeeded
			if tt.wantError != "" {
				wantStatus = report.Failed
			}
			if r.Status != wantStatus || r.Error != tt.wantError || !strings.Contains(r.Cause, tt.wantCause) || r.Failed != tt.wantFail {
				t.Fatalf("report status %s error %q cause %q failed %d", r.Status, r.Error, r.Cause, r.Failed)
			}
			if s := stored(t, f); s.Status != r.Status || int64(len(s.Failures)) != s.Failed {
				t.Fatalf("stored report %+v", s)
			}
		})
	}
}

// report.json names every failure; the execution output carries the first 100 and a count.
func TestFailuresCutOnlyInOutput(t *testing.T) {
	f, h := setup()
	var keys []string
	for i := range 150 {
		keys = append(keys, "k"+strings.Repeat("0", 3-len(itoa(i)))+itoa(i))
	}
	putBatch(f, 0, keys...)
	r := invoke(t, h, Request{Execution: "exec", State: mustJSON(State{Done: true, Copy: &MapResult{}, Cursor: &Totals{Listed: 150, New: 150}})})
	if len(r.Failures) != 100 || r.FailuresOmitted != 50 || r.Failed != 150 {
		t.Fatalf("output: %d failures, %d omitted, failed %d", len(r.Failures), r.FailuresOmitted, r.Failed)
	}
	if s := stored(t, f); len(s.Failures) != 150 || s.FailuresOmitted != 0 {
		t.Fatalf("report.json: %d failures, %d omitted", len(s.Failures), s.FailuresOmitted)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
