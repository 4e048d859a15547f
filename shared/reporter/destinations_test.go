package reporter

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/report"
)

// putDestinationBatch stores a batch of copies of keys to further destination name.
func putDestinationBatch(t *testing.T, key, name string, keys ...string) func(h *Handler) {
	return func(h *Handler) {
		var items []batch.Item
		for _, k := range keys {
			items = append(items, batch.Item{Op: batch.OpCopy, Key: k, Change: "new", Size: 1})
		}
		body, err := batch.Encode(batch.Header{Version: 1, Source: "src", Destination: name + "-bucket", DestinationName: name}, items)
		if err != nil {
			t.Fatal(err)
		}
		h.S3.(interface {
			Put(string, string, []byte) string
		}).Put("run", key, body)
	}
}

// A further destination has its own section; its failures fail the run naming it, while the
// backup bucket's counts stay its own.
func TestDestinationSections(t *testing.T) {
	copyDone := &MapResult{MapRunArn: "arn"}
	b0, dr0, dr1 := batch.Key("exec", 0), batch.DestinationKey("exec", "dr", 0), batch.DestinationKey("exec", "dr", 1)
	drTotals := report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", New: 3}
	primary := report.Totals{Listed: 2, New: 2}
	drGuards := []report.Guard{{Name: guard.Deletion, Destination: "dr"}, {Name: guard.Change, Destination: "dr"}}
	tests := []struct {
		name      string
		totals    report.DestinationTotals
		guards    []report.Guard
		manifest  []string
		outcomes  map[string]report.Outcome
		wantError string
		wantCause []string
		wantDR    report.Destination // counts compared
		wantFail  []string           // failure keys named with destination dr
	}{
		{name: "both complete", totals: drTotals, guards: drGuards, manifest: []string{b0, dr0, dr1},
			outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}, dr0: {Items: 2, Copied: 2, Destination: "dr"}, dr1: {Items: 1, Copied: 1, Destination: "dr"}},
			wantDR:   report.Destination{Copied: 3, Batches: 2}},
		{name: "the destination was down while copying", totals: drTotals, guards: drGuards, manifest: []string{b0, dr0, dr1},
			outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}, dr0: {Items: 2, Failed: 2, Destination: "dr",
				Failures: []report.Failure{{Key: "a", Op: "copy", Error: "connection refused", Destination: "dr"}, {Key: "b", Op: "copy", Error: "connection refused", Destination: "dr"}}}},
			wantError: "BackupIncomplete", wantCause: []string{`destination "dr" (dr-bucket): 3 objects were not written (1 of 2 batches failed)`},
			wantDR: report.Destination{Failed: 3, Batches: 2, FailedBatches: 1}, wantFail: []string{"a", "b", "c"}},
		{name: "the destination could not be listed", totals: report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", Error: "listing it failed: connection refused"},
			manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}},
			wantError: "BackupIncomplete", wantCause: []string{`destination "dr" (dr-bucket) was not backed up: listing it failed: connection refused`}},
		{name: "the destination's listing failed after it found deletions: withheld", totals: report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", ToDelete: 4, Error: "listing it failed: connection refused"},
			manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}},
			wantError: "BackupIncomplete", wantCause: []string{`destination "dr" (dr-bucket) was not backed up: listing it failed: connection refused`},
			wantDR: report.Destination{Withheld: 4}},
		{name: "the destination's deletion guard tripped", totals: report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", ToDelete: 11, BackupObjects: 11},
			guards:   []report.Guard{func() report.Guard { g := tripped(guard.Deletion, 11, 11); g.Destination = "dr"; return g }(), {Name: guard.Change, Destination: "dr"}},
			manifest: []string{b0}, outcomes: map[string]report.Outcome{b0: {Items: 2, Copied: 2}},
			wantError: "DeletionGuardTripped", wantCause: []string{`destination "dr" (dr-bucket): DeletionGuardTripped`},
			wantDR: report.Destination{Withheld: 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			putBatch(f, b0, "a", "b")
			putDestinationBatch(t, dr0, "dr", "a", "b")(h)
			putDestinationBatch(t, dr1, "dr", "c")(h)
			for key, o := range tt.outcomes {
				okey, _ := batch.OutcomeKey(key)
				putJSON(f, okey, o)
			}
			putManifest(t, f, tt.manifest...)
			tot := primary
			tot.Destinations = []report.DestinationTotals{tt.totals}
			guards := append([]report.Guard{passed(guard.Deletion), passed(guard.Change)}, tt.guards...)
			st := state{Done: true, Copy: copyDone, Cursor: cursor(tot), Guards: guards}
			r := invoke(t, h, Request{Execution: "exec", StartedAt: "2026-11-24T02:00:00.000Z", Input: json.RawMessage(`{}`), State: mustJSON(st)})
			wantStatus := report.Succeeded
			if tt.wantError != "" {
				wantStatus = report.Failed
			}
			if r.Status != wantStatus || r.Error != tt.wantError {
				t.Fatalf("status %s error %q cause %q; want %s %q", r.Status, r.Error, r.Cause, wantStatus, tt.wantError)
			}
			for _, c := range tt.wantCause {
				if !strings.Contains(r.Cause, c) {
					t.Errorf("cause %q lacks %q", r.Cause, c)
				}
			}
			// The backup bucket's own counts are untouched by the destination's batches.
			if r.Copied != 2 || r.Failed != 0 || r.Batches != 1 || len(r.Guards) != 2 {
				t.Errorf("backup bucket: copied %d failed %d batches %d guards %d", r.Copied, r.Failed, r.Batches, len(r.Guards))
			}
			if len(r.Destinations) != 1 {
				t.Fatalf("%d destination sections", len(r.Destinations))
			}
			d := r.Destinations[0]
			if d.Name != "dr" || d.Copied != tt.wantDR.Copied || d.Failed != tt.wantDR.Failed || d.Batches != tt.wantDR.Batches ||
				d.FailedBatches != tt.wantDR.FailedBatches || d.Withheld != tt.wantDR.Withheld || len(d.Guards) != len(tt.guards) {
				t.Errorf("section %+v, want counts %+v", d, tt.wantDR)
			}
			full := stored(t, f)
			var named []string
			for _, fl := range full.Failures {
				if fl.Destination != "dr" {
					t.Errorf("failure %+v does not name destination dr", fl)
				}
				named = append(named, fl.Key)
			}
			if strings.Join(named, ",") != strings.Join(tt.wantFail, ",") {
				t.Errorf("failures named %v, want %v", named, tt.wantFail)
			}
		})
	}
}

// A ranged backup's early batches (copied by the ranges' children, listed in the early
// manifest) count like the Copy Map's; one without an outcome names each of its objects.
func TestEarlyManifest(t *testing.T) {
	for _, tt := range []struct {
		name      string
		outcome   bool
		wantError string
		wantFail  int64
	}{{name: "copied early", outcome: true}, {name: "an early batch failed", wantError: "BackupIncomplete", wantFail: 2}} {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			e0, m0 := batch.RangeKey("exec", 0, 0), batch.RangeKey("exec", 1, 0)
			putBatch(f, e0, "a", "b")
			putBatch(f, m0, "c")
			if tt.outcome {
				okey, _ := batch.OutcomeKey(e0)
				putJSON(f, okey, report.Outcome{Items: 2, Copied: 2})
			}
			okey, _ := batch.OutcomeKey(m0)
			putJSON(f, okey, report.Outcome{Items: 1, Copied: 1})
			if err := batch.WriteEarlyManifest(context.Background(), f, "run", "exec", []string{e0}); err != nil {
				t.Fatal(err)
			}
			putManifest(t, f, m0)
			st := state{Done: true, Copy: &MapResult{MapRunArn: "arn"}, Cursor: cursor(report.Totals{Listed: 3, New: 3})}
			r := invoke(t, h, Request{Execution: "exec", StartedAt: "2026-11-24T02:00:00.000Z", Input: json.RawMessage(`{}`), State: mustJSON(st)})
			if r.Error != tt.wantError || r.Failed != tt.wantFail || r.Batches != 2 || r.Copied+r.Failed != 3 {
				t.Fatalf("status %s %q (%s): copied %d failed %d batches %d", r.Status, r.Error, r.Cause, r.Copied, r.Failed, r.Batches)
			}
		})
	}
}
