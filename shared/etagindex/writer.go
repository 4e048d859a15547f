package etagindex

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/filter"
)

// Writer writes an execution's carry files: entries in strictly increasing key order, at most
// FileEntries a file, numbered on from the file number the caller keeps in its cursor, so that a
// retried invocation rewrites the same names.
type Writer struct {
	client    Putter
	bucket    string
	execution string
	opts      []func(*s3.Options)
	max       int
	next      int
	buf       bytes.Buffer
	n         int    // entries in buf
	last      string // the last key added
	key       func(execution string, n int) string
}

// NewWriter writes carry files of execution from file number next on, fileEntries entries a file
// at most (DefaultFileEntries when ≤ 0).
func NewWriter(client Putter, bucket, execution string, next, fileEntries int, opts ...func(*s3.Options)) *Writer {
	if fileEntries <= 0 {
		fileEntries = DefaultFileEntries
	}
	return &Writer{client: client, bucket: bucket, execution: execution, opts: opts, max: fileEntries, next: next, key: CarryKey}
}

// InRange makes w write key-space range r's carry files (RangeCarryKey) and returns it.
func (w *Writer) InRange(r int) *Writer {
	w.key = func(execution string, n int) string { return RangeCarryKey(execution, r, n) }
	return w
}

// Add records e; an entry whose ETags are equal is not recorded. A key not after the last one
// added is refused (ErrOutOfOrder). A full file is written at once.
func (w *Writer) Add(ctx context.Context, e Entry) error {
	if err := e.validate(); err != nil {
		return fmt.Errorf("index carry: %w", err)
	}
	if !e.Needed() {
		return nil
	}
	if w.last != "" && strings.Compare(e.Key, w.last) <= 0 {
		return fmt.Errorf("index carry: %w: %q after %q", ErrOutOfOrder, e.Key, w.last)
	}
	if err := encode(&w.buf, e.normalized()); err != nil {
		return err
	}
	w.last = e.Key
	w.n++
	if w.n >= w.max {
		_, err := w.Flush(ctx)
		return err
	}
	return nil
}

// Flush writes the entries not yet written (if any) as the next carry file, and returns the
// number the next file will have: the generation's CarryFiles once the listing is done, and
// what the caller keeps in its cursor for its next invocation.
func (w *Writer) Flush(ctx context.Context) (next int, err error) {
	if w.n == 0 {
		return w.next, nil
	}
	if err := put(ctx, w.client, w.bucket, w.key(w.execution, w.next), "application/x-ndjson", w.buf.Bytes(), w.opts...); err != nil {
		return w.next, err
	}
	w.next++
	w.buf.Reset()
	w.n = 0
	return w.next, nil
}

// Carry is one lister invocation's walk over the index beside its listings: for each listed key
// in order, Lookup finds the key's entry; Keep carries an entry that still holds into the new
// generation; Finish, once the listing is done, carries what lies beyond the last listed key.
// Entries of keys under none of Prefixes (another run's scope, or keys a filter keeps the run
// from listing) are carried as they are; entries of keys under one of them that are no longer
// listed are dropped. Prefixes are the key prefixes the run lists ([]string{""}: the whole
// bucket); with none, nothing is dropped. With a nil Writer (a dry run) nothing is carried.
//
// Dropping an entry only costs a copy (an SSE-KMS object whose index entry is gone is copied
// again), carrying one never hides a change (an entry matches only its exact pair of ETags):
// so when in doubt, carry.
type Carry struct {
	Reader   *Reader
	Writer   *Writer
	Prefixes []string // the key prefixes the run lists (filter.ListPrefixes and the backup's)
}

// owned says whether the entry of key belongs to the run's listing (and is dropped unless kept).
func (c *Carry) owned(key string) bool { return filter.Within(c.Prefixes, key) }

// Lookup returns the entry of key (nil when there is none), consuming every entry up to it. Keys
// must be given in increasing order.
func (c *Carry) Lookup(ctx context.Context, key string) (*Entry, error) {
	for {
		e, err := c.Reader.Peek(ctx)
		if err != nil || e == nil || e.Key > key {
			return nil, err
		}
		got := *e
		c.Reader.Pop()
		if got.Key == key {
			return &got, nil
		}
		if !c.owned(got.Key) {
			if err := c.Keep(ctx, got); err != nil {
				return nil, err
			}
		}
	}
}

// Keep carries e into the new generation: call it for the entry Lookup returned when the entry
// Matches the key's listings.
func (c *Carry) Keep(ctx context.Context, e Entry) error {
	if c.Writer == nil {
		return nil
	}
	return c.Writer.Add(ctx, e)
}

// Finish consumes the rest of the index once the listing is done, carrying the entries outside
// Prefixes. When stop (if not nil) says so before an entry, it returns done false: the caller keeps
// the Reader's Position and Finishes in its next invocation. With a small prefix and a large
// index, this is most of the index.
func (c *Carry) Finish(ctx context.Context, stop func() bool) (done bool, err error) {
	for {
		e, err := c.Reader.Peek(ctx)
		if err != nil || e == nil {
			return err == nil, err
		}
		if stop != nil && stop() {
			return false, nil
		}
		got := *e
		c.Reader.Pop()
		if !c.owned(got.Key) {
			if err := c.Keep(ctx, got); err != nil {
				return false, err
			}
		}
	}
}
