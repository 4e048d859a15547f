package local

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// loadBackup reads ../backup.asl.json with its ${…} substitutions made.
func loadBackup(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../backup.asl.json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(
		"${ListerFunctionArn}", "arn:aws:lambda:us-east-1:123456789012:function:lister",
		"${CopierFunctionArn}", "arn:aws:lambda:us-east-1:123456789012:function:copier",
		"${ReporterFunctionArn}", "arn:aws:lambda:us-east-1:123456789012:function:reporter",
		"${RunBucket}", "runs",
	).Replace(string(b))
}

type listerIn struct {
	Execution string          `json:"execution"`
	Input     json.RawMessage `json:"input"`
	Cursor    *string         `json:"cursor"`
}

type listerOut struct {
	Cursor          *string          `json:"cursor"`
	Done            bool             `json:"done"`
	DryRun          bool             `json:"dryRun"`
	ManifestKey     string           `json:"manifestKey"`
	ManifestBatches int              `json:"manifestBatches"`
	Guards          []map[string]any `json:"guards"`
	Ranges          int              `json:"ranges"`
	RangesKey       string           `json:"rangesKey"`
	ListConcurrency int              `json:"listConcurrency"` // always present, as the lister's
}

type copierIn struct {
	Execution  string `json:"execution"`
	BatchKey   string `json:"batchKey"`
	RetryCount int    `json:"retryCount"`
}

// The backup definition loops the lister, runs one copier per batch the lister's manifest lists
// (never a batch file outside it), and ends as the reporter says.
func TestBackupDefinitionEndToEnd(t *testing.T) {
	tests := []struct {
		name       string
		report     map[string]any
		wantStatus string
		wantError  string
		wantCause  string
	}{
		{name: "succeeded", report: map[string]any{"status": "SUCCEEDED", "copied": 3}, wantStatus: "SUCCEEDED"},
		{name: "incomplete", report: map[string]any{"status": "FAILED", "error": "BackupIncomplete", "cause": "2 objects failed"},
			wantStatus: "FAILED", wantError: "BackupIncomplete", wantCause: "2 objects failed"},
		{name: "guard", report: map[string]any{"status": "FAILED", "error": "DeletionGuardTripped", "cause": "would mark 11 of 20"},
			wantStatus: "FAILED", wantError: "DeletionGuardTripped", wantCause: "would mark 11 of 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newFakeS3("runs")
			var listCalls atomic.Int32
			var reporterState atomic.Value
			lister := fn(func(_ context.Context, in listerIn) (listerOut, error) {
				n := listCalls.Add(1)
				var input map[string]string
				if json.Unmarshal(in.Input, &input) != nil || in.Execution != "nightly" || input["source"] != "src" || input["backup"] != "dst" {
					t.Errorf("lister input: %+v", in)
				}
				if (n == 1) != (in.Cursor == nil) {
					t.Errorf("call %d: cursor %v", n, in.Cursor)
				}
				prefix := "work/nightly/batches/"
				store.put("runs", prefix+"batch-"+string(rune('0'+n))+".json", `{"keys":["a"]}`)
				c := "c" + string(rune('0'+n))
				out := listerOut{Cursor: &c, Done: n == 2, Guards: []map[string]any{}}
				if out.Done {
					// A batch a failed attempt left behind, which the manifest does not list.
					store.put("runs", prefix+"batch-7.json", `{"keys":["stale"]}`)
					store.put("runs", "work/nightly/manifest.jsonl", `{"Key":"`+prefix+`batch-1.json"}`+"\n"+`{"Key":"`+prefix+`batch-2.json"}`+"\n")
					out.ManifestKey, out.ManifestBatches = "work/nightly/manifest.jsonl", 2
					out.Guards = []map[string]any{{"name": "deletion", "tripped": false}}
				}
				return out, nil
			})
			var copied sync.Map
			copier := fn(func(_ context.Context, in copierIn) (map[string]any, error) {
				if in.Execution != "nightly" || !strings.HasPrefix(in.BatchKey, "work/nightly/batches/batch-") || strings.HasSuffix(in.BatchKey, "-7.json") {
					t.Errorf("copier input: %+v", in)
				}
				copied.Store(in.BatchKey, true)
				return map[string]any{"batchKey": in.BatchKey, "copied": 1, "deleted": 0, "failed": 0, "skipped": 0,
					"bytesCopied": 10, "retries": 0, "outcomeKey": in.BatchKey + ".outcome"}, nil
			})
			reporter := fn(func(_ context.Context, in map[string]any) (map[string]any, error) {
				reporterState.Store(in)
				return tt.report, nil
			})
			opts := testOptions(map[string]FunctionConfig{"lister": lister, "copier": copier, "reporter": reporter})
			opts.StateMachineName = "bucketvault-backup"
			opts.S3 = store
			e := mustNew(t, loadBackup(t), opts)
			x, err := e.Run(context.Background(), "nightly", []byte(`{"source":"src","backup":"dst"}`))
			if err != nil {
				t.Fatal(err)
			}
			if x.Status != tt.wantStatus || x.Error != tt.wantError || x.Cause != tt.wantCause {
				t.Fatalf("status %s error %q cause %q", x.Status, x.Error, x.Cause)
			}
			if tt.wantStatus == "SUCCEEDED" {
				jsonEqual(t, x.Output, `{"status":"SUCCEEDED","copied":3}`)
			}
			wantEvents := []string{
				"ExecutionStarted",
				"PassStateEntered", "PassStateExited",
				"TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
				"ChoiceStateEntered", "ChoiceStateExited", // InRanges: no ranges
				"ChoiceStateEntered", "ChoiceStateExited",
				"TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
				"ChoiceStateEntered", "ChoiceStateExited",
				"MapStateEntered", "MapStateStarted", "MapRunStarted", "MapRunSucceeded", "MapStateSucceeded", "MapStateExited",
				"TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
				"ChoiceStateEntered", "ChoiceStateExited",
			}
			if tt.wantStatus == "SUCCEEDED" {
				wantEvents = append(wantEvents, "SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded")
			} else {
				wantEvents = append(wantEvents, "FailStateEntered", "ExecutionFailed")
			}
			if got := eventTypes(x); !reflect.DeepEqual(got, wantEvents) {
				t.Errorf("events:\n got %v\nwant %v", got, wantEvents)
			}
			for _, key := range []string{"work/nightly/batches/batch-1.json", "work/nightly/batches/batch-2.json"} {
				if _, ok := copied.Load(key); !ok {
					t.Errorf("%s was not copied", key)
				}
			}
			// The reporter sees the Map's ResultWriter reference, the guards' verdicts and the
			// execution start time.
			st := reporterState.Load().(map[string]any)
			state := st["state"].(map[string]any)
			if g, _ := state["guards"].([]any); len(g) != 1 || state["manifestKey"] != "work/nightly/manifest.jsonl" {
				t.Errorf("reporter state: %v", state)
			}
			cp := state["copy"].(map[string]any)
			details := cp["ResultWriterDetails"].(map[string]any)
			if details["Bucket"] != "runs" || !strings.HasPrefix(details["Key"].(string), "map-results/") ||
				!strings.HasPrefix(cp["MapRunArn"].(string), "arn:aws:states:us-east-1:123456789012:mapRun:bucketvault-backup/Copy:") {
				t.Errorf("copy result: %v", cp)
			}
			if st["startedAt"] != awsTime(x.StartDate) || st["execution"] != "nightly" {
				t.Errorf("reporter input: %v", st)
			}
			var manifest struct {
				ResultFiles map[string][]struct{ Key string }
			}
			if err := json.Unmarshal(store.object(t, "runs", details["Key"].(string)), &manifest); err != nil {
				t.Fatal(err)
			}
			if len(manifest.ResultFiles["SUCCEEDED"]) != 1 || len(manifest.ResultFiles["FAILED"]) != 0 {
				t.Errorf("manifest: %+v", manifest)
			}
			var recs []map[string]any
			if err := json.Unmarshal(store.object(t, "runs", manifest.ResultFiles["SUCCEEDED"][0].Key), &recs); err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2 (one per batch file)", len(recs))
			}
			h, err := x.HistoryJSON()
			if err != nil || !json.Valid(h) {
				t.Fatalf("history: %v", err)
			}
		})
	}
}

// A run with nothing to copy or mark (the manifest lists no batch) skips the Copy state.
func TestBackupDefinitionSkipsEmptyCopy(t *testing.T) {
	lister := fn(func(_ context.Context, in listerIn) (listerOut, error) {
		c := "c"
		return listerOut{Cursor: &c, Done: true, ManifestKey: "work/idle/manifest.jsonl", Guards: []map[string]any{}}, nil
	})
	copier := fn(func(_ context.Context, in copierIn) (map[string]any, error) {
		t.Errorf("copier invoked: %+v", in)
		return nil, nil
	})
	reporter := fn(func(_ context.Context, in map[string]any) (map[string]any, error) {
		return map[string]any{"status": "SUCCEEDED"}, nil
	})
	opts := testOptions(map[string]FunctionConfig{"lister": lister, "copier": copier, "reporter": reporter})
	opts.StateMachineName = "bucketvault-backup"
	opts.S3 = newFakeS3("runs")
	x, err := mustNew(t, loadBackup(t), opts).Run(context.Background(), "idle", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "SUCCEEDED" {
		t.Fatalf("status %s %s %s", x.Status, x.Error, x.Cause)
	}
	for _, ev := range eventTypes(x) {
		if strings.HasPrefix(ev, "Map") {
			t.Fatalf("the Copy state ran: %v", eventTypes(x))
		}
	}
}

// BatchInProgress, TransientError are the copier's error names as aws-lambda-go reports them
// (the Go type's name).
type BatchInProgress struct{}

func (BatchInProgress) Error() string { return "batch stopped at its deadline with work left" }

type TransientError struct{}

func (TransientError) Error() string { return "throttled" }

// A batch that stops at its deadline with work left (a large copy in parts resuming from its
// finished parts) is retried far more often than a transient failure: 20 stops in a row still
// end in a copied batch, while 5 transient failures in a row fail it.
func TestBackupDefinitionRetriesBatchInProgress(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		failures   int32
		wantCopied bool
	}{
		{"in progress 20 times", BatchInProgress{}, 20, true},
		{"transient 5 times", TransientError{}, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newFakeS3("runs")
			store.put("runs", "work/big/manifest.jsonl", `{"Key":"work/big/batches/000000.jsonl"}`+"\n")
			lister := fn(func(_ context.Context, in listerIn) (listerOut, error) {
				c := "c"
				return listerOut{Cursor: &c, Done: true, ManifestKey: "work/big/manifest.jsonl", ManifestBatches: 1, Guards: []map[string]any{}}, nil
			})
			var calls atomic.Int32
			copier := fn(func(_ context.Context, in copierIn) (map[string]any, error) {
				if calls.Add(1) <= tc.failures {
					return nil, tc.err
				}
				return map[string]any{"batchKey": in.BatchKey, "copied": 1, "deleted": 0, "failed": 0, "skipped": 0,
					"bytesCopied": 10, "retries": 0, "outcomeKey": in.BatchKey + ".outcome"}, nil
			})
			var mapFailed atomic.Bool
			reporter := fn(func(_ context.Context, in map[string]any) (map[string]any, error) {
				state := in["state"].(map[string]any)
				mapFailed.Store(state["failure"] != nil)
				return map[string]any{"status": "SUCCEEDED"}, nil
			})
			opts := testOptions(map[string]FunctionConfig{"lister": lister, "copier": copier, "reporter": reporter})
			opts.StateMachineName = "bucketvault-backup"
			opts.S3 = store
			if _, err := mustNew(t, loadBackup(t), opts).Run(context.Background(), "big", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			copied := calls.Load() == tc.failures+1
			if copied != tc.wantCopied || mapFailed.Load() == tc.wantCopied {
				t.Fatalf("copier invoked %d times, Map failed %v; want the batch copied: %v", calls.Load(), mapFailed.Load(), tc.wantCopied)
			}
		})
	}
}
