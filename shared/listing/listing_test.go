package listing

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// Histories are gathered whole even when a key's versions span several pages.
func TestVersionsAcrossPages(t *testing.T) {
	for _, page := range []int{1, 2, 3, 1000} {
		t.Run(fmt.Sprint("page ", page), func(t *testing.T) {
			f := s3fake.New()
			f.PageSize = page
			f.AddBucket("b", true)
			for i := range 5 {
				f.Put("b", "a", []byte{byte(i)})
			}
			if _, err := f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("a")}); err != nil {
				t.Fatal(err)
			}
			f.Put("b", "b", []byte("1"))
			f.Put("b", "c", []byte("1"))
			f.Put("b", "c", []byte("2"))
			for _, after := range []string{"", "a"} {
				v := NewVersions(f, "b", "", after)
				got := map[string]int{}
				var order []string
				for {
					key, h, ok, err := v.Next(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					got[key] = len(h)
					order = append(order, key)
				}
				want := map[string]int{"a": 6, "b": 1, "c": 2}
				wantOrder := []string{"a", "b", "c"}
				if after == "a" {
					delete(want, "a")
					wantOrder = wantOrder[1:]
				}
				if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(order, wantOrder) {
					t.Fatalf("after %q: got %v in order %v, want %v", after, got, order, want)
				}
			}
		})
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAsOf(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	v := func(id string, at time.Duration, marker bool) Version {
		return Version{Object: change.Object{Key: "k", LastModified: t0.Add(at)}, VersionID: id, DeleteMarker: marker}
	}
	history := []Version{v("v3", 3*time.Hour, false), v("m2", 2*time.Hour, true), v("v1", time.Hour, false)}
	history[0].IsLatest = true
	rank(history)
	tests := []struct {
		at   time.Duration
		want string
	}{
		{0, ""}, {time.Hour, "v1"}, {90 * time.Minute, "v1"}, {2 * time.Hour, "m2"}, {150 * time.Minute, "m2"}, {5 * time.Hour, "v3"},
	}
	for _, tt := range tests {
		got, ambiguity := AsOf(history, t0.Add(tt.at))
		id := ""
		if got != nil {
			id = got.VersionID
		}
		if id != tt.want || ambiguity != "" {
			t.Errorf("AsOf(+%v) = %q (ambiguity %q), want %q", tt.at, id, ambiguity, tt.want)
		}
	}
}

// Entries of the same second: listing order decides among versions; IsLatest decides between a
// version and a delete marker when one of them is the key's latest entry; otherwise the version
// is chosen (no data lost) and the choice is called ambiguous.
func TestAsOfTies(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	type entry struct {
		id     string
		at     time.Duration
		marker bool
		latest bool
	}
	tests := []struct {
		name      string
		history   []entry // in listing order within each kind: newest first
		at        time.Duration
		want      string // "" when nothing is current
		ambiguous bool
	}{
		{"version and marker, the marker is latest", []entry{{"v1", 0, false, false}, {"m1", 0, true, true}}, time.Hour, "m1", false},
		{"version and marker, the version is latest", []entry{{"v2", 0, false, true}, {"m1", 0, true, false}}, time.Hour, "v2", false},
		{"version and marker, neither is latest", []entry{{"v3", time.Hour, false, true}, {"v1", 0, false, false}, {"m1", 0, true, false}}, time.Minute, "v1", true},
		{"version and marker, no IsLatest at all", []entry{{"v1", 0, false, false}, {"m1", 0, true, false}}, time.Hour, "v1", true},
		{"two versions of one second, listed newest first", []entry{{"v3", time.Hour, false, true}, {"v2", 0, false, false}, {"v1", 0, false, false}}, time.Minute, "v2", false},
		{"two versions and a marker of one second", []entry{{"v2", 0, false, false}, {"v1", 0, false, false}, {"m1", 0, true, false}}, time.Minute, "v2", true},
		{"two markers of one second", []entry{{"v1", -time.Hour, false, false}, {"m2", 0, true, true}, {"m1", 0, true, false}}, time.Minute, "m2", false},
		{"tie not at the top, moment after it", []entry{{"v4", 2 * time.Hour, false, true}, {"v2", time.Hour, false, false}, {"m1", time.Hour, true, false}, {"v1", 0, false, false}}, 90 * time.Minute, "v2", true},
		{"tie not at the top, moment before it", []entry{{"v4", 2 * time.Hour, false, true}, {"v2", time.Hour, false, false}, {"m1", time.Hour, true, false}, {"v1", 0, false, false}}, 30 * time.Minute, "v1", false},
		{"tie after the moment", []entry{{"v2", time.Hour, false, true}, {"m1", time.Hour, true, false}}, 30 * time.Minute, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var history []Version
			for _, e := range tt.history {
				history = append(history, Version{Object: change.Object{Key: "k", LastModified: t0.Add(e.at)}, VersionID: e.id, DeleteMarker: e.marker, IsLatest: e.latest})
			}
			rank(history)
			got, ambiguity := AsOf(history, t0.Add(tt.at))
			id := ""
			if got != nil {
				id = got.VersionID
			}
			if id != tt.want || (ambiguity != "") != tt.ambiguous {
				t.Fatalf("AsOf = %q, ambiguity %q; want %q, ambiguous %v", id, ambiguity, tt.want, tt.ambiguous)
			}
			if tt.ambiguous && (!strings.Contains(ambiguity, tt.want) || !strings.Contains(ambiguity, "delete marker")) {
				t.Errorf("ambiguity %q does not name the chosen version and the marker", ambiguity)
			}
		})
	}
}

// Versions carries IsLatest and each entry's rank in listing order, also across pages.
func TestVersionsRankAndLatest(t *testing.T) {
	for _, page := range []int{1, 2, 1000} {
		t.Run(fmt.Sprint("page ", page), func(t *testing.T) {
			f := s3fake.New()
			f.PageSize = page
			f.AddBucket("b", true)
			f.Put("b", "k", []byte("1"))
			f.Put("b", "k", []byte("2"))
			if _, err := f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); err != nil {
				t.Fatal(err)
			}
			f.Put("b", "k", []byte("3"))
			if _, err := f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}); err != nil {
				t.Fatal(err)
			}
			_, h, ok, err := NewVersions(f, "b", "", "").Next(context.Background())
			if err != nil || !ok {
				t.Fatal(ok, err)
			}
			var got []string
			for _, v := range h {
				got = append(got, fmt.Sprintf("%s:%v:%d:%v", v.VersionID, v.DeleteMarker, v.Rank, v.IsLatest))
			}
			slices.Sort(got)
			// v1, v2, v4 are versions (newest v4); v3 and v5 markers (v5 latest).
			want := []string{"v1:false:2:false", "v2:false:1:false", "v3:true:1:false", "v4:false:0:false", "v5:true:0:true"}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("history %v, want %v", got, want)
			}
		})
	}
}

// gatedLister holds every ListObjectsV2 request after the first until the test opens the gate,
// and counts the requests that reached it.
type gatedLister struct {
	*s3fake.S3
	calls chan int
	gate  chan struct{}
	n     int
}

func (g *gatedLister) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	g.n++ // one request at a time: the listing never has two in flight
	g.calls <- g.n
	if g.n > 1 {
		<-g.gate
	}
	return g.S3.ListObjectsV2(ctx, in, opts...)
}

// While the caller consumes one page the next one is already requested, and every key still
// comes once, in order, whatever the page size.
func TestObjectsReadAhead(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e", "f", "g"}
	for _, tc := range []struct {
		page      int
		after     string
		wantCalls int
	}{
		{page: 1, wantCalls: 7},
		{page: 2, wantCalls: 4},
		{page: 3, after: "b", wantCalls: 2},
		{page: 1000, wantCalls: 1},
	} {
		t.Run(fmt.Sprintf("page %d after %q", tc.page, tc.after), func(t *testing.T) {
			f := s3fake.New()
			f.PageSize = tc.page
			f.AddBucket("b", false)
			for _, k := range keys {
				f.Put("b", k, []byte(k))
			}
			g := &gatedLister{S3: f, calls: make(chan int, 100), gate: make(chan struct{})}
			o := NewObjects(g, "b", "", tc.after)
			first, err := o.Peek(context.Background())
			if err != nil || first == nil {
				t.Fatalf("first object %v, %v", first, err)
			}
			<-g.calls
			if tc.wantCalls > 1 {
				// The first page is in hand and not consumed: the second is already asked for.
				select {
				case <-g.calls:
				case <-time.After(10 * time.Second):
					t.Fatal("the next page was not requested while the first was being consumed")
				}
			}
			close(g.gate)
			var got []string
			for {
				obj, err := o.Peek(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if obj == nil {
					break
				}
				got = append(got, obj.Key)
				o.Pop()
			}
			want := keys
			if tc.after != "" {
				want = keys[2:]
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("keys %v, want %v", got, want)
			}
			if n := f.Count("ListObjectsV2"); n != tc.wantCalls {
				t.Fatalf("%d ListObjectsV2 requests, want %d", n, tc.wantCalls)
			}
		})
	}
}

// An error on a page fetched ahead is returned when that page is reached, naming the bucket.
func TestObjectsReadAheadError(t *testing.T) {
	f := s3fake.New()
	f.PageSize = 2
	f.AddBucket("b", false)
	for _, k := range []string{"a", "b", "c"} {
		f.Put("b", k, []byte(k))
	}
	calls := 0
	f.Fail = func(op, bucket, key string) error {
		if op == "ListObjectsV2" {
			if calls++; calls == 2 {
				return s3fake.APIError("AccessDenied")
			}
		}
		return nil
	}
	got, err := drain(NewObjects(f, "b", "", ""))
	if !reflect.DeepEqual(got, []string{"a", "b"}) || err == nil || !strings.Contains(err.Error(), `list bucket "b"`) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("keys %v, error %v", got, err)
	}
}

// recordingLister records each ListObjectsV2 request and answers it from scripted pages, or
// from the fake when none are scripted.
type recordingLister struct {
	*s3fake.S3
	pages []*s3.ListObjectsV2Output
	seen  []s3.ListObjectsV2Input
}

func (r *recordingLister) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	r.seen = append(r.seen, *in)
	if len(r.pages) > 0 {
		out := r.pages[0]
		r.pages = r.pages[1:]
		return out, nil
	}
	return r.S3.ListObjectsV2(ctx, in, opts...)
}

// Pages after the first are asked for with StartAfter = the previous page's last key, never with
// the continuation token (MinIO builds a cache of the rest of the bucket for a token), except
// after a truncated page that holds no key; a truncated page with neither is an error.
func TestObjectsStartAfterPaging(t *testing.T) {
	obj := func(k string) s3types.Object {
		return s3types.Object{Key: aws.String(k), Size: aws.Int64(1), ETag: aws.String(`"e"`)}
	}
	for _, tc := range []struct {
		name        string
		after       string
		pages       []*s3.ListObjectsV2Output // nil: the fake's own pages of 2
		want        []string
		startAfters []string // each request's StartAfter
		tokens      []string // each request's ContinuationToken
		wantErr     string
	}{
		{name: "from the start", want: []string{"a", "b", "c", "d", "e"},
			startAfters: []string{"", "b", "d"}, tokens: []string{"", "", ""}},
		{name: "after a key", after: "a", want: []string{"b", "c", "d", "e"},
			startAfters: []string{"a", "c"}, tokens: []string{"", ""}},
		{name: "an empty truncated page goes on with its token", pages: []*s3.ListObjectsV2Output{
			{Contents: []s3types.Object{obj("a")}, IsTruncated: aws.Bool(true), NextContinuationToken: aws.String("t1")},
			{IsTruncated: aws.Bool(true), NextContinuationToken: aws.String("t2")},
			{Contents: []s3types.Object{obj("b")}, IsTruncated: aws.Bool(false)},
		}, want: []string{"a", "b"}, startAfters: []string{"", "a", "a"}, tokens: []string{"", "", "t2"}},
		{name: "a truncated page with neither", pages: []*s3.ListObjectsV2Output{
			{Contents: []s3types.Object{obj("a")}, IsTruncated: aws.Bool(true)},
			{IsTruncated: aws.Bool(true)},
		}, want: []string{"a"}, startAfters: []string{"", "a"}, tokens: []string{"", ""}, wantErr: "neither keys nor a continuation token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := s3fake.New()
			f.PageSize = 2
			f.AddBucket("b", false)
			for _, k := range []string{"a", "b", "c", "d", "e"} {
				f.Put("b", k, []byte(k))
			}
			r := &recordingLister{S3: f, pages: tc.pages}
			got, err := drain(NewObjects(r, "b", "", tc.after))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("keys %v, want %v", got, tc.want)
			}
			var sa, tok []string
			for _, in := range r.seen {
				sa, tok = append(sa, aws.ToString(in.StartAfter)), append(tok, aws.ToString(in.ContinuationToken))
			}
			if !reflect.DeepEqual(sa, tc.startAfters) || !reflect.DeepEqual(tok, tc.tokens) {
				t.Fatalf("requests: StartAfter %q, ContinuationToken %q; want %q, %q", sa, tok, tc.startAfters, tc.tokens)
			}
		})
	}
}

// drain reads a listing to its end or its first error, returning the keys read.
func drain(o *Objects) ([]string, error) {
	var got []string
	for {
		obj, err := o.Peek(context.Background())
		if err != nil || obj == nil {
			return got, err
		}
		got = append(got, obj.Key)
		o.Pop()
	}
}
