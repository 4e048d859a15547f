// Package browse shows the versioned backup bucket as it stood at a moment: a folder's entries
// (Ls), one key's history (Versions), and what changed between two moments (Diff). Every call
// streams the bucket's version listing one page at a time (shared/listing) and picks each key's
// entry current at the moment with listing.AsOf, the rule a restore follows, so that what browse
// shows is what a restore of that moment would bring back.
package browse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/listing"
)

// S3 is what browsing needs of an S3 client.
type S3 interface {
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Delimiter separates a key's folders, as in `aws s3 ls`.
const Delimiter = "/"

// DefaultFolderChecks is how many sub-folders Ls checks at once (see Ls); it also bounds how far
// the listing runs ahead of the entries handed to fn.
const DefaultFolderChecks = 64

// DefaultCheckPage is how many entries the first request of a sub-folder's check asks for.
const DefaultCheckPage = 10

// Entry is one line of a folder's listing: a key's version current at the moment, or a
// sub-folder (Dir, with Key ending in Delimiter and every other field zero).
type Entry struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	LastModified time.Time `json:"lastModified"`
	VersionID    string    `json:"versionId"`
	StorageClass string    `json:"storageClass"`
	ETag         string    `json:"etag"`
	Dir          bool      `json:"dir,omitempty"`
}

// Version is one entry of a key's history: a version, or a delete marker.
type Version struct {
	Key          string    `json:"key"`
	VersionID    string    `json:"versionId"`
	LastModified time.Time `json:"lastModified"`
	Size         int64     `json:"size"`
	IsLatest     bool      `json:"isLatest"`
	DeleteMarker bool      `json:"deleteMarker"`
	StorageClass string    `json:"storageClass"`
	ETag         string    `json:"etag"`
}

// Kinds of Change.
const (
	Added   = "added"
	Changed = "changed"
	Deleted = "deleted"
)

// Change is a key whose state differs between two moments: From is its version at the first
// (nil when added), To at the second (nil when deleted).
type Change struct {
	Key    string   `json:"key"`
	Change string   `json:"change"`
	From   *Version `json:"from,omitempty"`
	To     *Version `json:"to,omitempty"`
}

// current is the entry of history current at t; the zero t means now: the key's latest entry.
func current(history []listing.Version, t time.Time) *listing.Version {
	if t.IsZero() {
		for i := range history {
			if history[i].IsLatest {
				return &history[i]
			}
		}
		t = time.Unix(1<<62, 0) // no entry says it is the latest: the newest, by AsOf's rule
	}
	v, _ := listing.AsOf(history, t)
	return v
}

// present is the version current at t, nil when the key did not exist then or was deleted.
func present(history []listing.Version, t time.Time) *listing.Version {
	v := current(history, t)
	if v == nil || v.DeleteMarker {
		return nil
	}
	return v
}

// entry is the listing line of key's version v.
func entry(key string, v *listing.Version) Entry {
	return Entry{Key: key, Size: v.Size, LastModified: v.LastModified, VersionID: v.VersionID, StorageClass: v.StorageClass, ETag: v.ETag}
}

func version(v *listing.Version) Version {
	return Version{Key: v.Key, VersionID: v.VersionID, LastModified: v.LastModified, Size: v.Size, IsLatest: v.IsLatest,
		DeleteMarker: v.DeleteMarker, StorageClass: v.StorageClass, ETag: v.ETag}
}

// listError names what was being listed; a missing bucket becomes a one-line
// *fault.BucketNotFound.
func listError(err error, bucket, prefix string) error {
	if fault.IsCode(err, "NoSuchBucket") {
		return &fault.BucketNotFound{Msg: fmt.Sprintf("backup bucket %q does not exist", bucket), Err: err}
	}
	return fmt.Errorf("list versions of s3://%s/%s: %w", bucket, prefix, err)
}

// delimited asks for the listing with Delimiter and keeps the CommonPrefixes of the pages read, in
// order; shared/listing sees the versions and delete markers of the keys directly under the
// prefix only.
//
// A truncated page of sub-folders only ends the listing early, with resume set to S3's
// NextKeyMarker: shared/listing reads on until it meets a key, and a folder of many sub-folders
// would otherwise have all of them listed before the first could be shown. Such a page also
// ends the history of any key before it (keys come in order), so Ls hands out what it holds and
// lists again from resume, the continuation S3 documents for the key-marker parameter.
type delimited struct {
	client   S3
	prefixes []string // sub-folders of the pages read, not yet merged into the listing
	resume   string   // where to list on after a page of sub-folders only; "" when done
}

func (d *delimited) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	req := *in
	req.Delimiter = aws.String(Delimiter)
	out, err := d.client.ListObjectVersions(ctx, &req, opts...)
	if err != nil {
		return nil, err
	}
	for _, p := range out.CommonPrefixes {
		d.prefixes = append(d.prefixes, aws.ToString(p.Prefix))
	}
	if len(out.Versions) == 0 && len(out.DeleteMarkers) == 0 && aws.ToBool(out.IsTruncated) && aws.ToString(out.NextKeyMarker) != "" {
		page := *out
		page.IsTruncated = aws.Bool(false)
		d.resume = aws.ToString(out.NextKeyMarker)
		return &page, nil
	}
	return out, nil
}

// item is one entry of Ls on its way to fn: a key's entry, or a sub-folder whose check (done
// closed once show and err are set) runs concurrently.
type item struct {
	entry Entry
	done  chan struct{}
	show  bool
	err   error
}

// Ls calls fn with the entries directly under prefix, as `aws s3 ls s3://bucket/prefix` shows
// them: each sub-folder once (Dir), and each key whose entry current at `at` (the zero time: now,
// its latest) is a version, not a delete marker; in key order. A prefix not ending in Delimiter
// matches as in S3: "rep" lists "reports/" and "rep.txt".
//
// It lists with Prefix and Delimiter "/", so a folder costs requests in proportion to its own
// keys' versions and its sub-folders (1,000 entries a page), not to the bucket; memory holds a
// page and one key's history. A sub-folder is shown only if a key under it existed at `at`: at
// now that is one ListObjectVersions request per sub-folder (its first key is almost always
// there), up to DefaultFolderChecks of them at once; at an earlier moment the check reads the
// sub-folder's history key by key until a key qualifies — one request usually, the whole
// sub-folder's history when none does (all its keys deleted by then, or created after).
func Ls(ctx context.Context, client S3, bucket, prefix string, at time.Time, fn func(Entry) error) error {
	return LsAfter(ctx, client, bucket, prefix, "", at, fn)
}

// CheckAfter checks a continuation of a folder's listing that came from outside (a link): after
// must name an entry directly under prefix, as Entry.Key does — a key, or a sub-folder ending in
// Delimiter — of at most MaxKeyBytes bytes of UTF-8. Anything else is a *fault.InvalidInput.
func CheckAfter(prefix, after string) error {
	if after == "" {
		return nil
	}
	name, ok := strings.CutPrefix(after, prefix)
	switch {
	case len(after) > MaxKeyBytes || !utf8.ValidString(after):
		return &fault.InvalidInput{Msg: "the page link is not valid: its starting point is not a file name"}
	case !ok || name == "" || name == Delimiter:
		return &fault.InvalidInput{Msg: "the page link is not valid: its starting point is not in this folder"}
	case strings.Contains(strings.TrimSuffix(name, Delimiter), Delimiter):
		return &fault.InvalidInput{Msg: "the page link is not valid: its starting point is deeper than this folder"}
	}
	return nil
}

// MaxKeyBytes is S3's limit on a key's length.
const MaxKeyBytes = 1024

// LsAfter is Ls from the entry after `after` (an Entry.Key an earlier Ls gave, checked by
// CheckAfter; "" starts at the beginning): the next page of a folder. It lists with after as
// S3's key marker, so a page costs what its own entries cost, not what the entries before it
// do. Entries are picked at `at` each time, so pages of one moment neither drop nor repeat an
// entry: each page starts right after the last entry shown.
func LsAfter(ctx context.Context, client S3, bucket, prefix, after string, at time.Time, fn func(Entry) error) error {
	if err := CheckAfter(prefix, after); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	items := make(chan *item, DefaultFolderChecks)
	g.Go(func() error {
		defer close(items)
		send := func(it *item) error {
			if err := gctx.Err(); err != nil {
				return err // a ready channel must not win over a cancellation
			}
			select {
			case items <- it:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		folder := func(p string) error {
			it := &item{entry: Entry{Key: p, Dir: true}, done: make(chan struct{})}
			g.Go(func() error {
				defer close(it.done)
				it.show, it.err = existed(gctx, client, bucket, p, at)
				return nil // the error reaches Ls through the item, in order
			})
			return send(it)
		}
		d := &delimited{client: client}
		versions := listing.NewVersions(d, bucket, prefix, after)
		for {
			key, history, ok, err := versions.Next(gctx)
			if err != nil {
				return listError(err, bucket, prefix)
			}
			// Sub-folders listed so far that sort before this key come first. Those of the page
			// after a key that spans pages sort after it, so they wait.
			for len(d.prefixes) > 0 && (!ok || d.prefixes[0] < key) {
				p := d.prefixes[0]
				d.prefixes = d.prefixes[1:]
				if p <= after {
					continue // the sub-folder named by after, should a server list it again
				}
				if err := folder(p); err != nil {
					return err
				}
			}
			if !ok {
				if d.resume == "" {
					return nil
				}
				versions, d.resume = listing.NewVersions(d, bucket, prefix, d.resume), ""
				continue
			}
			if key <= after {
				continue
			}
			if v := present(history, at); v != nil {
				if err := send(&item{entry: entry(key, v), show: true}); err != nil {
					return err
				}
			}
		}
	})
	err := func() error {
		for it := range items {
			if it.done != nil {
				<-it.done
			}
			if it.err != nil {
				return it.err
			}
			if it.show {
				if err := fn(it.entry); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	cancel()
	for range items { // let the listing goroutine end
	}
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

// Page returns at most n entries of the folder prefix after `after`, as LsAfter gives them, and
// next: the after of the following page, "" when there is none. It reads one entry past the
// page to know whether there is one, and stops there: a page costs its own entries' requests.
func Page(ctx context.Context, client S3, bucket, prefix, after string, at time.Time, n int) (entries []Entry, next string, err error) {
	if n < 1 {
		return nil, "", &fault.InvalidInput{Msg: fmt.Sprintf("page size %d: want 1 or more", n)}
	}
	errFull := errors.New("page full")
	more := false
	err = LsAfter(ctx, client, bucket, prefix, after, at, func(e Entry) error {
		if len(entries) == n {
			more = true
			return errFull
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return nil, "", err
	}
	if more {
		next = entries[len(entries)-1].Key
	}
	return entries, next, nil
}

// existed reports whether a key under prefix had a version current at t (the zero t: now).
func existed(ctx context.Context, client S3, bucket, prefix string, t time.Time) (bool, error) {
	versions := listing.NewVersions(&firstPageSmall{client: client}, bucket, prefix, "")
	for {
		_, history, ok, err := versions.Next(ctx)
		if err != nil {
			return false, listError(err, bucket, prefix)
		}
		if !ok {
			return false, nil
		}
		if present(history, t) != nil {
			return true, nil
		}
	}
}

// firstPageSmall asks for DefaultCheckPage entries in its first request, and for full pages
// after: a sub-folder's first key usually settles its check, and a check that reads on does so a
// full page at a time.
type firstPageSmall struct {
	client S3
	calls  int
}

func (f *firstPageSmall) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	req := *in
	if f.calls == 0 {
		req.MaxKeys = aws.Int32(DefaultCheckPage)
	}
	f.calls++
	return f.client.ListObjectVersions(ctx, &req, opts...)
}

// Versions returns the history of exactly key (not of keys it is a prefix of), newest first: by
// LastModified, the key's latest entry first among those of the same time, then the listing's
// order. A key the bucket never held has none.
func Versions(ctx context.Context, client S3, bucket, key string) ([]Version, error) {
	versions := listing.NewVersions(client, bucket, key, "")
	// key sorts before every other key it is a prefix of: its history, if any, comes first, and
	// Next stops reading at the first other key.
	got, history, ok, err := versions.Next(ctx)
	if err != nil {
		return nil, listError(err, bucket, key)
	}
	if !ok || got != key {
		return nil, nil
	}
	out := make([]Version, len(history))
	for i := range history {
		out[i] = version(&history[i])
	}
	slices.SortStableFunc(out, func(a, b Version) int {
		if c := b.LastModified.Compare(a.LastModified); c != 0 {
			return c
		}
		switch {
		case a.IsLatest && !b.IsLatest:
			return -1
		case b.IsLatest && !a.IsLatest:
			return 1
		}
		return 0
	})
	return out, nil
}

// Walk calls fn, in key order, with every key under prefix (at any depth) that had a version
// current at `at` (the zero time: now), picked as Ls picks it. It is one listing of the history
// under prefix, a page at a time, without Ls's request per sub-folder: requests grow with the
// versions under prefix, memory holds a page and one key's history.
func Walk(ctx context.Context, client S3, bucket, prefix string, at time.Time, fn func(Entry) error) error {
	versions := listing.NewVersions(client, bucket, prefix, "")
	for {
		key, history, ok, err := versions.Next(ctx)
		if err != nil {
			return listError(err, bucket, prefix)
		}
		if !ok {
			return nil
		}
		if v := present(history, at); v != nil {
			if err := fn(entry(key, v)); err != nil {
				return err
			}
		}
	}
}

// Diff calls fn, in key order, with every key under prefix (at any depth) whose state differs
// between the moments from and to (the zero time: now):
//
//   - added: no version at from (not there yet, or deleted), a version at to;
//   - deleted: a version at from, none at to;
//   - changed: a version at both, of different content — a different version id with a different
//     ETag or size. A version id that differs with the same ETag and size (the same content
//     written again) is not a change. Under SSE-KMS every write has an ETag of its own, so a
//     rewrite of the same content there shows as changed.
//
// A from after to gives the changes backwards. Diff reads the whole history under prefix, a page
// at a time: requests grow with the versions under prefix, memory holds a page and one key's
// history.
func Diff(ctx context.Context, client S3, bucket, prefix string, from, to time.Time, fn func(Change) error) error {
	versions := listing.NewVersions(client, bucket, prefix, "")
	for {
		key, history, ok, err := versions.Next(ctx)
		if err != nil {
			return listError(err, bucket, prefix)
		}
		if !ok {
			return nil
		}
		a, b := present(history, from), present(history, to)
		var c Change
		switch {
		case a == nil && b == nil:
			continue
		case a == nil:
			c = Change{Key: key, Change: Added}
		case b == nil:
			c = Change{Key: key, Change: Deleted}
		case a.VersionID != b.VersionID && (a.ETag != b.ETag || a.Size != b.Size):
			c = Change{Key: key, Change: Changed}
		default:
			continue
		}
		if a != nil {
			v := version(a)
			c.From = &v
		}
		if b != nil {
			v := version(b)
			c.To = &v
		}
		if err := fn(c); err != nil {
			return err
		}
	}
}
