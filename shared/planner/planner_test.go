package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func setup() (*s3fake.S3, *Handler) {
	f := s3fake.New()
	f.AddBucket("src", false)
	f.AddBucket("bak", true)
	f.AddBucket("run", false)
	f.AddBucket("target", false)
	h := &Handler{S3: f, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", RestoreTargets: []string{"src", "target"},
		BatchSize: 1000, BatchBytes: 1 << 40, ThawCheckSeconds: 3600}, Logger: slog.New(slog.DiscardHandler)}
	return f, h
}

func planAll(t *testing.T, h *Handler, input string) Response {
	t.Helper()
	var cur *Cursor
	for range 1000 {
		resp, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: cur, Mode: ModePlan})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Done {
			return resp
		}
		cur = &resp.Cursor
	}
	t.Fatal("planner never finished")
	return Response{}
}

func planned(t *testing.T, f *s3fake.S3, n int) []batch.Item {
	t.Helper()
	var items []batch.Item
	for i := range n {
		out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(batch.Key("exec", i))})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(out.Body)
		if _, err := batch.Read(strings.NewReader(string(body)), func(it batch.Item) error { items = append(items, it); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return items
}

// The version current at the moment is picked; keys deleted then, or created later, are not restored.
func TestPicksVersionAsOf(t *testing.T) {
	f, h := setup()
	f.Put("bak", "changed", []byte("old"))
	f.Put("bak", "deleted-later", []byte("here"))
	f.Put("bak", "deleted-before", []byte("gone"))
	_, _ = f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String("deleted-before")})
	at := f.Tick(time.Minute)
	f.Tick(time.Minute)
	f.Put("bak", "changed", []byte("new"))
	_, _ = f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String("deleted-later")})
	f.Put("bak", "created-later", []byte("later"))
	f.Put("target", "changed", []byte("old")) // already holds the old content

	resp := planAll(t, h, `{"at": "`+at.Format(time.RFC3339Nano)+`", "targetBucket": "target"}`)
	c := resp.Cursor.Totals
	if c.Listed != 2 || c.New != 1 || c.Unchanged != 1 || c.Changed != 0 || c.Ambiguous != 0 || resp.RestoredAt != at.Format(time.RFC3339Nano) {
		t.Fatalf("cursor %+v", resp.Cursor)
	}
	items := planned(t, f, c.Batches)
	if len(items) != 1 || items[0].Key != "deleted-later" || items[0].VersionID == "" {
		t.Fatalf("items %+v", items)
	}
}

// Archived versions are thawed before copying: RestoreObject per version, then the thaw check
// reports them pending until they are readable. A dry run counts them and thaws nothing.
func TestThawsArchivedVersions(t *testing.T) {
	f, h := setup()
	for _, k := range []string{"a", "b", "c"} {
		f.Put("bak", k, []byte(k))
	}
	f.Archive("bak", "DEEP_ARCHIVE")
	input := `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "thawTier": "Bulk", "thawCheckSeconds": 900}`

	dry := planAll(t, h, strings.Replace(input, `"thawTier"`, `"dryRun": true, "thawTier"`, 1))
	if dry.Cursor.Totals.Archived != 3 || dry.ThawPending != 0 || f.Count("RestoreObject") != 0 {
		t.Fatalf("dry run: %+v, %d RestoreObject calls", dry, f.Count("RestoreObject"))
	}

	resp := planAll(t, h, input)
	if resp.Cursor.Totals.Archived != 3 || resp.ThawPending != 3 || resp.ThawWaitSeconds != 900 || f.Count("RestoreObject") != 3 {
		t.Fatalf("plan: %+v, %d RestoreObject calls", resp, f.Count("RestoreObject"))
	}
	check := func() int64 {
		r, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: &resp.Cursor, Mode: ModeThaw})
		if err != nil {
			t.Fatal(err)
		}
		return r.ThawPending
	}
	if n := check(); n != 3 {
		t.Fatalf("pending while thawing = %d", n)
	}
	f.ThawAll()
	if n := check(); n != 0 {
		t.Fatalf("pending after thawing = %d", n)
	}
}

// deepLister lists the versions of the keys in deep as DEEP_ARCHIVE (the fake archives a whole
// bucket into one class).
type deepLister struct {
	*s3fake.S3
	deep map[string]bool
}

func (d deepLister) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	out, err := d.S3.ListObjectVersions(ctx, in, opts...)
	if err == nil {
		for i, v := range out.Versions {
			if d.deep[aws.ToString(v.Key)] {
				out.Versions[i].StorageClass = types.ObjectVersionStorageClass("DEEP_ARCHIVE")
			}
		}
	}
	return out, err
}

// The thaw loop never thaws forever: a thaw that does not complete ends with ThawIncomplete once
// the waits add up to the tier's bound (ThawBoundFactor × S3's documented time, at least
// MinThawBound), and the loop's history events stay within ThawHistoryBudget, the wait between
// checks stretched when the requested one would not fit.
func TestThawLoopIsBounded(t *testing.T) {
	tests := []struct {
		name, tier, class string
		checkSeconds      int
		maxItems          int64 // ThawCheckMaxItems: invocations per pass
		firstWait         int   // the wait planning asks for
		wantBound         time.Duration
	}{
		{"Standard GLACIER at 60 s", "Standard", "GLACIER", 60, 0, 60, 10 * time.Hour},
		{"Bulk DEEP_ARCHIVE at 60 s is stretched", "Bulk", "DEEP_ARCHIVE", 60, 0, 312, 96 * time.Hour},
		{"Bulk DEEP_ARCHIVE, paged checks stretch further", "Bulk", "DEEP_ARCHIVE", 60, 1, 1038, 96 * time.Hour},
		{"Standard DEEP_ARCHIVE at a day", "Standard", "DEEP_ARCHIVE", 86400, 0, 86400, 24 * time.Hour},
		{"Expedited asks after planning, bound one hour", "Expedited", "GLACIER", 60, 0, 0, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			h.Config.ThawCheckMaxItems = tt.maxItems
			for _, k := range []string{"a", "b", "c", "d"} {
				f.Put("bak", k, []byte(k))
			}
			f.Archive("bak", tt.class)
			input := fmt.Sprintf(`{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "thawTier": %q, "thawCheckSeconds": %d}`, tt.tier, tt.checkSeconds)
			resp := planAll(t, h, input)
			if resp.ThawWaitSeconds != tt.firstWait {
				t.Errorf("first wait %d s, want %d", resp.ThawWaitSeconds, tt.firstWait)
			}
			waited := time.Duration(resp.ThawWaitSeconds) * time.Second
			longest := waited
			var err error
			checks := 0
			for cur := resp.Cursor; err == nil && checks < 100000; {
				var r Response
				r, err = h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: &cur, Mode: ModeThaw})
				checks++
				if err == nil {
					if r.ThawPending == 0 && r.ThawChecked {
						t.Fatalf("nothing pending after %d checks, but nothing was thawed", checks)
					}
					if r.ThawChecked {
						wait := time.Duration(r.ThawWaitSeconds) * time.Second
						waited, longest = waited+wait, max(longest, wait)
					}
					cur = r.Cursor
					if events := cur.Position.ThawEvents; events > ThawHistoryBudget {
						t.Fatalf("thaw loop at %d history events after %d checks, over the budget of %d", events, checks, ThawHistoryBudget)
					}
				}
			}
			var incomplete *fault.ThawIncomplete
			if !errors.As(err, &incomplete) || !strings.Contains(err.Error(), "4 of 4 archived versions are still thawing") {
				t.Fatalf("after %d checks: err = %v, want ThawIncomplete naming 4 of 4", checks, err)
			}
			if waited < tt.wantBound || waited > tt.wantBound+longest {
				t.Errorf("gave up after %s of waits, want the bound %s", waited, tt.wantBound)
			}
			if n := f.Count("RestoreObject"); n != 4 {
				t.Errorf("%d RestoreObject calls, want one per version", n)
			}
		})
	}
}

// thawTier Expedited is not offered for DEEP_ARCHIVE: the restore is refused while planning,
// before any version is asked to thaw (also one in GLACIER planned before it).
func TestExpeditedRefusedForDeepArchive(t *testing.T) {
	f, h := setup()
	f.Put("bak", "a-glacier", []byte("a"))
	f.Put("bak", "z-deep", []byte("z"))
	f.Archive("bak", "GLACIER")
	h.S3 = deepLister{S3: f, deep: map[string]bool{"z-deep": true}}
	input := `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "thawTier": "Expedited"}`
	_, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Mode: ModePlan})
	var invalid *fault.InvalidInput
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "thawTier Expedited is not offered for DEEP_ARCHIVE") || !strings.Contains(err.Error(), "z-deep") {
		t.Fatalf("err = %v, want InvalidInput naming the rule and z-deep", err)
	}
	if n := f.Count("RestoreObject"); n != 0 {
		t.Fatalf("%d RestoreObject calls before the refusal", n)
	}
	// The same restore at Standard goes ahead.
	h.S3 = deepLister{S3: f, deep: map[string]bool{"z-deep": true}}
	resp := planAll(t, h, strings.Replace(input, "Expedited", "Standard", 1))
	if resp.ThawPending != 2 || f.Count("RestoreObject") != 2 {
		t.Fatalf("Standard: %+v, %d RestoreObject calls", resp, f.Count("RestoreObject"))
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name, input, want string
		typ               any
	}{
		{"target not allowed", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "elsewhere"}`, "not an allowed restore target", &fault.InvalidInput{}},
		{"restore into the backup", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "bak"}`, "not an allowed restore target", &fault.InvalidInput{}},
		{"unknown execution", `{"at": "backup-x", "targetBucket": "target"}`, "no backup execution named", &fault.InvalidInput{}},
		{"nothing matches", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "prefix": "nope/"}`, "nothing in backup bucket", &fault.InvalidInput{}},
		{"before the first backup", `{"at": "2000-01-01T00:00:00Z", "targetBucket": "target"}`, "before the first backup", &fault.InvalidInput{}},
		{"unknown field", `{"at": "2030-01-01T00:00:00Z", "target": "x"}`, `unknown field "target"`, &fault.InvalidInput{}},
		{"version of another key", `{"keys": ["a"], "versionId": "nope", "targetBucket": "target"}`, "not in backup bucket", &fault.InvalidInput{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			f.Put("bak", "a", []byte("a"))
			_, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(tt.input)})
			var invalid *fault.InvalidInput
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want InvalidInput mentioning %q", err, tt.want)
			}
			if n := f.Count("PutObject") + f.Count("CopyObject"); n != 0 && tt.name != "nothing matches" && tt.name != "before the first backup" {
				t.Errorf("%d writes despite the error", n)
			}
		})
	}
}

// A directory bucket (S3 Express One Zone) as the backup or the target is refused with
// UnsupportedBucket before any request: its listing is not in key order.
func TestDirectoryBucketsRefused(t *testing.T) {
	const dir = "photos--usw2-az1--x-s3"
	tests := []struct {
		name, backup, target, want string
	}{
		{"target", "bak", dir, `restore target bucket "photos--usw2-az1--x-s3"`},
		{"backup", dir, "target", `backup bucket "photos--usw2-az1--x-s3"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			f.AddBucket(dir, true)
			h.Config.BackupBucket = tt.backup
			h.Config.RestoreTargets = append(h.Config.RestoreTargets, dir)
			_, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(`{"at": "2030-01-01T00:00:00Z", "targetBucket": "` + tt.target + `"}`)})
			var ub *fault.UnsupportedBucket
			if !errors.As(err, &ub) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "directory bucket") {
				t.Fatalf("err = %v, want UnsupportedBucket naming %s", err, tt.want)
			}
			if n := f.Count("ListObjectsV2") + f.Count("ListObjectVersions") + f.Count("PutObject"); n != 0 {
				t.Errorf("%d listings or writes despite the refusal", n)
			}
		})
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// etagRewriter serves a bucket's listing with every ETag made multipart-looking, as a target
// object uploaded in parts would be listed.
type etagRewriter struct {
	*s3fake.S3
	bucket string
}

func (r etagRewriter) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out, err := r.S3.ListObjectsV2(ctx, in, opts...)
	if err == nil && aws.ToString(in.Bucket) == r.bucket {
		for i := range out.Contents {
			out.Contents[i].ETag = aws.String(`"` + strings.Trim(aws.ToString(out.Contents[i].ETag), `"`) + `-2"`)
		}
	}
	return out, err
}

// A target object of the same size as the version being restored, written later in parts, is
// not proven to hold that version: it is replaced (or kept and reported with overwrite false),
// never counted unchanged.
func TestTargetNotProvenEqualIsNotUnchanged(t *testing.T) {
	for _, tc := range []struct {
		name, overwrite    string
		changed, kept, new int64
		op                 batch.Op
	}{
		{"overwrite", "", 1, 0, 0, batch.OpCopy},
		{"overwrite false", `, "overwrite": false`, 0, 1, 0, batch.OpKeep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := setup()
			h.S3 = etagRewriter{S3: f, bucket: "target"}
			f.Put("bak", "k", []byte("original"))
			f.Tick(time.Hour)
			f.Put("target", "k", []byte("rewrite!")) // same size, later, listed with a multipart ETag
			resp := planAll(t, h, `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target"`+tc.overwrite+`}`)
			c := resp.Cursor.Totals
			if c.Unchanged != 0 || c.Changed != tc.changed || c.Kept != tc.kept || c.Listed != 1 {
				t.Fatalf("totals %+v", c)
			}
			items := planned(t, f, c.Batches)
			if len(items) != 1 || items[0].Op != tc.op || items[0].Key != "k" {
				t.Fatalf("items %+v", items)
			}
		})
	}
}

// A version and a delete marker of the same listed time: when neither is the key's latest entry,
// the version is restored, the key counted ambiguous and its item carries a note saying so; when
// the marker is the latest entry, the key was deleted at the moment and nothing is restored.
func TestSameSecondTies(t *testing.T) {
	f, h := setup()
	h.S3 = s3fake.Coarse{S3: f, Precision: time.Minute}
	del := func(key string) {
		if _, err := f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	f.Tick(time.Hour)
	f.Put("bak", "tie", []byte("data"))
	del("tie")
	f.Put("bak", "deleted", []byte("gone"))
	del("deleted") // the latest entry: the key is deleted
	at := f.Tick(time.Hour)
	f.Tick(time.Hour)
	f.Put("bak", "tie", []byte("later")) // after the moment: the tie is not at the top

	resp := planAll(t, h, `{"at": "`+at.Format(time.RFC3339Nano)+`", "targetBucket": "target"}`)
	c := resp.Cursor.Totals
	if c.Ambiguous != 1 || c.Listed != 1 || c.New != 1 {
		t.Fatalf("totals %+v", c)
	}
	items := planned(t, f, c.Batches)
	if len(items) != 1 || items[0].Key != "tie" || !strings.Contains(items[0].Note, "delete marker") || !strings.Contains(items[0].Note, items[0].VersionID) {
		t.Fatalf("items %+v", items)
	}
	if vs := f.Versions("bak", "tie"); items[0].VersionID != vs[0].VersionID {
		t.Fatalf("restored version %s, want the first (%s)", items[0].VersionID, vs[0].VersionID)
	}
}

// The batch manifest lists exactly the batches this plan wrote, so that a batch file a failed
// attempt left under the prefix is never run; a dry run writes none.
func TestManifestListsThisPlansBatches(t *testing.T) {
	f, h := setup()
	h.Config.BatchSize = 2
	for _, k := range []string{"a", "b", "c"} {
		f.Put("bak", k, []byte(k))
	}
	stale := batch.Key("exec", 2)
	f.Put("run", stale, []byte(`{"version":1,"source":"bak","destination":"target"}`+"\n"))

	dry := planAll(t, h, `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "dryRun": true}`)
	if dry.ManifestKey != "" || f.Count("PutObject run/"+batch.ManifestKey("exec")) != 0 {
		t.Fatalf("dry run wrote a manifest: %+v", dry)
	}

	resp := planAll(t, h, `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target"}`)
	if resp.ManifestKey != batch.ManifestKey("exec") || resp.Cursor.Totals.Batches != 2 {
		t.Fatalf("response %+v", resp)
	}
	out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(resp.ManifestKey)})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	want := fmt.Sprintf("{\"Key\":%q}\n{\"Key\":%q}\n", batch.Key("exec", 0), batch.Key("exec", 1))
	if string(body) != want {
		t.Fatalf("manifest %q, want %q", body, want)
	}
}

// The cursor crosses the state machine as JSON and is decoded strictly: a renamed or unknown
// field fails the invocation instead of reading as zero.
func TestCursorDecodedStrictly(t *testing.T) {
	f, h := setup()
	f.Put("bak", "a", []byte("a"))
	handler := lambdafn.Handler(h.Handle, nil)
	for _, tc := range []struct {
		name, cursor string
		ok           bool
	}{
		{"known fields", `{"totals": {"batches": 0, "invocations": 1}, "position": {"restoredAt": "2030-01-01T00:00:00Z"}}`, true},
		{"old field name", `{"totals": {"nextBatch": 0}, "position": {"restoredAt": "2030-01-01T00:00:00Z"}}`, false},
		{"flat old cursor", `{"restoredAt": "2030-01-01T00:00:00Z", "listed": 3}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := `{"execution": "exec", "mode": "plan", "input": {"at": "2030-01-01T00:00:00Z", "targetBucket": "target"}, "cursor": ` + tc.cursor + `}`
			_, err := handler.Invoke(context.Background(), []byte(payload))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// checkAll runs thaw-check invocations until one has looked at every archived version, and
// returns the pending count and the number of invocations.
func checkAll(t *testing.T, ctx context.Context, h *Handler, input string, cur Cursor) (int64, int) {
	t.Helper()
	for n := 1; n <= 1000; n++ {
		r, err := h.Handle(ctx, Request{Execution: "exec", Input: json.RawMessage(input), Cursor: &cur, Mode: ModeThaw})
		if err != nil {
			t.Fatal(err)
		}
		if !r.Done || r.ManifestKey != batch.ManifestKey("exec") {
			t.Fatalf("thaw check response %+v", r)
		}
		if r.ThawChecked {
			if p := r.Cursor.Position; p.ThawFile != 0 || p.ThawItem != 0 || p.ThawPending != 0 {
				t.Fatalf("a finished pass left its position: %+v", p)
			}
			return r.ThawPending, n
		}
		if r.Cursor.Position == cur.Position {
			t.Fatalf("a thaw check made no progress: %+v", cur.Position)
		}
		cur = r.Cursor
	}
	t.Fatal("the thaw check never finished")
	return 0, 0
}

// A thaw check of many archived versions is paged: each invocation looks at no more than
// ThawCheckMaxItems of them (or stops at its deadline) and returns its place, and the pending
// counts of the invocations add up to every version not readable yet.
func TestThawCheckIsPaged(t *testing.T) {
	const n = 25
	f, h := setup()
	h.Config.BatchSize = 10 // thaw files of 10, 10 and 5 versions
	for i := range n {
		f.Put("bak", fmt.Sprintf("cold/%02d", i), []byte{byte(i)})
	}
	f.Archive("bak", "GLACIER")
	input := `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target"}`
	plan := planAll(t, h, input)
	if plan.ThawPending != n || !plan.ThawChecked || plan.Cursor.Position.NextThaw != 3 {
		t.Fatalf("plan %+v", plan)
	}

	h.Config.ThawCheckMaxItems = 4
	heads := f.Count("HeadObject")
	pending, invocations := checkAll(t, context.Background(), h, input, plan.Cursor)
	if pending != n || invocations != (n+3)/4 || f.Count("HeadObject")-heads != n {
		t.Fatalf("pending %d after %d invocations and %d HeadObject; want %d, %d, %d", pending, invocations, f.Count("HeadObject")-heads, n, (n+3)/4, n)
	}

	// Near its deadline an invocation looks at one version and returns.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Second) // StopAt is 10 s before the deadline: already past
	defer cancel()
	h.Config.ThawCheckMaxItems = 0
	if pending, invocations = checkAll(t, ctx, h, input, plan.Cursor); pending != n || invocations != n {
		t.Fatalf("near the deadline: pending %d after %d invocations, want %d after %d", pending, invocations, n, n)
	}

	f.ThawAll()
	h.Config.ThawCheckMaxItems = 10
	if pending, invocations = checkAll(t, context.Background(), h, input, plan.Cursor); pending != 0 || invocations != 3 {
		t.Fatalf("after thawing: pending %d after %d invocations", pending, invocations)
	}
}
