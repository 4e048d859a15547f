//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/browse"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/statemachine/console"
)

func (e *env) ls(prefix string, at time.Time) []string {
	e.t.Helper()
	var got []string
	err := browse.Ls(e.ctx, e.s3, e.backup, prefix, at, func(en browse.Entry) error {
		if en.Dir {
			got = append(got, en.Key)
		} else {
			got = append(got, fmt.Sprintf("%s=%d", en.Key, en.Size))
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// Two backups with a change, a deletion and a new folder between them; the backup bucket browsed
// as of each run (by name, through runlog.Moment) and now, against MinIO's own delimited
// version listing.
func TestBrowseBackup(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, o := range []object{{key: "docs/a.txt", body: "a1"}, {key: "docs/b.txt", body: "b1"}, {key: "docs/old/d.txt", body: "d1"}, {key: "docs/sub/c.txt", body: "c1"}, {key: "top.txt", body: "t1"}} {
		e.put(e.source, o)
	}
	r1 := e.mustBackup("{}")
	time.Sleep(20 * time.Millisecond) // the next writes are strictly after run 1 finished
	e.put(e.source, object{key: "docs/a.txt", body: "a2, longer"})
	e.del(e.source, "docs/b.txt")
	e.del(e.source, "docs/old/d.txt")
	e.put(e.source, object{key: "docs/new/e.txt", body: "e1"})
	r2 := e.mustBackup(`{"maxDeletePercent": 100}`)

	t1, err := runlog.Moment(e.ctx, e.s3, e.run, r1.Execution.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.ls("docs/", t1); !reflect.DeepEqual(got, []string{"docs/a.txt=2", "docs/b.txt=2", "docs/old/", "docs/sub/"}) {
		t.Errorf("ls docs/ at run 1 = %v", got)
	}
	if got := e.ls("docs/", time.Time{}); !reflect.DeepEqual(got, []string{"docs/a.txt=10", "docs/new/", "docs/sub/"}) {
		t.Errorf("ls docs/ now = %v", got)
	}
	if got := e.ls("", t1); !reflect.DeepEqual(got, []string{"docs/", "top.txt=2"}) {
		t.Errorf("ls at run 1 = %v", got)
	}

	vs, err := browse.Versions(e.ctx, e.s3, e.backup, "docs/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || !vs[0].DeleteMarker || !vs[0].IsLatest || vs[1].DeleteMarker || vs[1].Size != 2 {
		t.Errorf("versions of docs/b.txt = %+v, want its delete marker, then its version", vs)
	}

	var changes []string
	err = browse.Diff(e.ctx, e.s3, e.backup, "", t1, time.Time{}, func(c browse.Change) error {
		changes = append(changes, c.Change+" "+c.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"changed docs/a.txt", "deleted docs/b.txt", "added docs/new/e.txt", "deleted docs/old/d.txt"}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("diff run 1 → now = %v, want %v", changes, want)
	}

	runs, err := runlog.List(e.ctx, e.s3, e.run, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Execution != r2.Execution.Name || runs[1].Execution != r1.Execution.Name || runs[0].Kind != runlog.Backup {
		t.Errorf("runs = %+v, want run 2 then run 1", runs)
	}
}

// A folder of 2,500 keys (one deleted) and 300 sub-folders of one key each in MinIO's
// versioned backup bucket, paged 1,000 entries at a time with browse.Page, each page started
// after the last entry of the one before (S3's key marker, against MinIO's own delimited
// listing): every entry seen exactly once, in key order, and the pages are 1,000, 1,000, 799.
func TestBrowsePages(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putMany(e.backup, 2500, func(i int) string { return fmt.Sprintf("big/%05d.txt", i) }, func(int) []byte { return []byte("x") })
	e.putMany(e.backup, 300, func(i int) string { return fmt.Sprintf("big/%05d.dir/inner", i*7) }, func(int) []byte { return []byte("y") })
	if _, err := e.s3.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.backup), Key: aws.String("big/01000.txt")}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var sizes []int
	after, last := "", ""
	for {
		entries, next, err := browse.Page(e.ctx, e.s3, e.backup, "big/", after, time.Time{}, console.DefaultFolderEntries)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(entries))
		for _, en := range entries {
			if en.Key <= last {
				t.Fatalf("%q after %q: not in key order", en.Key, last)
			}
			last = en.Key
			seen[en.Key]++
		}
		if next == "" {
			break
		}
		after = next
	}
	if !reflect.DeepEqual(sizes, []int{1000, 1000, 799}) {
		t.Errorf("pages of %v entries, want [1000 1000 799]", sizes)
	}
	if len(seen) != 2799 || seen["big/01000.txt"] != 0 || seen["big/00007.dir/"] != 1 || seen["big/00007.txt"] != 1 {
		t.Errorf("%d entries; big/01000.txt %d (deleted), big/00007.dir/ %d, big/00007.txt %d", len(seen), seen["big/01000.txt"], seen["big/00007.dir/"], seen["big/00007.txt"])
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", k, n)
		}
	}
}

// TestBrowseBig measures `ls` of a folder of 100 keys in a backup bucket of 100,000 objects with
// history (three versions each, every tenth deleted). It is a measurement, not a check, so it
// runs only with BUCKETVAULT_BIG=1:
//
//	BUCKETVAULT_BIG=1 BUCKETVAULT_REQUIRE_SERVERS=1 MINIO_BIN=… go test -count=1 -tags integration -run TestBrowseBig -v ./integration/
func TestBrowseBig(t *testing.T) {
	if os.Getenv("BUCKETVAULT_BIG") != "1" {
		t.Skip("a measurement: set BUCKETVAULT_BIG=1 to run it")
	}
	e := newEnv(t, envOptions{})
	const folders, perFolder, versions = 1000, 100, 3
	start := time.Now()
	g, ctx := errgroup.WithContext(e.ctx)
	g.SetLimit(32)
	for f := range folders {
		for k := range perFolder {
			key := fmt.Sprintf("data/f%04d/k%03d", f, k)
			g.Go(func() error {
				for v := range versions {
					if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.backup), Key: aws.String(key), Body: bytes.NewReader([]byte(fmt.Sprint(v)))}); err != nil {
						return err
					}
				}
				if k%10 == 0 {
					_, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.backup), Key: aws.String(key)})
					return err
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d objects × %d versions in %v", folders*perFolder, versions, time.Since(start).Round(time.Millisecond))
	measure := func(prefix string, at time.Time) {
		for range 3 {
			n := 0
			start := time.Now()
			err := browse.Ls(context.Background(), e.s3, e.backup, prefix, at, func(browse.Entry) error { n++; return nil })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("ls %q at %v: %d entries in %v", prefix, at.Format(time.RFC3339), n, time.Since(start).Round(time.Microsecond))
		}
	}
	measure("data/f0500/", time.Time{})
	measure("data/f0500/", time.Now())
	measure("data/", time.Time{})

	// The same folders opened in the restore console: the whole page, as a browser gets it.
	noRestore := errors.New("no restore in this measurement")
	srv, err := console.New(console.Options{S3: e.s3, Source: e.source, Backup: e.backup, Run: e.run,
		StartRestore: func(context.Context, string, []byte) error { return noRestore },
		Execution: func(context.Context, string) (console.Execution, error) {
			return console.Execution{}, console.ErrNoSuchExecution
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	if resp, err := client.Get(ts.URL + srv.LoginPath()); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, prefix := range []string{"data/f0500/", "data/"} {
		for range 3 {
			start := time.Now()
			resp, err := client.Get(ts.URL + "/browse?prefix=" + url.QueryEscape(prefix))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("console /browse?prefix=%s: %d", prefix, resp.StatusCode)
			}
			t.Logf("console /browse?prefix=%s: %d bytes, %d entries, in %v", prefix, len(body), bytes.Count(body, []byte(`data-testid="entry"`)), time.Since(start).Round(time.Microsecond))
		}
	}
}
