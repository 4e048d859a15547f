package etagindex

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"

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
}

// NewReader reads generation g from pos (the zero Position: from the beginning).
func NewReader(client Getter, bucket string, g Generation, pos Position, opts ...func(*s3.Options)) *Reader {
	return &Reader{
		carry: stream{client: client, bucket: bucket, opts: opts, files: g.CarryFiles, pos: pos.Carry,
			key: func(n int) string { return CarryKey(g.Execution, n) }, name: "carry"},
		copied: stream{client: client, bucket: bucket, opts: opts, files: g.copiedFiles(), pos: pos.Copied, missingOK: true,
			key: g.copiedKey, name: "copied"},
	}
}

// Peek returns the next entry without consuming it; nil at the end.
func (r *Reader) Peek(ctx context.Context) (*Entry, error) {
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
