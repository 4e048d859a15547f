package etagindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3fake"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

const bucket = "run"

func newFake() *s3fake.S3 {
	f := s3fake.New()
	f.AddBucket(bucket, false)
	return f
}

func entry(key string) Entry {
	return Entry{Key: key, Source: "src-" + key, Backup: "bak-" + key, Size: int64(len(key))}
}

func entries(keys ...string) []Entry {
	var es []Entry
	for _, k := range keys {
		es = append(es, entry(k))
	}
	return es
}

func keysOf(es []Entry) []string {
	var ks []string
	for _, e := range es {
		ks = append(ks, e.Key)
	}
	return ks
}

// writeCarry writes entries as carry files of at most per entries, flushing after each chunk
// of every entries (as one lister invocation per chunk would), and returns the file count.
func writeCarry(t *testing.T, f Putter, execution string, es []Entry, per, every int) int {
	t.Helper()
	ctx := context.Background()
	next := 0
	for start := 0; start < len(es); start += every {
		w := NewWriter(f, bucket, execution, next, per)
		for _, e := range es[start:min(start+every, len(es))] {
			if err := w.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if next, err = w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return next
}

// readAll reads to the end, returning the entries and the Position after each one.
func readAll(t *testing.T, r *Reader) ([]Entry, []Position) {
	t.Helper()
	var got []Entry
	var pos []Position
	for {
		e, err := r.Peek(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			return got, pos
		}
		got = append(got, *e)
		r.Pop()
		pos = append(pos, r.Position())
	}
}

func TestHolds(t *testing.T) {
	obj := func(size int64, etag string) change.Object { return change.Object{Key: "k", Size: size, ETag: etag} }
	rec := &Entry{Key: "k", Source: "s1", Backup: "kms1", Size: 5}
	tests := []struct {
		name     string
		src, bak change.Object
		e        *Entry
		want     bool
	}{
		{"equal etags, no entry", obj(5, `"abc"`), obj(5, `"abc"`), nil, true},
		{"equal etags, quotes differ", obj(5, `abc`), obj(5, `"abc"`), nil, true},
		{"equal etags, sizes differ", obj(5, `"abc"`), obj(6, `"abc"`), nil, false},
		{"differing etags, no entry", obj(5, `"s1"`), obj(5, `"kms1"`), nil, false},
		{"entry records this pair", obj(5, `"s1"`), obj(5, `"kms1"`), rec, true},
		{"entry records this pair, quoted in the entry", obj(5, `s1`), obj(5, `kms1`), &Entry{Key: "k", Source: `"s1"`, Backup: `"kms1"`, Size: 5}, true},
		{"source changed since", obj(5, `"s2"`), obj(5, `"kms1"`), rec, false},
		{"backup rewritten since", obj(5, `"s1"`), obj(5, `"kms2"`), rec, false},
		{"entry the other way round", obj(5, `"kms1"`), obj(5, `"s1"`), rec, false},
		{"entry of another size", obj(6, `"s1"`), obj(6, `"kms1"`), rec, false},
		{"sizes differ, entry matches etags", obj(5, `"s1"`), obj(6, `"kms1"`), rec, false},
		{"entry of another key", obj(5, `"s1"`), obj(5, `"kms1"`), &Entry{Key: "other", Source: "s1", Backup: "kms1", Size: 5}, false},
		{"empty etags prove nothing", obj(5, ``), obj(5, ``), nil, false},
		{"empty etags, entry with empty etags", obj(5, ``), obj(5, ``), &Entry{Key: "k", Size: 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Holds(tt.src, tt.bak, tt.e); got != tt.want {
				t.Errorf("Holds = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	if got, want := CarryKey("ex", 7), "index/ex/carry/000007.jsonl"; got != want {
		t.Errorf("CarryKey = %s, want %s", got, want)
	}
	if got, want := GenerationKey("ex"), "index/ex/generation.json"; got != want {
		t.Errorf("GenerationKey = %s, want %s", got, want)
	}
	tests := []struct {
		execution, batchKey, want string
	}{
		{"ex", batch.Key("ex", 0), "index/ex/copied/000000.jsonl"},
		{"ex", batch.Key("ex", 1234567), "index/ex/copied/1234567.jsonl"},
		{"ex", batch.Key("other", 3), ""},
		{"ex", "work/ex/batches/abc.jsonl", ""},
		{"ex", "work/ex/batches/3.jsonl", ""},
		{"ex", "work/ex/outcomes/000003.jsonl", ""},
	}
	for _, tt := range tests {
		got, err := CopiedKeyForBatch(tt.execution, tt.batchKey)
		if tt.want == "" {
			if err == nil {
				t.Errorf("CopiedKeyForBatch(%q, %q) = %s, want an error", tt.execution, tt.batchKey, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CopiedKeyForBatch(%q, %q) = %s, %v; want %s", tt.execution, tt.batchKey, got, err, tt.want)
		}
		if n := strings.TrimSuffix(strings.TrimPrefix(got, "index/ex/copied/"), ".jsonl"); CopiedKey("ex", atoi(t, n)) != got {
			t.Errorf("CopiedKey and CopiedKeyForBatch disagree on %s", got)
		}
	}
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A generation built as an execution builds it — carry files from several lister invocations,
// copied files from batches that finish out of order, some batches without copies — reads back
// as one stream in key order, across every file boundary.
func TestGenerationReadsInKeyOrder(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	carry := entries("a", "b", "c", "e", "g", "h", "i", "k", "m")
	files := writeCarry(t, f, "ex1", carry, 2, 4)
	if files != 5 { // invocations of 4, 4 and 1 entries, files of at most 2: 2+2+1 files
		t.Fatalf("%d carry files, want 5", files)
	}
	copied := map[int][]Entry{
		0: {entry("d"), entry("a0")}, // unsorted: the copier sorts
		2: {entry("f"), {Key: "f2", Source: "same", Backup: `"same"`, Size: 1}},
		3: entries("j", "l", "n", "o"),
	}
	for _, n := range []int{3, 0, 2} {
		if err := WriteCopied(ctx, f, bucket, "ex1", batch.Key("ex1", n), copied[n]); err != nil {
			t.Fatal(err)
		}
	}
	g := Generation{Execution: "ex1", CarryFiles: files, CopyBatches: 5} // batches 1 and 4 copied nothing
	if err := Commit(ctx, f, bucket, g); err != nil {
		t.Fatal(err)
	}
	cur, err := Current(ctx, f, bucket)
	if err != nil || !reflect.DeepEqual(cur, g) {
		t.Fatalf("Current = %+v, %v; want %+v", cur, err, g)
	}
	got, _ := readAll(t, NewReader(f, bucket, cur, Position{}))
	want := []string{"a", "a0", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o"}
	if !reflect.DeepEqual(keysOf(got), want) {
		t.Fatalf("read %v, want %v", keysOf(got), want)
	}
	if got[0] != entry("a") || got[1] != entry("a0") {
		t.Errorf("entries changed on the way: %+v", got[:2])
	}
}

// A Reader made from the Position after any entry continues with exactly the entries after it;
// the Position survives a JSON round trip (the lister's cursor).
func TestResumeFromEveryPosition(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	files := writeCarry(t, f, "ex1", entries("b", "c", "d", "h", "i", "j", "q"), 3, 100)
	if err := WriteCopied(ctx, f, bucket, "ex1", batch.Key("ex1", 0), entries("a", "e")); err != nil {
		t.Fatal(err)
	}
	if err := WriteCopied(ctx, f, bucket, "ex1", batch.Key("ex1", 2), entries("f", "g", "k", "z")); err != nil {
		t.Fatal(err)
	}
	g := Generation{Execution: "ex1", CarryFiles: files, CopyBatches: 3}
	all, positions := readAll(t, NewReader(f, bucket, g, Position{}))
	if len(all) != 13 {
		t.Fatalf("read %d entries, want 13: %v", len(all), keysOf(all))
	}
	for i, pos := range append([]Position{{}}, positions...) {
		data, err := json.Marshal(pos)
		if err != nil {
			t.Fatal(err)
		}
		var back Position
		if err := strictjson.Unmarshal(data, &back); err != nil || back != pos {
			t.Fatalf("position %s does not round-trip: %+v, %v", data, back, err)
		}
		rest, _ := readAll(t, NewReader(f, bucket, g, back))
		if !reflect.DeepEqual(keysOf(rest), keysOf(all[i:])) {
			t.Errorf("from position %s (after %d entries): read %v, want %v", data, i, keysOf(rest), keysOf(all[i:]))
		}
	}
	// The last position needs no read at all.
	before := len(f.Calls())
	if e, err := NewReader(f, bucket, g, positions[len(positions)-1]).Peek(ctx); e != nil || err != nil {
		t.Fatalf("at the end: %v, %v", e, err)
	}
	if n := len(f.Calls()) - before; n != 0 {
		t.Errorf("reading at the end made %d requests", n)
	}
}

// No index yet, or a generation without files, reads as empty without a request per file; a
// generation that is gone is reported as such and reads as empty.
func TestEmptyAndMissingGenerations(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	g, err := Current(ctx, f, bucket)
	if err != nil || !reflect.DeepEqual(g, Generation{}) || !g.Empty() {
		t.Fatalf("no index: Current = %+v, %v; want an empty generation", g, err)
	}
	before := len(f.Calls())
	if e, err := NewReader(f, bucket, g, Position{}).Peek(ctx); e != nil || err != nil {
		t.Fatalf("empty generation: %v, %v", e, err)
	}
	if n := len(f.Calls()) - before; n != 0 {
		t.Errorf("reading an empty generation made %d requests", n)
	}

	// The lister of an execution that had nothing to record commits a generation without files.
	if err := Commit(ctx, f, bucket, Generation{Execution: "ex0"}); err != nil {
		t.Fatal(err)
	}
	if g, err := Current(ctx, f, bucket); err != nil || !reflect.DeepEqual(g, Generation{Execution: "ex0"}) || !g.Empty() {
		t.Fatalf("generation without files: %+v, %v", g, err)
	}

	// current.json names a generation file that is gone.
	f.Put(bucket, CurrentKey, []byte(`{"execution":"gone"}`))
	if g, err := Current(ctx, f, bucket); !errors.Is(err, ErrGenerationMissing) || !reflect.DeepEqual(g, Generation{}) {
		t.Errorf("generation file gone: %+v, %v; want an empty generation and ErrGenerationMissing", g, err)
	}
	// The generation file is there, its carry files are gone.
	f.Put(bucket, GenerationKey("gone"), []byte(`{"execution":"gone","carryFiles":2,"copyBatches":1}`))
	if g, err := Current(ctx, f, bucket); !errors.Is(err, ErrGenerationMissing) || !reflect.DeepEqual(g, Generation{}) {
		t.Errorf("carry files gone: %+v, %v; want an empty generation and ErrGenerationMissing", g, err)
	}
	// Malformed pointers and generations are errors, not an empty index.
	for name, files := range map[string]map[string]string{
		"pointer not json":         {CurrentKey: `nope`},
		"pointer without name":     {CurrentKey: `{}`},
		"pointer unknown field":    {CurrentKey: `{"execution":"x","more":1}`},
		"generation of another":    {CurrentKey: `{"execution":"x"}`, GenerationKey("x"): `{"execution":"y"}`},
		"generation unknown field": {CurrentKey: `{"execution":"x"}`, GenerationKey("x"): `{"execution":"x","carry":1}`},
		"generation negative":      {CurrentKey: `{"execution":"x"}`, GenerationKey("x"): `{"execution":"x","copyBatches":-1}`},
	} {
		f := newFake()
		for k, v := range files {
			f.Put(bucket, k, []byte(v))
		}
		if g, err := Current(ctx, f, bucket); err == nil || errors.Is(err, ErrGenerationMissing) {
			t.Errorf("%s: Current = %+v, %v; want an error", name, g, err)
		}
	}
}

// Copied files that do not exist hold no entries; a carry file that does not exist, or an S3
// error, is an error naming the file.
func TestMissingFiles(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	g := Generation{Execution: "ex1", CopyBatches: 4}
	if err := WriteCopied(ctx, f, bucket, "ex1", batch.Key("ex1", 2), entries("x")); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, NewReader(f, bucket, g, Position{}))
	if !reflect.DeepEqual(keysOf(got), []string{"x"}) {
		t.Errorf("copied files 0, 1 and 3 missing: read %v, want [x]", keysOf(got))
	}

	files := writeCarry(t, f, "ex1", entries("a", "b", "c"), 1, 10)
	g.CarryFiles = files + 1 // one more than was written
	_, err := readUntilError(NewReader(f, bucket, g, Position{}))
	if err == nil || !strings.Contains(err.Error(), CarryKey("ex1", files)) {
		t.Errorf("missing carry file: %v, want an error naming %s", err, CarryKey("ex1", files))
	}

	boom := errors.New("connection reset")
	f.Fail = func(op, _, key string) error {
		if op == "GetObject" && key == CopiedKey("ex1", 2) {
			return boom
		}
		return nil
	}
	_, err = readUntilError(NewReader(f, bucket, Generation{Execution: "ex1", CopyBatches: 4}, Position{}))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), CopiedKey("ex1", 2)) {
		t.Errorf("failing read: %v, want the cause wrapped with the file's name", err)
	}
}

func readUntilError(r *Reader) ([]Entry, error) {
	var got []Entry
	for {
		e, err := r.Peek(context.Background())
		if err != nil || e == nil {
			return got, err
		}
		got = append(got, *e)
		r.Pop()
	}
}

// The Writer refuses keys out of order, leaves out entries whose ETags are equal, and numbers its
// files on from where it was told.
func TestWriter(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	w := NewWriter(f, bucket, "ex1", 5, 2)
	for _, e := range []Entry{entry("b"), {Key: "c", Source: `"e1"`, Backup: "e1", Size: 3}} {
		if err := w.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"b", "a"} {
		if err := w.Add(ctx, entry(k)); !errors.Is(err, ErrOutOfOrder) {
			t.Errorf("Add(%q) after b: %v, want ErrOutOfOrder", k, err)
		}
	}
	for _, bad := range []Entry{{Source: "a", Backup: "b"}, {Key: "x", Source: "a"}, {Key: "x", Source: "a", Backup: "b", Size: -1}} {
		if err := w.Add(ctx, bad); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
	if n := f.Count("PutObject"); n != 0 {
		t.Fatalf("%d files written before a file was full", n)
	}
	if err := w.Add(ctx, entry("d")); err != nil { // the second entry recorded: file 5 is full
		t.Fatal(err)
	}
	if err := w.Add(ctx, entry("e")); err != nil {
		t.Fatal(err)
	}
	next, err := w.Flush(ctx)
	if err != nil || next != 7 {
		t.Fatalf("Flush = %d, %v; want 7", next, err)
	}
	if next, err := w.Flush(ctx); err != nil || next != 7 || f.Count("PutObject") != 2 {
		t.Fatalf("second Flush = %d, %v after %d writes; want 7 and no write", next, err, f.Count("PutObject"))
	}
	got, _ := readAll(t, NewReader(f, bucket, Generation{Execution: "ex1", CarryFiles: 7}, Position{Carry: StreamPosition{File: 5}}))
	if !reflect.DeepEqual(got, entries("b", "d", "e")) {
		t.Errorf("read back %+v", got)
	}
	if body := string(f.Versions(bucket, CarryKey("ex1", 5))[0].Body); body != `{"k":"b","s":"src-b","b":"bak-b","z":1}`+"\n"+`{"k":"d","s":"src-d","b":"bak-d","z":1}`+"\n" {
		t.Errorf("carry file 5 holds %q", body)
	}

	// A failed write is returned and kept for the next Flush.
	f2 := newFake()
	f2.Fail = func(string, string, string) error { return errors.New("throttled") }
	w = NewWriter(f2, bucket, "ex1", 0, 0)
	if err := w.Add(ctx, entry("a")); err != nil {
		t.Fatal(err)
	}
	if next, err := w.Flush(ctx); err == nil || next != 0 || !strings.Contains(err.Error(), CarryKey("ex1", 0)) {
		t.Fatalf("failing Flush = %d, %v", next, err)
	}
	f2.Fail = nil
	if next, err := w.Flush(ctx); err != nil || next != 1 {
		t.Fatalf("Flush after the failure = %d, %v", next, err)
	}
}

// Files whose keys are not in strictly increasing order, within a file or across two, are refused.
func TestReaderRefusesUnsortedFiles(t *testing.T) {
	line := func(k string) string { return fmt.Sprintf(`{"k":%q,"s":"s","b":"b","z":1}`+"\n", k) }
	tests := []struct {
		name  string
		files []string
	}{
		{"within a file", []string{line("b") + line("a")}},
		{"a key twice", []string{line("a") + line("a")}},
		{"across files", []string{line("a") + line("c"), line("b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			for i, body := range tt.files {
				f.Put(bucket, CarryKey("ex1", i), []byte(body))
			}
			_, err := readUntilError(NewReader(f, bucket, Generation{Execution: "ex1", CarryFiles: len(tt.files)}, Position{}))
			if !errors.Is(err, ErrOutOfOrder) {
				t.Errorf("read: %v, want ErrOutOfOrder", err)
			}
		})
	}
	// Resuming inside a file, the last consumed entry still orders the next.
	f := newFake()
	f.Put(bucket, CarryKey("ex1", 0), []byte(line("b")+line("a")))
	if _, err := readUntilError(NewReader(f, bucket, Generation{Execution: "ex1", CarryFiles: 1}, Position{Carry: StreamPosition{Line: 1}})); !errors.Is(err, ErrOutOfOrder) {
		t.Errorf("resumed read: %v, want ErrOutOfOrder", err)
	}
	f = newFake()
	f.Put(bucket, CarryKey("ex1", 0), []byte(line("a")+`{"k":"b","s":"s","b":"b","z":1,"extra":true}`+"\n"))
	if _, err := readUntilError(NewReader(f, bucket, Generation{Execution: "ex1", CarryFiles: 1}, Position{})); err == nil || !strings.Contains(err.Error(), "entry 2") {
		t.Errorf("unknown field: %v, want an error naming entry 2", err)
	}
	if _, err := readUntilError(NewReader(f, bucket, Generation{Execution: "ex1", CarryFiles: 1}, Position{Carry: StreamPosition{Line: 5}})); err == nil {
		t.Error("a position past the end of its file was accepted")
	}
}

func TestWriteCopied(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	bk := batch.Key("ex1", 3)
	if err := WriteCopied(ctx, f, bucket, "ex1", bk, []Entry{{Key: "a", Source: "x", Backup: `"x"`, Size: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteCopied(ctx, f, bucket, "ex1", bk, nil); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("PutObject"); n != 0 {
		t.Errorf("%d writes for a batch without entries to record", n)
	}
	if err := WriteCopied(ctx, f, bucket, "ex1", bk, entries("b", "a", "b")); err == nil {
		t.Error("a key recorded twice was accepted")
	}
	if err := WriteCopied(ctx, f, bucket, "ex1", "work/ex1/batches/x.jsonl", entries("a")); err == nil {
		t.Error("a foreign batch key was accepted")
	}
	if err := WriteCopied(ctx, f, bucket, "ex1", bk, []Entry{{Key: "a", Source: "x", Size: 1}}); err == nil {
		t.Error("an entry without a backup ETag was accepted")
	}
	if err := WriteCopied(ctx, f, bucket, "ex1", bk, []Entry{entry("c"), {Key: "a", Source: `"s"`, Backup: `"b"`, Size: 2}}); err != nil {
		t.Fatal(err)
	}
	if body := string(f.Versions(bucket, CopiedKey("ex1", 3))[0].Body); body != `{"k":"a","s":"s","b":"b","z":2}`+"\n"+`{"k":"c","s":"src-c","b":"bak-c","z":1}`+"\n" {
		t.Errorf("copied file holds %q", body)
	}
}

// A key in both streams (which a lister never produces) reads once, as the copied entry.
func TestCopiedEntryWins(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	old := Entry{Key: "b", Source: "s0", Backup: "b0", Size: 1}
	files := writeCarry(t, f, "ex1", []Entry{entry("a"), old, entry("c")}, 10, 10)
	if err := WriteCopied(ctx, f, bucket, "ex1", batch.Key("ex1", 0), entries("b")); err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, NewReader(f, bucket, Generation{Execution: "ex1", CarryFiles: files, CopyBatches: 1}, Position{}))
	if !reflect.DeepEqual(got, entries("a", "b", "c")) {
		t.Errorf("read %+v, want a, the copied b, c", got)
	}
}

// The lister's walk: entries outside the listed prefixes are carried, inside them only those
// Kept; the new generation reads back as exactly that, also when the walk spans invocations.
// A filter lists several prefixes (filter.ListPrefixes): the index entries of the keys between
// and around them (which it excludes) are carried, never dropped.
func TestCarry(t *testing.T) {
	ctx := context.Background()
	index := entries("a/1", "p/1", "p/2", "p/3", "p/5", "q/1", "z/1")
	listed := []string{"p/1", "p/2", "p/4", "p/5"} // p/3 is gone from both buckets
	holds := map[string]bool{"p/1": true, "p/5": true}
	cases := []struct {
		name     string
		prefixes []string
		want     []string
	}{
		{"one prefix", []string{"p/"}, []string{"a/1", "p/1", "p/5", "q/1", "z/1"}},
		{"several prefixes", []string{"p/", "q/"}, []string{"a/1", "p/1", "p/5", "z/1"}}, // q/ was listed and held nothing
		{"a prefix around a listed one", []string{"a/", "p/2", "p/5"}, []string{"p/1", "p/3", "p/5", "q/1", "z/1"}},
		{"the whole bucket", []string{""}, []string{"p/1", "p/5"}},
		{"no prefixes: nothing dropped but what is looked up", nil, []string{"a/1", "p/1", "p/3", "p/5", "q/1", "z/1"}},
	}
	for _, tc := range cases {
		for _, perInvocation := range []int{1, 2, 100} {
			t.Run(fmt.Sprint(tc.name, ", ", perInvocation, " keys an invocation"), func(t *testing.T) {
				testCarryWalk(t, ctx, index, listed, holds, tc.prefixes, tc.want, perInvocation)
			})
		}
	}
	testCarryDryRun(t, ctx, index)
}

// testCarryWalk walks index beside listed, Keeping the entries of holds, perInvocation keys an
// invocation, and checks the new generation holds exactly want.
func testCarryWalk(t *testing.T, ctx context.Context, index []Entry, listed []string, holds map[string]bool, prefixes, want []string, perInvocation int) {
	f := newFake()
	files := writeCarry(t, f, "ex1", index, 2, 100)
	prev := Generation{Execution: "ex1", CarryFiles: files}
	var pos Position
	next := 0
	i := 0
	done := false
	for invocations := 0; !done; invocations++ {
		if invocations > 20 {
			t.Fatal("the walk does not end")
		}
		c := &Carry{Reader: NewReader(f, bucket, prev, pos), Writer: NewWriter(f, bucket, "ex2", next, 2), Prefixes: prefixes}
		for n := 0; n < perInvocation && i < len(listed); n, i = n+1, i+1 {
			e, err := c.Lookup(ctx, listed[i])
			if err != nil {
				t.Fatal(err)
			}
			if holds[listed[i]] {
				if e == nil || e.Key != listed[i] {
					t.Fatalf("Lookup(%s) = %+v", listed[i], e)
				}
				if err := c.Keep(ctx, *e); err != nil {
					t.Fatal(err)
				}
			}
		}
		if i == len(listed) {
			budget := perInvocation
			var err error
			done, err = c.Finish(ctx, func() bool { budget--; return budget < 0 })
			if err != nil {
				t.Fatal(err)
			}
		}
		pos = c.Reader.Position()
		var err error
		if next, err = c.Writer.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := readAll(t, NewReader(f, bucket, Generation{Execution: "ex2", CarryFiles: next}, Position{}))
	if !reflect.DeepEqual(keysOf(got), want) {
		t.Errorf("new generation %v, want %v", keysOf(got), want)
	}
}

// A dry run reads the index and writes nothing.
func testCarryDryRun(t *testing.T, ctx context.Context, index []Entry) {
	f := newFake()
	files := writeCarry(t, f, "ex1", index, 10, 100)
	c := &Carry{Reader: NewReader(f, bucket, Generation{Execution: "ex1", CarryFiles: files}, Position{}), Prefixes: []string{"p/"}}
	writes := f.Count("PutObject")
	e, err := c.Lookup(ctx, "p/2")
	if err != nil || e == nil || *e != entry("p/2") {
		t.Fatalf("Lookup(p/2) = %+v, %v", e, err)
	}
	if err := c.Keep(ctx, *e); err != nil {
		t.Fatal(err)
	}
	if done, err := c.Finish(ctx, nil); !done || err != nil {
		t.Fatalf("Finish = %v, %v", done, err)
	}
	if n := f.Count("PutObject") - writes; n != 0 {
		t.Errorf("a walk without a Writer wrote %d files", n)
	}
	var absent *Entry
	if absent, err = (&Carry{Reader: NewReader(f, bucket, Generation{}, Position{})}).Lookup(ctx, "p/1"); absent != nil || err != nil {
		t.Errorf("Lookup in an empty index = %+v, %v", absent, err)
	}
}

// Commit writes the generation before the pointer, so a reader never follows a pointer to a
// generation that is not there yet; a failed write is returned with its cause.
func TestCommit(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	g := Generation{Execution: "ex9", CarryFiles: 0, CopyBatches: 3}
	if err := Commit(ctx, f, bucket, g); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if want := []string{"PutObject run/" + GenerationKey("ex9"), "PutObject run/" + CurrentKey}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %v, want %v", calls, want)
	}
	if err := Commit(ctx, f, bucket, Generation{}); err == nil {
		t.Error("a generation without an execution was committed")
	}
	f.Fail = func(op, _, key string) error {
		if key == CurrentKey {
			return s3fake.APIError("SlowDown")
		}
		return nil
	}
	err := Commit(ctx, f, bucket, Generation{Execution: "ex10"})
	if !fault.IsCode(err, "SlowDown") || !strings.Contains(err.Error(), CurrentKey) {
		t.Errorf("failing commit: %v", err)
	}
	f.Fail = nil
	if g2, err := Current(ctx, f, bucket); err != nil || !reflect.DeepEqual(g2, g) {
		t.Errorf("after the failed commit, Current = %+v, %v; want the previous %+v", g2, err, g)
	}
}

// A generation written by a run listed in key-space ranges: each range's carry files
// (Writer.InRange) and copied files, in key order range after range. Current reads it whole, a
// cursor carries its Ref, which a Reader refuses until Load reads the counts back; a generation
// file from before carry files were ranged (rangeCopyBatches alone) still reads.
func TestRangeGeneration(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	// Range 0: keys up to "f"; range 1: up to "p"; range 2: the rest.
	carry := [][]Entry{entries("a", "c", "d"), nil, entries("q", "r", "s", "t")}
	copied := map[[2]int][]Entry{
		{0, 0}: entries("b"),
		{0, 2}: entries("e", "f"),
		{2, 1}: entries("u", "v"),
	}
	g := Generation{Execution: "ex1", RangeCopyBatches: []int{3, 0, 2}, RangeCarryFiles: make([]int, 3)}
	for r, es := range carry {
		g.RangeCarryFiles[r] = writeRangeCarry(t, f, "ex1", r, es, 2)
	}
	for rs, es := range copied {
		if err := WriteCopied(ctx, f, bucket, "ex1", batch.RangeKey("ex1", rs[0], rs[1]), es); err != nil {
			t.Fatal(err)
		}
	}
	if g.Empty() {
		t.Fatal("a generation with range files is not empty")
	}
	if err := Commit(ctx, f, bucket, g); err != nil {
		t.Fatal(err)
	}
	g.Ranges = 3
	cur, err := Current(ctx, f, bucket)
	if err != nil || !reflect.DeepEqual(cur, g) {
		t.Fatalf("Current = %+v, %v; want %+v", cur, err, g)
	}
	all := []string{"a", "b", "c", "d", "e", "f", "q", "r", "s", "t", "u", "v"}
	got, _ := readAll(t, NewReader(f, bucket, cur, Position{}))
	if !reflect.DeepEqual(keysOf(got), all) {
		t.Fatalf("read %v, want %v", keysOf(got), all)
	}
	ref := cur.Ref()
	if data, _ := json.Marshal(ref); len(data) > 80 || ref.Empty() {
		t.Fatalf("ref %s: too big for a cursor, or empty", data)
	}
	if _, err := NewReader(f, bucket, ref, Position{}).Peek(ctx); err == nil {
		t.Fatal("a Reader read a Ref's files without its per-range counts")
	}
	if full, err := Load(ctx, f, bucket, ref); err != nil || !reflect.DeepEqual(full, g) {
		t.Fatalf("Load = %+v, %v; want %+v", full, err, g)
	}
	if k, err := CopiedKeyForBatch("ex1", batch.RangeKey("ex1", 2, 1)); err != nil || k != RangeCopiedKey("ex1", 2, 1) {
		t.Errorf("CopiedKeyForBatch of a range batch = %q, %v", k, err)
	}

	// A generation file written before ranges had carry files.
	f.Put(bucket, GenerationKey("old"), []byte(`{"execution":"old","carryFiles":0,"copyBatches":0,"rangeCopyBatches":[3,0,2]}`))
	f.Put(bucket, CurrentKey, []byte(`{"execution":"old"}`))
	if err := WriteCopied(ctx, f, bucket, "old", batch.RangeKey("old", 2, 1), entries("x")); err != nil {
		t.Fatal(err)
	}
	old, err := Current(ctx, f, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readAll(t, NewReader(f, bucket, old, Position{})); !reflect.DeepEqual(keysOf(got), []string{"x"}) {
		t.Fatalf("the old generation read %v", keysOf(got))
	}
}

// A Reader Within (after, until], from Seek(after), reads exactly the entries in that range: for
// every pair of bounds at, between, before and after the keys, over plain and ranged generations
// whose files are small, with copied files missing (batches that copied nothing).
func TestSeekWithin(t *testing.T) {
	ctx := context.Background()
	keys := []string{"b", "d", "f", "h", "j", "l", "n", "p", "r", "t"}
	bounds := []string{"", "a", "b", "c", "d", "g", "h", "m", "r", "s", "t", "z"}
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, f *s3fake.S3) Generation
	}{
		{name: "plain", write: func(t *testing.T, f *s3fake.S3) Generation {
			// Carry files of 2 entries; copied files of batches 0, 2, 3 (1 and 4 missing).
			carryFiles := writeCarry(t, f, "ex", entries("b", "f", "h", "n", "t"), 2, 100)
			for n, es := range map[int][]Entry{0: entries("d"), 2: entries("j", "l"), 3: entries("p", "r")} {
				if err := WriteCopied(ctx, f, bucket, "ex", batch.Key("ex", n), es); err != nil {
					t.Fatal(err)
				}
			}
			return Generation{Execution: "ex", CarryFiles: carryFiles, CopyBatches: 5}
		}},
		{name: "ranged", write: func(t *testing.T, f *s3fake.S3) Generation { return writeRanged(t, f, nil) }},
		// Range 0 holds the first keys, range 2 the middle ones and range 1 the last, as when
		// a range split while it was listed.
		{name: "ranged out of order", write: func(t *testing.T, f *s3fake.S3) Generation { return writeRanged(t, f, []int{0, 2, 1}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			g := tc.write(t, f)
			if got, _ := readAll(t, NewReader(f, bucket, g, Position{})); !reflect.DeepEqual(keysOf(got), keys) {
				t.Fatalf("the generation reads %v, want %v", keysOf(got), keys)
			}
			for _, after := range bounds {
				pos, err := Seek(ctx, f, bucket, g, after)
				if err != nil {
					t.Fatal(err)
				}
				for _, until := range bounds {
					if until != "" && until <= after {
						continue
					}
					var want []string
					for _, k := range keys {
						if k > after && (until == "" || k <= until) {
							want = append(want, k)
						}
					}
					got, _ := readAll(t, NewReader(f, bucket, g, pos).Within(after, until))
					if !reflect.DeepEqual(keysOf(got), want) {
						t.Fatalf("(%q, %q] from %+v read %v, want %v", after, until, pos, keysOf(got), want)
					}
				}
				if after >= "m" && (pos.Carry.File == 0 || pos.Copied.File == 0) {
					t.Fatalf("seek to %q read from %+v: it skips no file", after, pos)
				}
				// Seek skips only files that hold nothing after its key.
				skipped, _ := readAll(t, NewReader(f, bucket, g, Position{}))
				if n := len(keysOf(skipped)); n > 0 && after != "" {
					rest, _ := readAll(t, NewReader(f, bucket, g, pos))
					for _, e := range skipped[:len(skipped)-len(rest)] {
						if e.Key > after {
							t.Fatalf("seek to %q (%+v) skipped %q", after, pos, e.Key)
						}
					}
				}
			}
		})
	}
}

// writeRanged writes a generation of three ranges: keys up to "g" (3 carried, 2 copy batches),
// up to "o" (1 carried; copied files of batches 0 and 2 of 3, batch 1 copied nothing) and
// the rest (3 carried, 1 copy batch that copied nothing). order numbers them in key order (nil:
// 0, 1, 2).
func writeRanged(t *testing.T, f *s3fake.S3, order []int) Generation {
	t.Helper()
	ctx := context.Background()
	num := func(i int) int {
		if order == nil {
			return i
		}
		return order[i]
	}
	g := Generation{Execution: "ex", RangeCarryFiles: make([]int, 3), RangeCopyBatches: make([]int, 3), Ranges: 3, Order: order}
	for i, es := range [][]Entry{entries("b", "d", "f"), entries("n"), entries("p", "r", "t")} {
		r := num(i)
		g.RangeCarryFiles[r] = writeRangeCarry(t, f, "ex", r, es, 1)
		g.RangeCopyBatches[r] = []int{2, 3, 1}[i]
	}
	for rs, es := range map[[2]int][]Entry{{1, 0}: entries("h"), {1, 2}: entries("j", "l")} {
		if err := WriteCopied(ctx, f, bucket, "ex", batch.RangeKey("ex", num(rs[0]), rs[1]), es); err != nil {
			t.Fatal(err)
		}
	}
	if err := Commit(ctx, f, bucket, g); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(ctx, f, bucket, g.Ref()); err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, g)
	}
	return g
}

// writeRangeCarry writes es as range r's carry files of execution, per entries a file, and
// returns how many it wrote.
func writeRangeCarry(t *testing.T, f Putter, execution string, r int, es []Entry, per int) int {
	t.Helper()
	ctx := context.Background()
	w := NewWriter(f, bucket, execution, 0, per).InRange(r)
	for _, e := range es {
		if err := w.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	n, err := w.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
