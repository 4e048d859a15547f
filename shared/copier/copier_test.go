package copier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3copy"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func setup() (*s3fake.S3, *Handler) {
	f := s3fake.New()
	f.AddBucket("src", false)
	f.AddBucket("bak", true)
	f.AddBucket("run", false)
	h := &Handler{S3: f, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", Concurrency: 4, MultipartThreshold: s3copy.DefaultThreshold, PartSize: 8 << 20, PartConcurrency: 2},
		Logger: slog.New(slog.DiscardHandler), Sleep: func(ctx context.Context, d time.Duration) error { return nil }}
	return f, h
}

// writeBatch stores a batch of copies of the given source keys (as listed now) plus deletions.
func writeBatch(t *testing.T, f *s3fake.S3, copies, deletes []string) string {
	t.Helper()
	var items []batch.Item
	for _, k := range copies {
		out, err := f.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, batch.Item{Op: batch.OpCopy, Key: k, Change: "new", Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), LastModified: aws.ToTime(out.LastModified)})
	}
	for _, k := range deletes {
		items = append(items, batch.Item{Op: batch.OpDelete, Key: k, Change: "deleted"})
	}
	body, _ := batch.Encode(batch.Header{Version: 1, Source: "src", Destination: "bak"}, items)
	key := batch.Key("exec", 0)
	f.Put("run", key, body)
	return key
}

func invoke(t *testing.T, h *Handler, req Request) (Response, error) {
	t.Helper()
	payload, _ := json.Marshal(req)
	out, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
	var resp Response
	if err == nil {
		if jerr := json.Unmarshal(out, &resp); jerr != nil {
			t.Fatal(jerr)
		}
	}
	return resp, err
}

func outcome(t *testing.T, f *s3fake.S3, key string) report.Outcome {
	t.Helper()
	out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	var o report.Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCopiesDeletesAndRecordsFailures(t *testing.T) {
	f, h := setup()
	for _, k := range []string{"a", "b", "c", "poison"} {
		f.Put("src", k, []byte("data "+k))
	}
	f.Put("bak", "gone", []byte("old"))
	f.Put("bak", "back-again", []byte("old"))
	f.Put("src", "back-again", []byte("new")) // reappeared in the source since listing
	key := writeBatch(t, f, []string{"a", "b", "c", "poison"}, []string{"gone", "back-again"})
	f.Fail = func(op, bucket, k string) error {
		if op == "CopyObject" && k == "poison" {
			return s3fake.APIError("AccessDenied")
		}
		return nil
	}
	resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Copied != 3 || resp.Deleted != 1 || resp.Failed != 1 || resp.Skipped != 1 || resp.OutcomeKey != "work/exec/outcomes/000000.json" {
		t.Fatalf("response %+v", resp)
	}
	o := outcome(t, f, resp.OutcomeKey)
	if len(o.Failures) != 1 || o.Failures[0].Key != "poison" || !strings.Contains(o.Failures[0].Error, "AccessDenied") {
		t.Fatalf("failures %+v", o.Failures)
	}
	if len(o.Skips) != 1 || o.Skips[0].Key != "back-again" || !strings.HasPrefix(o.Skips[0].Reason, "reappeared") {
		t.Fatalf("skips %+v", o.Skips)
	}
	if vs := f.Versions("bak", "gone"); len(vs) != 2 || !vs[1].DeleteMarker {
		t.Fatalf("deleted key versions %+v", vs)
	}
	if n := f.Count("CopyObject"); n != 4 {
		t.Errorf("%d CopyObject calls; a permanent error must not be retried", n)
	}
}

// TestExcludedDeletion: a backup key a filter excludes (deleteExcluded) is marked deleted although
// the source still has it, but only while the backup holds the object the lister saw.
func TestExcludedDeletion(t *testing.T) {
	f, h := setup()
	for _, k := range []string{"logs/a", "logs/b"} {
		f.Put("src", k, []byte("still here "+k))
		f.Put("bak", k, []byte("backed up "+k))
	}
	var items []batch.Item
	for _, k := range []string{"logs/a", "logs/b"} {
		out, err := f.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("bak"), Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, batch.Item{Op: batch.OpDelete, Key: k, Change: batch.ChangeExcluded, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), LastModified: aws.ToTime(out.LastModified)})
	}
	f.Put("bak", "logs/b", []byte("written to the backup since it was listed"))
	body, _ := batch.Encode(batch.Header{Version: 1, Source: "src", Destination: "bak"}, items)
	f.Put("run", batch.Key("exec", 0), body)
	resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: batch.Key("exec", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Deleted != 1 || resp.Skipped != 1 || resp.Failed != 0 {
		t.Fatalf("response %+v", resp)
	}
	if vs := f.Versions("bak", "logs/a"); len(vs) != 2 || !vs[1].DeleteMarker {
		t.Errorf("logs/a (excluded, still in the source): versions %+v, want its data under a delete marker", vs)
	}
	if vs := f.Versions("bak", "logs/b"); len(vs) != 2 || vs[1].DeleteMarker {
		t.Errorf("logs/b (changed in the backup since listing): versions %+v, want no delete marker", vs)
	}
	o := outcome(t, f, resp.OutcomeKey)
	if len(o.Skips) != 1 || o.Skips[0].Key != "logs/b" || !strings.Contains(o.Skips[0].Reason, "changed in the backup") {
		t.Errorf("skips %+v", o.Skips)
	}
}

// A retried batch (RetryCount > 0) verifies first and adds no version for work already done.
func TestRetryAddsNoVersion(t *testing.T) {
	f, h := setup()
	f.Put("src", "a", []byte("a"))
	f.Put("src", "b", []byte("b"))
	f.Put("bak", "gone", []byte("x"))
	key := writeBatch(t, f, []string{"a", "b"}, []string{"gone"})
	if _, err := invoke(t, h, Request{Execution: "exec", BatchKey: key}); err != nil {
		t.Fatal(err)
	}
	resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key, RetryCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Copied != 2 || resp.Deleted != 1 {
		t.Fatalf("retry response %+v", resp)
	}
	if o := outcome(t, f, resp.OutcomeKey); o.AlreadyPresent != 3 {
		t.Fatalf("retry outcome %+v", o)
	}
	for _, k := range []string{"a", "b"} {
		if n := len(f.Versions("bak", k)); n != 1 {
			t.Errorf("%s has %d versions", k, n)
		}
	}
	if n := len(f.Versions("bak", "gone")); n != 2 {
		t.Errorf("gone has %d versions (data + one marker expected)", n)
	}
}

// A copy whose response is lost (the server did the work, the client saw a 503) is not repeated.
func TestLostResponseIsNotRepeated(t *testing.T) {
	f, h := setup()
	f.Put("src", "a", []byte("a"))
	key := writeBatch(t, f, []string{"a"}, nil)
	// The first copy is performed for real, then its answer is replaced by a throttling error.
	lost := false
	f.Lose = func(op, bucket, key string) error {
		if op == "CopyObject" && !lost {
			lost = true
			return s3fake.APIError("SlowDown")
		}
		return nil
	}
	resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Copied != 1 || resp.Retries < 1 {
		t.Fatalf("response %+v", resp)
	}
	if n := len(f.Versions("bak", "a")); n != 1 || f.Count("CopyObject") != 1 {
		t.Fatalf("%d versions and %d CopyObject calls after a lost response; want 1 and 1", n, f.Count("CopyObject"))
	}
}

// The source was overwritten after listing: the new content is copied and reported as such;
// a source deleted after listing is reported as vanished, not failed.
func TestSourceChangedOrVanished(t *testing.T) {
	f, h := setup()
	f.Put("src", "changes", []byte("v1"))
	f.Put("src", "vanishes", []byte("v1"))
	key := writeBatch(t, f, []string{"changes", "vanishes"}, nil)
	f.Put("src", "changes", []byte("version two"))
	if _, err := f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("src"), Key: aws.String("vanishes")}); err != nil {
		t.Fatal(err)
	}
	resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key})
	if err != nil {
		t.Fatal(err)
	}
	o := outcome(t, f, resp.OutcomeKey)
	if o.Copied != 1 || o.SourceChanged != 1 || o.Skipped != 1 || o.Failed != 0 || !strings.HasPrefix(o.Skips[0].Reason, "vanished") {
		t.Fatalf("outcome %+v", o)
	}
	if vs := f.Versions("bak", "changes"); len(vs) != 1 || string(vs[0].Body) != "version two" {
		t.Fatalf("backup of changed object: %+v", vs)
	}
}

func TestBatchErrorsAreNamed(t *testing.T) {
	tests := []struct {
		name     string
		req      Request
		prepare  func(f *s3fake.S3)
		wantType string
	}{
		{"batch of another execution", Request{Execution: "exec", BatchKey: "work/other/batches/000000.jsonl"}, nil, "InvalidInput"},
		{"missing batch", Request{Execution: "exec", BatchKey: "work/exec/batches/000009.jsonl"}, nil, "BatchUnreadable"},
		{"corrupt batch", Request{Execution: "exec", BatchKey: "work/exec/batches/000001.jsonl"}, func(f *s3fake.S3) { f.Put("run", "work/exec/batches/000001.jsonl", []byte("garbage")) }, "BatchUnreadable"},
		{"batch for other buckets", Request{Execution: "exec", BatchKey: "work/exec/batches/000002.jsonl"}, func(f *s3fake.S3) {
			f.Put("run", "work/exec/batches/000002.jsonl", []byte(`{"version":1,"source":"elsewhere","destination":"bak"}`+"\n"))
		}, "InvalidInput"},
		{"run bucket throttled", Request{Execution: "exec", BatchKey: "work/exec/batches/000000.jsonl"}, func(f *s3fake.S3) {
			f.Fail = func(op, b, k string) error { return s3fake.APIError("SlowDown") }
		}, "TransientError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			if tt.prepare != nil {
				tt.prepare(f)
			}
			_, err := invoke(t, h, tt.req)
			if err == nil || reflect.TypeOf(err).Elem().Name() != tt.wantType {
				t.Fatalf("err = %T %v, want %s", err, err, tt.wantType)
			}
			if f.Count("CopyObject")+f.Count("DeleteObject") != 0 {
				t.Error("a batch that cannot run touched the backup")
			}
		})
	}
}

// inflight records the most CopyObject requests in flight at once. Each request is held until
// want are in flight together, so reaching want does not depend on timing; the deadline only
// turns a hang into a failure.
type inflight struct {
	*s3fake.S3
	want     int
	mu       sync.Mutex
	now, max int
	reached  chan struct{} // closed once want requests were in flight together
	closed   bool
	timedOut bool
}

func newInflight(f *s3fake.S3, want int) *inflight {
	return &inflight{S3: f, want: want, reached: make(chan struct{})}
}

func (f *inflight) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	f.mu.Lock()
	f.now++
	f.max = max(f.max, f.now)
	if f.now == f.want && !f.closed {
		f.closed = true
		close(f.reached)
	}
	f.mu.Unlock()
	select {
	case <-f.reached:
	case <-time.After(10 * time.Second):
		f.mu.Lock()
		f.timedOut = true
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.now--
	f.mu.Unlock()
	return f.S3.CopyObject(ctx, in, opts...)
}

// COPIER_CONCURRENCY objects are copied at once, never more, and every item of the batch is
// done, also when the batch is smaller than the concurrency.
func TestConcurrencyIsBounded(t *testing.T) {
	for _, tc := range []struct{ items, concurrency, wantMax int }{
		{items: 40, concurrency: 4, wantMax: 4},
		{items: 3, concurrency: 8, wantMax: 3},
		{items: 10, concurrency: 1, wantMax: 1},
	} {
		t.Run(fmt.Sprintf("%d items at %d", tc.items, tc.concurrency), func(t *testing.T) {
			f, h := setup()
			rec := newInflight(f, tc.wantMax)
			h.S3, h.Config.Concurrency = rec, tc.concurrency
			var keys []string
			for i := range tc.items {
				k := fmt.Sprintf("k%03d", i)
				f.Put("src", k, []byte(k))
				keys = append(keys, k)
			}
			resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: writeBatch(t, f, keys, nil)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Copied != tc.items || resp.Failed != 0 {
				t.Fatalf("response %+v", resp)
			}
			for _, k := range keys {
				if n := len(f.Versions("bak", k)); n != 1 {
					t.Fatalf("%s has %d versions in the backup", k, n)
				}
			}
			if rec.timedOut {
				t.Fatalf("%d copies were never in flight together", tc.wantMax)
			}
			if rec.max != tc.wantMax {
				t.Fatalf("%d copies in flight at most, want %d (concurrency %d)", rec.max, tc.wantMax, tc.concurrency)
			}
		})
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// An item's note reaches the outcome under the key it wrote, whatever became of the item; an
// item without a note adds none.
func TestNotesReachTheOutcome(t *testing.T) {
	f, h := setup()
	h.Config.RestoreTargets = []string{"target"}
	f.AddBucket("target", false)
	for _, k := range []string{"copied", "poison", "plain"} {
		f.Put("bak", k, []byte("data "+k))
	}
	item := func(op batch.Op, key, destKey, note string) batch.Item {
		it := batch.Item{Op: op, Key: key, DestKey: destKey, Change: "restore", Note: note}
		if op == batch.OpCopy {
			vs := f.Versions("bak", key)
			it.Size, it.ETag, it.LastModified, it.VersionID = int64(len(vs[0].Body)), vs[0].ETag, vs[0].LastModified, vs[0].VersionID
		} else {
			it.Reason = "the target differs and overwrite is false"
		}
		return it
	}
	items := []batch.Item{
		item(batch.OpCopy, "copied", "restored/copied", "tie: the version was chosen over a delete marker of the same second"),
		item(batch.OpCopy, "poison", "", "a note on a failure"),
		item(batch.OpKeep, "kept", "restored/kept", "a note on a keep"),
		item(batch.OpCopy, "plain", "", ""),
	}
	body, _ := batch.Encode(batch.Header{Version: 1, Source: "bak", Destination: "target"}, items)
	key := batch.Key("exec", 0)
	f.Put("run", key, body)
	f.Fail = func(op, bucket, k string) error {
		if op == "CopyObject" && k == "poison" {
			return s3fake.APIError("AccessDenied")
		}
		return nil
	}
	resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key})
	if err != nil {
		t.Fatal(err)
	}
	o := outcome(t, f, resp.OutcomeKey)
	if o.Copied != 2 || o.Failed != 1 || o.Skipped != 1 {
		t.Fatalf("outcome %+v", o)
	}
	got := append([]report.Note(nil), o.Notes...)
	sort.Slice(got, func(i, j int) bool { return got[i].Key < got[j].Key })
	want := []report.Note{
		{Key: "poison", Note: "a note on a failure"},
		{Key: "restored/copied", Note: "tie: the version was chosen over a delete marker of the same second"},
		{Key: "restored/kept", Note: "a note on a keep"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("notes %+v, want %+v", got, want)
	}
}

// A retried restore batch checks its target strictly: a target object of the same size with a
// multipart ETag, written after the backup's single-part version, is not taken as a copy of it
// (in the backup bucket it would be: only bucketvault writes there).
func TestRetriedRestoreChecksTheTargetStrictly(t *testing.T) {
	f, h := setup()
	h.Config.RestoreTargets = []string{"target"}
	f.AddBucket("target", false)
	f.Put("bak", "k", []byte("0123456789"))
	f.PutMultipart("target", "k", []byte("abcde"), []byte("fghij")) // same size, other content, later
	v := f.Versions("bak", "k")[0]
	body, _ := batch.Encode(batch.Header{Version: 1, Source: "bak", Destination: "target"}, []batch.Item{
		{Op: batch.OpCopy, Key: "k", Change: "changed", Size: 10, ETag: v.ETag, LastModified: v.LastModified, VersionID: v.VersionID},
	})
	key := batch.Key("exec", 0)
	f.Put("run", key, body)
	resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key, RetryCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	if o := outcome(t, f, resp.OutcomeKey); o.Copied != 1 || o.AlreadyPresent != 0 {
		t.Fatalf("outcome %+v; want the object copied, not found present", o)
	}
	if got := f.Versions("target", "k"); string(got[len(got)-1].Body) != "0123456789" {
		t.Fatalf("target holds %q, want the backup's content", got[len(got)-1].Body)
	}
}

// The configuration's defaults are the packages' exported ones.
func TestConfigDefaults(t *testing.T) {
	cfg, err := ConfigFromEnv(envconf.Map(map[string]string{"SOURCE_BUCKET": "src", "BACKUP_BUCKET": "bak", "RUN_BUCKET": "run"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", Concurrency: DefaultConcurrency,
		MultipartThreshold: s3copy.DefaultThreshold, PartSize: s3copy.DefaultPartSize, PartConcurrency: s3copy.DefaultPartConcurrency}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config %+v, want %+v", cfg, want)
	}
}

// An exact restore's removals put a delete marker on the target object as planned, even when the
// backup holds the key now (it was backed up after the moment); a target object written since the
// plan is left alone and named; one already gone counts as removed; a retried batch adds no
// second marker.
func TestExactRestoreRemovals(t *testing.T) {
	f, h := setup()
	f.AddBucket("vt", true)
	h.Config.RestoreTargets = []string{"vt"}
	ctx := context.Background()
	f.Put("bak", "note.txt", []byte("pay us")) // backed up after the moment restored
	planned := func(key string) batch.Item {
		out, err := f.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("vt"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		return batch.Item{Op: batch.OpDelete, Key: strings.TrimPrefix(key, "r/"), Change: "removed", Size: aws.ToInt64(out.ContentLength),
			ETag: aws.ToString(out.ETag), LastModified: aws.ToTime(out.LastModified), Reason: "not in the backup"}
	}
	for _, k := range []string{"note.txt", "rewritten.txt", "gone.txt", "r/x.locked"} {
		f.Put("vt", k, []byte("ransom "+k))
	}
	items := []batch.Item{planned("note.txt"), planned("rewritten.txt"), planned("gone.txt"), planned("r/x.locked")}
	items[3].DestKey = "r/x.locked"
	f.Put("vt", "rewritten.txt", []byte("written by a person after the plan"))
	if _, err := f.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("vt"), Key: aws.String("gone.txt")}); err != nil {
		t.Fatal(err)
	}
	body, _ := batch.Encode(batch.Header{Version: 1, Source: "bak", Destination: "vt"}, items)
	key := batch.Key("exec", 0)
	f.Put("run", key, body)

	for attempt := range 2 {
		resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key, RetryCount: attempt})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Deleted != 3 || resp.Skipped != 1 || resp.Failed != 0 || resp.Copied != 0 {
			t.Fatalf("attempt %d: %+v", attempt, resp)
		}
		out := outcome(t, f, resp.OutcomeKey)
		if len(out.Skips) != 1 || out.Skips[0].Key != "rewritten.txt" || !strings.Contains(out.Skips[0].Reason, "changed in the target") {
			t.Errorf("attempt %d: skips %+v", attempt, out.Skips)
		}
	}
	for k, want := range map[string][]bool{ // delete marker? per version, oldest first
		"note.txt": {false, true}, "gone.txt": {false, true}, "r/x.locked": {false, true}, "rewritten.txt": {false, false},
	} {
		var got []bool
		for _, v := range f.Versions("vt", k) {
			got = append(got, v.DeleteMarker)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: versions (delete marker?) %v, want %v", k, got, want)
		}
	}
	if v := f.Versions("bak", "note.txt"); len(v) != 1 || v[0].DeleteMarker {
		t.Errorf("the backup was touched: %+v", v)
	}
}
