package browse

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recording is the fake (or s3fake.Coarse over it) with a page size, recording the Prefix of
// every request.
type recording struct {
	inner    S3 // the fake, or s3fake.Coarse over it
	pageSize int

	mu       sync.Mutex
	prefixes []string
}

func (d *recording) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.prefixes)
}

func (d *recording) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	d.mu.Lock()
	d.prefixes = append(d.prefixes, aws.ToString(in.Prefix))
	d.mu.Unlock()
	page := *in
	if d.pageSize > 0 && (page.MaxKeys == nil || *page.MaxKeys > int32(d.pageSize)) {
		page.MaxKeys = aws.Int32(int32(d.pageSize))
	}
	return d.inner.ListObjectVersions(ctx, &page, opts...)
}

func del(t *testing.T, f *s3fake.S3, bucket, key string) {
	t.Helper()
	if _, err := f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
}

// history is a backup in two states: T1 (after the first backup) and now (a change, two
// deletions — one emptying docs/old/ —, a new folder, and one key written again unchanged).
type history struct {
	f                   *s3fake.S3
	before, t1, deleted time.Time
}

func newHistory(t *testing.T) history {
	f := s3fake.New()
	f.AddBucket("bak", true)
	h := history{f: f, before: f.Tick(time.Minute)}
	f.Tick(time.Minute)
	f.Put("bak", "docs/a.txt", []byte("a1"))
	f.Put("bak", "docs/b.txt", []byte("b1"))
	f.Put("bak", "docs/sub/c.txt", []byte("c1"))
	f.Put("bak", "docs/old/d.txt", []byte("d1"))
	f.Put("bak", "docs/r.txt", []byte("r"))
	f.Put("bak", "top.txt", []byte("t1"))
	h.t1 = f.Tick(time.Hour)
	f.Put("bak", "docs/a.txt", []byte("a2, longer"))
	del(t, f, "bak", "docs/b.txt")
	vs := f.Versions("bak", "docs/b.txt")
	h.deleted = vs[len(vs)-1].LastModified
	del(t, f, "bak", "docs/old/d.txt")
	f.Put("bak", "docs/new/e.txt", []byte("e1"))
	f.Put("bak", "docs/r.txt", []byte("r"))
	f.Tick(time.Hour)
	return h
}

func (h history) client(pageSize int) *recording {
	return &recording{inner: h.f, pageSize: pageSize}
}

func ls(t *testing.T, c S3, prefix string, at time.Time) []string {
	t.Helper()
	var got []string
	err := Ls(context.Background(), c, "bak", prefix, at, func(e Entry) error {
		if e.Dir {
			if e.Size != 0 || e.VersionID != "" || !e.LastModified.IsZero() || !strings.HasSuffix(e.Key, "/") {
				t.Errorf("folder entry %+v has more than its key", e)
			}
			got = append(got, e.Key)
			return nil
		}
		got = append(got, fmt.Sprintf("%s=%d", e.Key, e.Size))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestLs(t *testing.T) {
	h := newHistory(t)
	tests := []struct {
		name, prefix string
		at           time.Time
		want         []string
	}{
		{"folder at T1: old versions, keys deleted later, folders emptied later", "docs/", h.t1,
			[]string{"docs/a.txt=2", "docs/b.txt=2", "docs/old/", "docs/r.txt=1", "docs/sub/"}},
		{"folder now: new version, deleted keys and emptied folders hidden, new folder", "docs/", time.Time{},
			[]string{"docs/a.txt=10", "docs/new/", "docs/r.txt=1", "docs/sub/"}},
		{"at the deletion itself", "docs/", h.deleted,
			[]string{"docs/a.txt=10", "docs/old/", "docs/r.txt=1", "docs/sub/"}},
		{"just before the deletion", "docs/", h.deleted.Add(-time.Nanosecond),
			[]string{"docs/a.txt=10", "docs/b.txt=2", "docs/old/", "docs/r.txt=1", "docs/sub/"}},
		{"root at T1", "", h.t1, []string{"docs/", "top.txt=2"}},
		{"before the first backup", "docs/", h.before, nil},
		{"sub-folder", "docs/sub/", time.Time{}, []string{"docs/sub/c.txt=2"}},
		{"prefix that is not a folder", "doc", time.Time{}, []string{"docs/"}},
		{"key as prefix", "docs/a", h.t1, []string{"docs/a.txt=2"}},
		{"emptied folder now", "docs/old/", time.Time{}, nil},
	}
	for _, page := range []int{1, 2, 3, 1000} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s page %d", tt.name, page), func(t *testing.T) {
				c := h.client(page)
				if got := ls(t, c, tt.prefix, tt.at); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("Ls(%q) = %v, want %v", tt.prefix, got, tt.want)
				}
				// Delimited and scoped: no request lists more than the folder asked for.
				for _, p := range c.requests() {
					if !strings.HasPrefix(p, tt.prefix) {
						t.Errorf("a request listed prefix %q, outside %q", p, tt.prefix)
					}
				}
			})
		}
	}
}

// A folder costs requests for its own entries, not for the rest of the bucket: a thousand
// versions elsewhere add none.
func TestLsCost(t *testing.T) {
	h := newHistory(t)
	before := len(h.client(1000).requests())
	c := h.client(1000)
	ls(t, c, "docs/", time.Time{})
	small := len(c.requests())
	for i := range 1000 {
		h.f.Put("bak", fmt.Sprintf("big/%04d", i), []byte{byte(i)})
	}
	c = h.client(1000)
	ls(t, c, "docs/", time.Time{})
	if n := len(c.requests()); n != small || before != 0 {
		t.Fatalf("Ls(docs/) made %d requests with a big folder beside it, %d without", n, small)
	}
	// docs/ itself, then one check per sub-folder (docs/new/, docs/old/, docs/sub/); docs/old/
	// holds one key, so its check reads one page.
	if small != 4 {
		t.Fatalf("Ls(docs/) made %d requests, want 4: %v", small, c.requests())
	}
}

// fn's error stops Ls and is returned; no goroutine is left (goleak).
func TestLsStops(t *testing.T) {
	h := newHistory(t)
	stop := errors.New("stop")
	var n int
	err := Ls(context.Background(), h.client(1), "bak", "docs/", time.Time{}, func(Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err = %v after %d entries, want stop after 1", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Ls(ctx, h.client(1), "bak", "docs/", time.Time{}, func(Entry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

func TestVersions(t *testing.T) {
	h := newHistory(t)
	type v struct {
		size         int64
		latest, mark bool
	}
	tests := []struct {
		key  string
		want []v
	}{
		{"docs/b.txt", []v{{0, true, true}, {2, false, false}}},
		{"docs/a.txt", []v{{10, true, false}, {2, false, false}}},
		{"docs/a", nil},  // only keys that merely share the prefix
		{"docs/", nil},   // a folder is no key
		{"nothing", nil}, // never held
	}
	for _, page := range []int{1, 1000} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s page %d", tt.key, page), func(t *testing.T) {
				got, err := Versions(context.Background(), h.client(page), "bak", tt.key)
				if err != nil {
					t.Fatal(err)
				}
				var short []v
				for i, g := range got {
					if g.Key != tt.key || (i > 0 && g.LastModified.After(got[i-1].LastModified)) {
						t.Errorf("entry %d: %+v", i, g)
					}
					short = append(short, v{g.Size, g.IsLatest, g.DeleteMarker})
				}
				if !reflect.DeepEqual(short, tt.want) {
					t.Fatalf("Versions(%q) = %+v, want %+v", tt.key, short, tt.want)
				}
			})
		}
	}
}

// A delete marker listed at the same second as the version it hides comes first: it is the
// latest. (The SDK lists markers apart from versions, after them.)
func TestVersionsSameSecond(t *testing.T) {
	f := s3fake.New()
	f.AddBucket("bak", true)
	f.Tick(time.Hour)
	f.Put("bak", "k", []byte("1"))
	f.Put("bak", "k", []byte("22"))
	del(t, f, "bak", "k")
	c := &recording{inner: s3fake.Coarse{S3: f, Precision: time.Hour}}
	got, err := Versions(context.Background(), c, "bak", "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].DeleteMarker || !got[0].IsLatest || got[1].Size != 2 || got[2].Size != 1 {
		t.Fatalf("Versions = %+v, want the marker, then 22, then 1", got)
	}
}

func TestDiff(t *testing.T) {
	h := newHistory(t)
	tests := []struct {
		name, prefix string
		from, to     time.Time
		want         []string
	}{
		{"T1 to now", "docs/", h.t1, time.Time{},
			[]string{"changed docs/a.txt 2→10", "deleted docs/b.txt 2→", "added docs/new/e.txt →2", "deleted docs/old/d.txt 2→"}},
		{"now to T1", "docs/", time.Time{}, h.t1,
			[]string{"changed docs/a.txt 10→2", "added docs/b.txt →2", "deleted docs/new/e.txt 2→", "added docs/old/d.txt →2"}},
		{"from before the first backup", "", h.before, h.t1,
			[]string{"added docs/a.txt →2", "added docs/b.txt →2", "added docs/old/d.txt →2", "added docs/r.txt →1", "added docs/sub/c.txt →2", "added top.txt →2"}},
		{"a key's prefix", "docs/a", h.t1, time.Time{}, []string{"changed docs/a.txt 2→10"}},
		{"no change", "", h.t1, h.t1, nil},
	}
	for _, page := range []int{1, 1000} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s page %d", tt.name, page), func(t *testing.T) {
				var got []string
				err := Diff(context.Background(), h.client(page), "bak", tt.prefix, tt.from, tt.to, func(c Change) error {
					s := func(v *Version) string {
						if v == nil {
							return ""
						}
						if v.Key != c.Key || v.DeleteMarker || v.VersionID == "" {
							t.Errorf("%s: version %+v", c.Key, v)
						}
						return fmt.Sprint(v.Size)
					}
					got = append(got, fmt.Sprintf("%s %s %s→%s", c.Change, c.Key, s(c.From), s(c.To)))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("Diff = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

// A missing backup bucket is one line naming it, from every call.
func TestMissingBucket(t *testing.T) {
	h := newHistory(t)
	c := h.client(0)
	calls := []struct {
		name string
		call func() error
	}{
		{"Ls", func() error {
			return Ls(context.Background(), c, "nope", "", time.Time{}, func(Entry) error { return nil })
		}},
		{"Versions", func() error { _, err := Versions(context.Background(), c, "nope", "k"); return err }},
		{"Diff", func() error {
			return Diff(context.Background(), c, "nope", "", time.Time{}, time.Time{}, func(Change) error { return nil })
		}},
	}
	for _, tt := range calls {
		err := tt.call()
		var nf *fault.BucketNotFound
		if !errors.As(err, &nf) || err.Error() != `backup bucket "nope" does not exist` || !fault.IsCode(err, "NoSuchBucket") {
			t.Errorf("%s: err = %v, want BucketNotFound naming the bucket", tt.name, err)
		}
	}
}

// Walk: every key under a prefix, at any depth, as Ls would show it at the moment, in key order,
// with one listing (no request per sub-folder).
func TestWalk(t *testing.T) {
	h := newHistory(t)
	tests := []struct {
		name   string
		prefix string
		at     time.Time
		want   []string
	}{
		{"docs at T1", "docs/", h.t1, []string{"docs/a.txt=2", "docs/b.txt=2", "docs/old/d.txt=2", "docs/r.txt=1", "docs/sub/c.txt=2"}},
		{"docs now", "docs/", time.Time{}, []string{"docs/a.txt=10", "docs/new/e.txt=2", "docs/r.txt=1", "docs/sub/c.txt=2"}},
		{"everything before the first backup", "", h.before, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.client(2)
			var got []string
			err := Walk(context.Background(), c, "bak", tt.prefix, tt.at, func(e Entry) error {
				if e.Dir || e.VersionID == "" {
					t.Errorf("entry %+v: want a key's version", e)
				}
				got = append(got, fmt.Sprintf("%s=%d", e.Key, e.Size))
				return nil
			})
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Walk(%q) = %q, %v; want %q", tt.prefix, got, err, tt.want)
			}
			for _, p := range c.requests() {
				if p != tt.prefix {
					t.Fatalf("Walk(%q) listed %q: want one listing of the prefix", tt.prefix, p)
				}
			}
		})
	}
}

// bigFolder is a folder "big/" of files, files deleted at the moment, sub-folders (one emptied
// before the moment, one created after it), and a sub-folder named like a file beside it; at is
// the moment, want what Ls shows then.
func bigFolder(t *testing.T) (f *s3fake.S3, at time.Time, want []string) {
	f = s3fake.New()
	f.AddBucket("bak", true)
	f.Tick(time.Minute)
	for i := range 40 {
		key := fmt.Sprintf("big/f%03d.txt", i)
		f.Put("bak", key, []byte("v1"))
		switch {
		case i%7 == 3: // deleted before the moment: hidden
			f.Tick(time.Second)
			del(t, f, "bak", key)
		case i%5 == 0: // a sub-folder named like it, with a key that exists at the moment
			f.Put("bak", fmt.Sprintf("big/f%03d.txt/inner", i), []byte("x"))
			want = append(want, key+"=2", key+"/")
		default:
			want = append(want, key+"=2")
		}
	}
	f.Put("bak", "big/gone/x", []byte("x"))
	f.Tick(time.Second)
	del(t, f, "bak", "big/gone/x") // emptied before the moment: hidden
	f.Put("bak", "big/kept/x", []byte("x"))
	want = append(want, "big/kept/")
	at = f.Tick(time.Hour)
	f.Put("bak", "big/later/x", []byte("x")) // after the moment: hidden
	f.Put("bak", "big/f001.txt", []byte("v2, longer"))
	del(t, f, "bak", "big/f002.txt")
	f.Tick(time.Hour)
	return f, at, want // in key order: "big/f000.txt" before "big/f000.txt/"
}

func label(e Entry) string {
	if e.Dir {
		return e.Key
	}
	return fmt.Sprintf("%s=%d", e.Key, e.Size)
}

// Paging a folder at a moment: the pages, each started after the previous page's last entry,
// hold every entry Ls shows exactly once, in order, whatever the page and S3 page sizes; no
// page lists past its own entries.
func TestPage(t *testing.T) {
	f, at, want := bigFolder(t)
	for _, s3page := range []int{1, 2, 3, 1000} {
		for _, n := range []int{1, 2, 7, len(want) - 1, len(want), 1000} {
			t.Run(fmt.Sprintf("S3 pages of %d, pages of %d", s3page, n), func(t *testing.T) {
				c := &recording{inner: f, pageSize: s3page}
				var got []string
				after, pages := "", 0
				for {
					entries, next, err := Page(context.Background(), c, "bak", "big/", after, at, n)
					if err != nil {
						t.Fatal(err)
					}
					pages++
					if len(entries) > n || (next != "" && len(entries) != n) {
						t.Fatalf("page %d: %d entries, next %q; want %d, or fewer on the last page", pages, len(entries), next, n)
					}
					for _, e := range entries {
						got = append(got, label(e))
					}
					if next == "" {
						break
					}
					if next != entries[len(entries)-1].Key {
						t.Fatalf("next = %q, want the page's last entry %q", next, entries[len(entries)-1].Key)
					}
					after = next
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("pages together = %v\nwant %v", got, want)
				}
				if wantPages := (len(want) + n - 1) / n; pages != wantPages {
					t.Fatalf("%d pages, want %d", pages, wantPages)
				}
			})
		}
	}
	if got := ls(t, &recording{inner: f}, "big/", at); !reflect.DeepEqual(got, want) {
		t.Fatalf("Ls = %v, want %v", got, want)
	}
}

// relisting is a server that lists the key marker's own sub-folder again (and the keys between
// the marker less its last byte and the marker): LsAfter still starts after the marker.
type relisting struct{ inner S3 }

func (r relisting) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	req := *in
	if m := aws.ToString(in.KeyMarker); strings.HasSuffix(m, Delimiter) {
		req.KeyMarker = aws.String(strings.TrimSuffix(m, Delimiter))
	}
	return r.inner.ListObjectVersions(ctx, &req, opts...)
}

func TestPageAfterFolderListedAgain(t *testing.T) {
	f, at, want := bigFolder(t)
	i := slices.Index(want, "big/f005.txt/")
	entries, _, err := Page(context.Background(), relisting{f}, "bak", "big/", "big/f005.txt/", at, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, label(e))
	}
	if !reflect.DeepEqual(got, want[i+1:i+4]) {
		t.Fatalf("page after big/f005.txt/ = %v, want %v", got, want[i+1:i+4])
	}
}

// A folder of sub-folders only: S3's pages hold no key, and a page of the console must not list
// the whole folder before it shows its first entries.
func TestPageOfManySubFolders(t *testing.T) {
	f := s3fake.New()
	f.AddBucket("bak", true)
	const folders = 2500
	for i := range folders {
		f.Put("bak", fmt.Sprintf("many/%04d/x", i), []byte("x"))
	}
	c := &recording{inner: f}
	entries, next, err := Page(context.Background(), c, "bak", "many/", "", time.Time{}, 10)
	if err != nil || len(entries) != 10 || entries[9].Key != "many/0009/" || next != "many/0009/" {
		t.Fatalf("Page = %d entries, next %q, %v; want 10 ending at many/0009/", len(entries), next, err)
	}
	n := 0
	for _, p := range c.requests() {
		if p == "many/" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the folder's own listing took %d requests, want 1 (a page of %d sub-folders)", n, 1000)
	}
	// Across S3's pages of sub-folders: Ls resumes from the page's last sub-folder.
	c = &recording{inner: f, pageSize: 1000}
	var got int
	last := ""
	err = Ls(context.Background(), c, "bak", "many/", time.Time{}, func(e Entry) error {
		if !e.Dir || e.Key <= last {
			t.Fatalf("entry %q after %q", e.Key, last)
		}
		last = e.Key
		got++
		return nil
	})
	if err != nil || got != folders {
		t.Fatalf("Ls = %d sub-folders, %v; want %d", got, err, folders)
	}
}

// A continuation from a link is checked before anything is listed.
func TestCheckAfter(t *testing.T) {
	tests := []struct {
		prefix, after string
		ok            bool
	}{
		{"docs/", "", true},
		{"docs/", "docs/a.txt", true},
		{"docs/", "docs/sub/", true},
		{"", "top.txt", true},
		{"", "docs/", true},
		{"docs/", "other/a.txt", false},
		{"docs/", "docs/", false},
		{"docs/", "docs//", false},
		{"docs/", "docs/sub/c.txt", false},
		{"docs/", "docs/" + strings.Repeat("x", 1020), false},
		{"docs/", "docs/\xff", false},
	}
	for _, tt := range tests {
		err := CheckAfter(tt.prefix, tt.after)
		var inv *fault.InvalidInput
		if tt.ok != (err == nil) || (err != nil && !errors.As(err, &inv)) {
			t.Errorf("CheckAfter(%q, %q) = %v, want ok %v", tt.prefix, tt.after, err, tt.ok)
		}
		if !tt.ok {
			called := false
			err := LsAfter(context.Background(), s3fake.New(), "bak", tt.prefix, tt.after, time.Time{}, func(Entry) error { called = true; return nil })
			if !errors.As(err, &inv) || called {
				t.Errorf("LsAfter(%q, %q) = %v, want the InvalidInput before listing", tt.prefix, tt.after, err)
			}
		}
	}
}
