package etagindex

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// StreamPosition is a place in one of a generation's two streams: the file, and how many of its
// entries were consumed.
type StreamPosition struct {
	File int `json:"file"`
	Line int `json:"line"`
}

// Position is where a Reader stands in a generation, small enough for a lister's cursor: the
// zero Position is the beginning.
type Position struct {
	Carry  StreamPosition `json:"carry"`
	Copied StreamPosition `json:"copied"`
}

// Reader streams a generation's entries in key order: its carry files and its copied files,
// merged. Memory holds one file of each stream. A copied file that does not exist holds no
// entries; a carry file that does not exist is an error. Should both streams hold a key, the
// copied entry (the newer) wins.
type Reader struct {
	carry, copied stream
	err           error // a Ref read without Load
	// after and until bound a Reader made Within a key-space range.
	after, until string
	bounded      bool
}

// Within bounds r to the key-space range (after, until] (until "": no end) and returns it: Peek
// consumes the entries up to after unseen (the range before carries them) and ends before the
// first entry beyond until (the range after reads it).
func (r *Reader) Within(after, until string) *Reader {
	r.after, r.until, r.bounded = after, until, true
	return r
}

// NewReader reads generation g from pos (the zero Position: from the beginning).
func NewReader(client Getter, bucket string, g Generation, pos Position, opts ...func(*s3.Options)) *Reader {
	var err error
	if !g.loaded() {
		err = fmt.Errorf("index generation of %q: its per-range counts were not loaded (Load)", g.Execution)
	}
	return &Reader{err: err,
		carry: stream{client: client, bucket: bucket, opts: opts, files: g.carryFiles(), pos: pos.Carry,
			key: g.carryKey, name: "carry"},
		copied: stream{client: client, bucket: bucket, opts: opts, files: g.copiedFiles(), pos: pos.Copied, missingOK: true,
			key: g.copiedKey, name: "copied"},
	}
}

// Peek returns the next entry without consuming it; nil at the end.
func (r *Reader) Peek(ctx context.Context) (*Entry, error) {
	for {
		e, err := r.peek(ctx)
		switch {
		case err != nil || e == nil || !r.bounded:
			return e, err
		case e.Key <= r.after:
			r.Pop()
		case r.until != "" && e.Key > r.until:
			return nil, nil
		default:
			return e, nil
		}
	}
}

func (r *Reader) peek(ctx context.Context) (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	a, err := r.carry.peek(ctx)
	if err != nil {
		return nil, err
	}
	b, err := r.copied.peek(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case a == nil:
		return b, nil
	case b == nil || a.Key < b.Key:
		return a, nil
	default:
		return b, nil
	}
}

// Pop consumes the entry Peek returned (and a carry entry of the same key, which it replaced).
func (r *Reader) Pop() {
	a, b := r.carry.head, r.copied.head
	switch {
	case a != nil && (b == nil || a.Key < b.Key):
		r.carry.pop()
	case b != nil:
		if a != nil && a.Key == b.Key {
			r.carry.pop()
		}
		r.copied.pop()
	}
}

// Position is where the Reader stands: a Reader made from it continues with the entry after the
// last one consumed.
func (r *Reader) Position() Position { return Position{Carry: r.carry.pos, Copied: r.copied.pos} }

// stream reads files 0 … files-1, each sorted, in turn.
type stream struct {
	client    Getter
	bucket    string
	opts      []func(*s3.Options)
	name      string
	key       func(n int) string
	files     int
	missingOK bool

	pos    StreamPosition
	loaded bool     // lines holds file pos.File, from entry pos.Line on
	lines  [][]byte // the entries of the loaded file not yet consumed
	head   *Entry   // the decoded first of lines
	last   string   // the last key decoded, for the order check
}

func (s *stream) peek(ctx context.Context) (*Entry, error) {
	for s.head == nil {
		if !s.loaded {
			if s.pos.File >= s.files {
				return nil, nil
			}
			if err := s.load(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if len(s.lines) == 0 {
			s.next()
			continue
		}
		e, err := s.decode(s.lines[0], s.pos.Line)
		if err != nil {
			return nil, err
		}
		s.head = &e
	}
	return s.head, nil
}

func (s *stream) pop() {
	s.head = nil
	s.lines = s.lines[1:]
	s.pos.Line++
	if len(s.lines) == 0 {
		s.next() // the position then names the next file, which need not be read to resume
	}
}

// next moves to the beginning of the next file.
func (s *stream) next() {
	s.pos = StreamPosition{File: s.pos.File + 1}
	s.loaded, s.lines = false, nil
}

// load reads file pos.File and skips the entries already consumed.
func (s *stream) load(ctx context.Context) error {
	key := s.key(s.pos.File)
	data, found, err := get(ctx, s.client, s.bucket, key, s.opts...)
	if err != nil {
		return err
	}
	if !found && !s.missingOK {
		return fmt.Errorf("index %s file s3://%s/%s is missing (file %d of %d of the generation)", s.name, s.bucket, key, s.pos.File, s.files)
	}
	var lines [][]byte
	for line := range bytes.Lines(data) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			lines = append(lines, line)
		}
	}
	if s.pos.Line > len(lines) {
		return fmt.Errorf("index %s file s3://%s/%s has %d entries; the position says %d were consumed", s.name, s.bucket, key, len(lines), s.pos.Line)
	}
	if s.pos.Line > 0 {
		// Resuming inside the file: the last consumed entry orders the next.
		e, err := s.decode(lines[s.pos.Line-1], s.pos.Line-1)
		if err != nil {
			return err
		}
		s.last = e.Key
	}
	s.lines, s.loaded = slices.Clip(lines[s.pos.Line:]), true
	return nil
}

// decode parses entry n of the loaded file and checks it comes after the previous one.
func (s *stream) decode(line []byte, n int) (Entry, error) {
	var e Entry
	where := fmt.Sprintf("index %s file s3://%s/%s entry %d", s.name, s.bucket, s.key(s.pos.File), n+1)
	if err := strictjson.Unmarshal(line, &e); err != nil {
		return Entry{}, fmt.Errorf("%s: %w", where, err)
	}
	if err := e.validate(); err != nil {
		return Entry{}, fmt.Errorf("%s: %w", where, err)
	}
	if s.last != "" && e.Key <= s.last {
		return Entry{}, fmt.Errorf("%s: %w: %q after %q", where, ErrOutOfOrder, e.Key, s.last)
	}
	s.last = e.Key
	return e, nil
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
}

// firstKeyBytes is how much of a file Seek reads for its first entry (a key is at most 1,024
// bytes; JSON escaping may make it longer, and then the whole file is read).
const firstKeyBytes = 16 << 10

// Seek returns the Position from which a Reader Within (after, …] reads: in each stream, the last
// file whose first entry is at most after (the entries before it hold only keys up to after), found
// by binary search on the files' first entries, one ranged GET a probe. A missing copied file
// holds no entries and is stepped over. Each range of a run listed in key-space ranges seeks once,
// in its first invocation, so that no range lister reads the index from its beginning.
func Seek(ctx context.Context, client Getter, bucket string, g Generation, after string, opts ...func(*s3.Options)) (Position, error) {
	if !g.loaded() {
		return Position{}, fmt.Errorf("index generation of %q: its per-range counts were not loaded (Load)", g.Execution)
	}
	if after == "" {
		return Position{}, nil
	}
	carry, err := seek(ctx, client, bucket, g.carryFiles(), g.carryKey, false, after, opts)
	if err != nil {
		return Position{}, err
	}
	copied, err := seek(ctx, client, bucket, g.copiedFiles(), g.copiedKey, true, after, opts)
	if err != nil {
		return Position{}, err
	}
	return Position{Carry: StreamPosition{File: carry}, Copied: StreamPosition{File: copied}}, nil
}

// seek finds the last file of a stream whose first key is at most after (0 when none).
func seek(ctx context.Context, client Getter, bucket string, files int, key func(int) string, missingOK bool, after string, opts []func(*s3.Options)) (int, error) {
	ans, lo, hi := 0, 0, files
	for lo < hi {
		m := lo + (hi-lo)/2
		// The first file from m on that holds an entry (copied files may be missing).
		e, k, err := -1, "", error(nil)
		for n := m; n < hi; n++ {
			var found bool
			if k, found, err = firstKey(ctx, client, bucket, key(n), opts); err != nil {
				return 0, err
			}
			if found {
				e = n
				break
			}
			if !missingOK {
				return 0, fmt.Errorf("index file s3://%s/%s is missing", bucket, key(n))
			}
		}
		switch {
		case e < 0 || k > after:
			hi = m // nothing from m on starts at or before after
		default:
			ans, lo = e, e+1
		}
	}
	return ans, nil
}

// firstKey returns the key of a file's first entry; found is false when the file does not exist
// or holds none.
func firstKey(ctx context.Context, client Getter, bucket, key string, opts []func(*s3.Options)) (string, bool, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Range: aws.String(fmt.Sprintf("bytes=0-%d", firstKeyBytes-1))}, opts...)
	if err != nil {
		if fault.IsNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("read the first entry of index file s3://%s/%s: %w", bucket, key, err)
	}
	data, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return "", false, fmt.Errorf("read the first entry of index file s3://%s/%s: %w", bucket, key, err)
	}
	line, _, complete := bytes.Cut(data, []byte("\n"))
	if !complete && len(data) >= firstKeyBytes {
		if data, _, err = get(ctx, client, bucket, key, opts...); err != nil {
			return "", false, err
		}
		line, _, _ = bytes.Cut(data, []byte("\n"))
	}
	if line = bytes.TrimSpace(line); len(line) == 0 {
		return "", false, nil
	}
	var e Entry
	if err := strictjson.Unmarshal(line, &e); err != nil {
		return "", false, fmt.Errorf("index file s3://%s/%s entry 1: %w", bucket, key, err)
	}
	return e.Key, true, nil
}
