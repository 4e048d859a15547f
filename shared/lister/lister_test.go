package lister

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/etagindex"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/runlock"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// acceptAll never trips a guard.
var acceptAll = guard.Limits{Delete: guard.Limit{MaxPercent: 100, Floor: 1}, Change: guard.Limit{MaxPercent: 100, Floor: 1}}

func setup(versioned bool) (*s3fake.S3, *Handler) {
	f := s3fake.New()
	f.AddBucket("src", false)
	f.AddBucket("bak", versioned)
	f.AddBucket("run", false)
	h := &Handler{S3: f, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", BatchSize: 2, BatchBytes: 1 << 40,
		Guards: acceptAll, ArchivedSources: ArchivedSkip, AutoRangeKeys: DefaultAutoRangeKeys},
		Logger: slog.New(slog.DiscardHandler)}
	return f, h
}

// listAll invokes the lister until it is done, as the state machine's loop does.
func listAll(t *testing.T, h *Handler, input string) (Response, int) {
	t.Helper()
	return listAllFrom(t, h, input, nil)
}

// listAllFrom is listAll from a cursor (nil: the first invocation).
func listAllFrom(t *testing.T, h *Handler, input string, cur *Cursor) (Response, int) {
	t.Helper()
	for n := 1; n < 1000; n++ {
		resp, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: cur})
		if err != nil {
			t.Fatalf("invocation %d: %v", n, err)
		}
		if resp.Done {
			return resp, n
		}
		if resp.ManifestKey != "" || len(resp.Guards) != 0 {
			t.Fatalf("invocation %d is not done but set manifest %q, guards %v", n, resp.ManifestKey, resp.Guards)
		}
		cur = &resp.Cursor
	}
	t.Fatal("lister never finished")
	return Response{}, 0
}

func read(t *testing.T, f *s3fake.S3, key string) []byte {
	t.Helper()
	out, err := f.GetObject(context.Background(), getInput("run", key))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	body, _ := io.ReadAll(out.Body)
	return body
}

// manifest reads the manifest the finishing invocation wrote.
func manifest(t *testing.T, f *s3fake.S3, resp Response) []string {
	t.Helper()
	if resp.ManifestKey != batch.ManifestKey("exec") {
		t.Fatalf("manifest key %q, want %q", resp.ManifestKey, batch.ManifestKey("exec"))
	}
	keys, err := batch.ReadManifest(bytes.NewReader(read(t, f, resp.ManifestKey)), "exec")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != resp.ManifestBatches {
		t.Fatalf("manifest lists %d batches, the response says %d", len(keys), resp.ManifestBatches)
	}
	return keys
}

// items reads the batches the manifest lists, in manifest order.
func items(t *testing.T, f *s3fake.S3, keys []string) []batch.Item {
	t.Helper()
	var all []batch.Item
	for _, key := range keys {
		h, err := batch.Read(bytes.NewReader(read(t, f, key)), func(it batch.Item) error { all = append(all, it); return nil })
		if err != nil || h.Source != "src" || h.Destination != "bak" {
			t.Fatalf("batch %s: %+v %v", key, h, err)
		}
	}
	return all
}

func describe(its []batch.Item) []string {
	var out []string
	for _, it := range its {
		out = append(out, fmt.Sprintf("%s %s %s", it.Op, it.Change, it.Key))
	}
	return out
}

// Copies and deletions go into batches of their own; the manifest lists the copies first.
func TestMergeClassifies(t *testing.T) {
	f, h := setup(true)
	f.Put("src", "a-new", []byte("a"))
	f.Put("src", "b-changed", []byte("b2"))
	f.Put("bak", "b-changed", []byte("b1"))
	f.Put("src", "c-same", []byte("c"))
	f.Put("bak", "c-same", []byte("c"))
	f.Put("bak", "d-deleted", []byte("d"))
	f.Put("src", "e-new", []byte("e"))
	resp, _ := listAll(t, h, `{}`)
	c := resp.Cursor
	want := report.Totals{Listed: 4, New: 2, Changed: 1, Unchanged: 1, ToDelete: 1, BackupObjects: 3, BytesToCopy: 4, Invocations: 1, Batches: 3}
	pos := c.Position
	pos.Now = time.Time{} // the run's clock, checked in TestFilters
	// The changes, by folder: every key here is at the top.
	if got := c.Totals.Changes.Result(); !reflect.DeepEqual(got, []report.FolderChanges{{Folder: "", New: 2, Changed: 1, Deleted: 1}}) {
		t.Errorf("changes by folder %+v", got)
	}
	c.Totals.Changes = report.TopChanges{}
	if !reflect.DeepEqual(c.Totals, want) || !reflect.DeepEqual(pos, Position{After: "e-new", CopyBatches: 2, DeleteBatches: 1}) {
		t.Fatalf("cursor %+v, want totals %+v", c, want)
	}
	keys := manifest(t, f, resp)
	if !reflect.DeepEqual(keys, []string{batch.Key("exec", 0), batch.Key("exec", 1), batch.DeleteKey("exec", 0)}) {
		t.Fatalf("manifest %q", keys)
	}
	got := describe(items(t, f, keys))
	wantItems := []string{"copy new a-new", "copy changed b-changed", "copy new e-new", "delete deleted d-deleted"}
	if !reflect.DeepEqual(got, wantItems) {
		t.Fatalf("items %q, want %q", got, wantItems)
	}
}

// Many small invocations produce the same work as one big one.
func TestCursorResumes(t *testing.T) {
	for _, perInvocation := range []int64{0, 1, 3, 7} {
		t.Run(fmt.Sprint(perInvocation), func(t *testing.T) {
			f, h := setup(true)
			h.Config.MaxKeysPerInvocation = perInvocation
			for i := range 20 {
				f.Put("src", fmt.Sprintf("k%02d", i), []byte{byte(i)})
				if i%3 == 0 {
					f.Put("bak", fmt.Sprintf("k%02d", i), []byte{byte(i)})
				}
				if i%5 == 0 {
					f.Put("bak", fmt.Sprintf("k%02d-gone", i), []byte{1})
				}
			}
			resp, n := listAll(t, h, `{}`)
			if perInvocation > 0 && n < int(24/perInvocation) {
				t.Errorf("%d invocations for 24 keys at %d per invocation", n, perInvocation)
			}
			c := resp.Cursor.Totals
			if c.Listed != 20 || c.New != 13 || c.Unchanged != 7 || c.ToDelete != 4 || c.Invocations != n {
				t.Fatalf("cursor %+v", c)
			}
			all := items(t, f, manifest(t, f, resp))
			if len(all) != 17 || c.Batches != resp.ManifestBatches {
				t.Fatalf("%d items in %d batches (%d written), want 17", len(all), resp.ManifestBatches, c.Batches)
			}
			seen := map[string]bool{}
			for i, it := range all {
				if seen[it.Key] {
					t.Fatalf("item %q repeated", it.Key)
				}
				seen[it.Key] = true
				if i > 0 && it.Op == all[i-1].Op && it.Key <= all[i-1].Key {
					t.Fatalf("items out of order: %q after %q", it.Key, all[i-1].Key)
				}
			}
		})
	}
}

// The deletion guard never holds back a copy: new and changed objects are always in the
// manifest; only the deletion batches are withheld, and only when the share of deletions is above
// the limit and their count above the floor.
func TestDeletionGuardWithholdsOnlyDeletions(t *testing.T) {
	tests := []struct {
		name                 string
		backup, deleted      int // objects in the backup, of which deleted from the source
		input                string
		wantTripped          bool
		wantDeletionsInBatch int
	}{
		// The bucket: one of three deleted (33%), one changed, one added.
		{name: "one deletion never trips", backup: 3, deleted: 1, input: `{}`, wantDeletionsInBatch: 1},
		{name: "at the floor", backup: 12, deleted: 10, input: `{}`, wantDeletionsInBatch: 10},
		{name: "above floor and share", backup: 20, deleted: 11, input: `{}`, wantTripped: true},
		{name: "above floor, share at the limit", backup: 43, deleted: 11, input: `{}`, wantDeletionsInBatch: 11},
		{name: "accepted by the execution", backup: 20, deleted: 11, input: `{"maxDeletePercent": 100}`, wantDeletionsInBatch: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup(true)
			h.Config.Guards = guard.DefaultLimits()
			h.Config.BatchSize = 4
			for i := range tt.backup {
				key := fmt.Sprintf("doc-%02d", i)
				f.Put("bak", key, []byte("v1"))
				if i >= tt.deleted {
					f.Put("src", key, []byte("v1"))
				}
			}
			f.Put("bak", "z-changed", []byte("old"))
			f.Put("src", "z-changed", []byte("new"))
			f.Put("src", "z-new", []byte("new"))
			resp, _ := listAll(t, h, tt.input)
			del := resp.Guards[0]
			if del.Name != guard.Deletion || del.Tripped != tt.wantTripped || del.Count != int64(tt.deleted) || del.Of != int64(tt.backup+1) {
				t.Fatalf("deletion verdict %+v", del)
			}
			if tt.wantTripped && (del.Error != "DeletionGuardTripped" || !strings.Contains(del.Message, fmt.Sprintf("mark %d of the backup's %d", tt.deleted, tt.backup+1)) ||
				!strings.Contains(del.Message, `{"maxDeletePercent": 100}`)) {
				t.Errorf("tripped verdict %+v", del)
			}
			var copies, deletions []string
			for _, it := range items(t, f, manifest(t, f, resp)) {
				if it.Op == batch.OpDelete {
					deletions = append(deletions, it.Key)
				} else {
					copies = append(copies, fmt.Sprintf("%s %s", it.Change, it.Key))
				}
			}
			if !reflect.DeepEqual(copies, []string{"changed z-changed", "new z-new"}) {
				t.Errorf("copies in the manifest: %q", copies)
			}
			if len(deletions) != tt.wantDeletionsInBatch {
				t.Errorf("%d deletions in the manifest, want %d", len(deletions), tt.wantDeletionsInBatch)
			}
			if tt.wantTripped {
				// The deletions were written, in batches of their own, and are not run.
				if resp.Cursor.Position.DeleteBatches == 0 {
					t.Error("no deletion batch written")
				}
			}
		})
	}
}

// A mass rewrite trips the change guard, and every changed object is still copied.
func TestChangeGuard(t *testing.T) {
	for _, tt := range []struct {
		name        string
		changed     int
		input       string
		wantTripped bool
	}{
		{name: "a few changes", changed: 10, input: `{}`},
		{name: "mass rewrite", changed: 15, input: `{}`, wantTripped: true},
		{name: "mass rewrite accepted", changed: 15, input: `{"maxChangePercent": 100}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup(true)
			h.Config.Guards = guard.DefaultLimits()
			h.Config.BatchSize = 1000
			for i := range 20 {
				key := fmt.Sprintf("file-%02d", i)
				f.Put("bak", key, []byte("plain"))
				body := "plain"
				if i < tt.changed {
					body = "encrypted"
				}
				f.Put("src", key, []byte(body))
			}
			resp, _ := listAll(t, h, tt.input)
			chg := resp.Guards[1]
			if chg.Name != guard.Change || chg.Tripped != tt.wantTripped || chg.Count != int64(tt.changed) || chg.Of != 20 {
				t.Fatalf("change verdict %+v", chg)
			}
			if tt.wantTripped && (chg.Error != "MassChangeDetected" || !strings.Contains(chg.Message, "15 of the backup's 20")) {
				t.Errorf("tripped verdict %+v", chg)
			}
			if got := len(items(t, f, manifest(t, f, resp))); got != tt.changed {
				t.Errorf("%d copies in the manifest, want %d", got, tt.changed)
			}
		})
	}
}

// New and changed sources in GLACIER or DEEP_ARCHIVE are named as archived (skip) or attempted
// (fail); every other class, GLACIER_IR included, is copied as usual.
func TestArchivedSources(t *testing.T) {
	for _, tt := range []struct {
		class, mode string
		wantOp      batch.Op
	}{
		{"GLACIER", ArchivedSkip, batch.OpKeep},
		{"DEEP_ARCHIVE", ArchivedSkip, batch.OpKeep},
		{"GLACIER_IR", ArchivedSkip, batch.OpCopy},
		{"STANDARD_IA", ArchivedSkip, batch.OpCopy},
		{"GLACIER", ArchivedFail, batch.OpCopy},
	} {
		t.Run(tt.class+" "+tt.mode, func(t *testing.T) {
			f, h := setup(true)
			h.Config.ArchivedSources = tt.mode
			f.Put("src", "cold.bin", []byte("cold data"))
			f.Put("src", "changed.bin", []byte("changed, now cold"))
			f.Put("bak", "changed.bin", []byte("old"))
			f.Archive("src", tt.class)
			f.Put("src", "warm.txt", []byte("warm"))
			resp, _ := listAll(t, h, `{}`)
			all := items(t, f, manifest(t, f, resp))
			if len(all) != 3 {
				t.Fatalf("items %q", describe(all))
			}
			wantArchived := int64(0)
			if archived(tt.class) {
				wantArchived = 2
			}
			c := resp.Cursor.Totals
			if c.Archived != wantArchived || c.New != 2 || c.Changed != 1 {
				t.Errorf("totals %+v", c)
			}
			for _, it := range all {
				if it.Key == "warm.txt" {
					if it.Op != batch.OpCopy {
						t.Errorf("warm.txt: %s", it.Op)
					}
					continue
				}
				if it.Op != tt.wantOp {
					t.Errorf("%s in %s: op %s, want %s", it.Key, tt.class, it.Op, tt.wantOp)
				}
				if it.Op == batch.OpKeep && !strings.HasPrefix(it.Reason, "archived ("+tt.class+"): ") {
					t.Errorf("%s: reason %q", it.Key, it.Reason)
				}
			}
			wantBytes := int64(len("cold data") + len("changed, now cold") + len("warm"))
			if tt.wantOp == batch.OpKeep {
				wantBytes = int64(len("warm"))
			}
			if c.BytesToCopy != wantBytes {
				t.Errorf("bytesToCopy %d, want %d", c.BytesToCopy, wantBytes)
			}
		})
	}
}

// A retried invocation that writes fewer batches than the failed attempt did leaves the
// attempt's last batch behind: the manifest lists exactly what the successful invocations wrote.
func TestManifestExcludesStaleBatches(t *testing.T) {
	f, h := setup(true)
	f.PageSize = 2
	for i := range 6 {
		f.Put("src", fmt.Sprintf("k%d", i), []byte("x"))
	}
	// A leftover of an earlier attempt with a number this run never reaches.
	f.Put("run", batch.Key("exec", 7), []byte(`{"version":1,"source":"src","destination":"bak"}`+"\n"))
	srcPages := 0
	f.Fail = func(op, bucket, _ string) error {
		if op == "ListObjectsV2" && bucket == "src" {
			if srcPages++; srcPages == 3 {
				return s3fake.APIError("InternalError")
			}
		}
		return nil
	}
	h.Config.BatchSize = 2
	if _, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(`{}`)}); err == nil {
		t.Fatal("the first attempt did not fail")
	}
	if _, err := f.GetObject(context.Background(), getInput("run", batch.Key("exec", 1))); err != nil {
		t.Fatalf("the failed attempt wrote no second batch: %v", err)
	}
	f.Fail = nil
	for i := 2; i < 6; i++ {
		f.DeleteObject(context.Background(), deleteInput("src", fmt.Sprintf("k%d", i)))
	}
	resp, _ := listAll(t, h, `{}`)
	keys := manifest(t, f, resp)
	if !reflect.DeepEqual(keys, []string{batch.Key("exec", 0)}) {
		t.Fatalf("manifest %q, want only batch 0", keys)
	}
	if got := describe(items(t, f, keys)); !reflect.DeepEqual(got, []string{"copy new k0", "copy new k1"}) {
		t.Fatalf("items %q", got)
	}
}

func TestErrorsAreNamed(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(f *s3fake.S3, h *Handler)
		input    string
		wantType string
		wantMsg  string
	}{
		{"missing backup bucket", func(f *s3fake.S3, h *Handler) { h.Config.BackupBucket = "nope" }, `{}`, "BucketNotFound", `backup bucket "nope"`},
		{"unversioned backup", func(f *s3fake.S3, h *Handler) { f.AddBucket("bak", false) }, `{}`, "BackupNotVersioned", "versioning"},
		{"bad input", func(f *s3fake.S3, h *Handler) {}, `{"dry_run":true}`, "InvalidInput", `unknown field "dry_run"`},
		{"throttled listing", func(f *s3fake.S3, h *Handler) {
			f.Fail = func(op, b, k string) error {
				if op == "ListObjectsV2" {
					return s3fake.APIError("SlowDown")
				}
				return nil
			}
		}, `{}`, "TransientError", "SlowDown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup(true)
			tt.prepare(f, h)
			payload, _ := json.Marshal(Request{Execution: "exec", Input: json.RawMessage(tt.input)})
			_, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
			if err == nil {
				t.Fatal("no error")
			}
			// aws-lambda-go names the error by its Go type; that name is the Step Functions error.
			if got := reflect.TypeOf(err).Elem().Name(); got != tt.wantType || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %s: %v; want %s mentioning %q", got, err, tt.wantType, tt.wantMsg)
			}
			// Nothing but the run lock (taken before the listing starts) is written.
			for _, call := range f.Calls() {
				if strings.HasPrefix(call, "PutObject") && !strings.HasPrefix(call, "PutObject run/"+runlock.Key("src", "bak")) {
					t.Errorf("written despite the error: %s", call)
				}
			}
		})
	}
}

// A cursor from another version of the contract (a renamed field) is refused, not read as zero.
func TestCursorDecodedStrictly(t *testing.T) {
	_, h := setup(true)
	payload := []byte(`{"execution":"exec","input":{},"cursor":{"totals":{"listed":1},"position":{"after":"a","nextBatch":3}}}`)
	_, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
	if err == nil || !strings.Contains(err.Error(), "nextBatch") {
		t.Fatalf("err = %v, want the unknown field named", err)
	}
}

// A dry run counts, judges the guards, and writes nothing: no batch, no manifest.
func TestDryRunWritesNothing(t *testing.T) {
	f, h := setup(true)
	f.Put("src", "a", []byte("a"))
	resp, _ := listAll(t, h, `{"dryRun":true}`)
	if !resp.DryRun || resp.Cursor.Totals.New != 1 || resp.Cursor.Totals.Batches != 0 || resp.ManifestKey != "" || len(resp.Guards) != 2 || f.Count("PutObject") != 0 {
		t.Fatalf("dry run: %+v, %d puts", resp, f.Count("PutObject"))
	}
}

func TestPrefixLimitsBothSides(t *testing.T) {
	f, h := setup(true)
	f.Put("src", "data/a", []byte("a"))
	f.Put("src", "other/b", []byte("b"))
	f.Put("bak", "other/c", []byte("c")) // outside the prefix: not a deletion
	resp, _ := listAll(t, h, `{"prefix":"data/"}`)
	if c := resp.Cursor.Totals; c.Listed != 1 || c.New != 1 || c.ToDelete != 0 {
		t.Fatalf("cursor %+v", c)
	}
}

func TestConfigFromEnv(t *testing.T) {
	_, err := ConfigFromEnv(func(string) (string, bool) { return "", false })
	var ce *fault.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "SOURCE_BUCKET") {
		t.Fatalf("err = %v", err)
	}
	buckets := map[string]string{"SOURCE_BUCKET": "s", "BACKUP_BUCKET": "b", "RUN_BUCKET": "r"}
	with := func(extra map[string]string) envconf.Lookup {
		m := map[string]string{}
		for k, v := range buckets {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return envconf.Map(m)
	}
	c, err := ConfigFromEnv(with(nil))
	if err != nil || c.Guards != guard.DefaultLimits() || c.ArchivedSources != DefaultArchivedSources ||
		c.BatchSize != batch.DefaultSize || c.BatchBytes != batch.DefaultBytes || c.MaxKeysPerInvocation != DefaultMaxKeysPerInvocation {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = ConfigFromEnv(with(map[string]string{"MAX_DELETE_PERCENT": "5", "DELETE_GUARD_FLOOR": "100", "MAX_CHANGE_PERCENT": "80", "CHANGE_GUARD_FLOOR": "1", "ARCHIVED_SOURCES": "fail"}))
	if want := (guard.Limits{Delete: guard.Limit{MaxPercent: 5, Floor: 100}, Change: guard.Limit{MaxPercent: 80, Floor: 1}}); err != nil || c.Guards != want || c.ArchivedSources != ArchivedFail {
		t.Fatalf("settings: %+v, %v", c, err)
	}
	for name, value := range map[string]string{"DELETE_GUARD_FLOOR": "0", "MAX_CHANGE_PERCENT": "101", "ARCHIVED_SOURCES": "thaw"} {
		if _, err := ConfigFromEnv(with(map[string]string{name: value})); !errors.As(err, &ce) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: err = %v", name, value, err)
		}
	}
	same := map[string]string{"SOURCE_BUCKET": "a", "BACKUP_BUCKET": "a", "RUN_BUCKET": "r"}
	if _, err := ConfigFromEnv(envconf.Map(same)); !errors.As(err, &ce) {
		t.Fatalf("same source and backup accepted: %v", err)
	}
}

// sliceStream is a key-ordered stream of fixed keys.
type sliceStream struct{ keys []string }

func (s *sliceStream) Peek(context.Context) (*change.Object, error) {
	if len(s.keys) == 0 {
		return nil, nil
	}
	return &change.Object{Key: s.keys[0]}, nil
}

func (s *sliceStream) Pop() { s.keys = s.keys[1:] }

// The merge takes any number of streams: each row holds every stream's entry for one key.
func TestMergerRows(t *testing.T) {
	m := newMerger(&sliceStream{[]string{"a", "c", "d"}}, &sliceStream{[]string{"b", "c"}}, &sliceStream{[]string{"a", "d", "e"}})
	var got []string
	for {
		row, ok, err := m.next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		line := ""
		for _, o := range row {
			if o == nil {
				line += "-"
			} else {
				line += o.Key
			}
		}
		got = append(got, line)
	}
	want := []string{"a-a", "-b-", "cc-", "d-d", "--e"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
}

// The ETag index: a generation that is gone is read as empty (every object whose ETags differ is
// copied again, none is missed), and the finishing invocation commits this execution's
// generation; a dry run commits none.
func TestIndexGeneration(t *testing.T) {
	f, h := setup(true)
	f.SetEncryption("bak", "aws:kms")
	f.Put("src", "a", []byte("a"))
	f.Put("bak", "a", []byte("a")) // a KMS ETag: no entry says it holds the source
	f.Put("run", etagindex.CurrentKey, []byte(`{"execution":"expired"}`))
	listAll(t, h, `{"dryRun": true}`)
	if string(read(t, f, etagindex.CurrentKey)) != `{"execution":"expired"}` {
		t.Fatalf("a dry run moved the index pointer: %s", read(t, f, etagindex.CurrentKey))
	}
	resp, _ := listAll(t, h, `{}`)
	if c := resp.Cursor.Totals; c.Changed != 1 || c.Unchanged != 0 {
		t.Fatalf("totals %+v: want the object copied again", c)
	}
	g, err := etagindex.Current(context.Background(), f, "run")
	if err != nil || !reflect.DeepEqual(g, etagindex.Generation{Execution: "exec", CopyBatches: 1}) {
		t.Fatalf("committed generation %+v, %v", g, err)
	}
	if it := items(t, f, manifest(t, f, resp)); len(it) != 1 || it[0].Prior == "" || it[0].Prior != f.Versions("bak", "a")[0].ETag {
		t.Fatalf("items %+v: want the backup's ETag as Prior", it)
	}
}

// TestDirectoryBucketRefused: an S3 Express directory bucket as source or backup is refused before
// any request (its listings are not in key order).
func TestDirectoryBucketRefused(t *testing.T) {
	for _, bucket := range []string{"source", "backup"} {
		f, h := setup(true)
		if bucket == "source" {
			h.Config.SourceBucket = "data--usw2-az1--x-s3"
		} else {
			h.Config.BackupBucket = "bak--usw2-az1--x-s3"
		}
		_, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(`{}`)})
		var ub *fault.UnsupportedBucket
		if !errors.As(err, &ub) || !strings.Contains(err.Error(), bucket+" bucket") {
			t.Errorf("%s a directory bucket: %v, want UnsupportedBucket naming it", bucket, err)
		}
		if n := len(f.Calls()); n != 0 {
			t.Errorf("%s a directory bucket: %d requests made (%v), want none", bucket, n, f.Calls())
		}
	}
}
