// Package etagindex remembers which backup version holds which source content when the two
// ETags differ — as they do for every copy into an SSE-KMS bucket, whose ETags are not MD5s — so
// that the lister can tell an unchanged object from a changed one from the two listings alone,
// without a request per object.
//
// The index lives in the run bucket under index/ and is carried from run to run as generations.
// The lister of an execution reads the generation index/current.json names, in key order beside
// its listings, and writes the entries that still hold (and those outside its prefix) as carry
// files; the copier writes one copied file per batch with the entries of what it copied; when the
// listing is done the lister commits the new generation (its carry files and this execution's
// copied files) and points index/current.json at it. Every file is sorted JSON Lines and is read
// one file at a time, so memory never holds the whole index. Only pairs whose ETags differ are
// recorded: a backup without SSE-KMS has an empty index.
//
// A backup listed in key-space ranges reads and writes the index by range: Seek finds where a
// range starts in each stream of files, a Reader Within the range reads only its entries, and each
// range writes its own carry files (Writer.InRange); the generation counts every range's files.
package etagindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// DefaultFileEntries is how many entries a carry file holds at most, unless the Writer is told
// otherwise: about a megabyte for typical keys.
const DefaultFileEntries = 10000

// Prefix is where the index lives in the run bucket. It must not expire as quickly as work/: a
// generation that is gone costs the next run a copy of every SSE-KMS object.
const Prefix = "index/"

// CurrentKey names the pointer to the generation the next lister reads.
const CurrentKey = Prefix + "current.json"

// Entry records that the backup version whose ETag is Backup holds the content of the source
// object whose ETag is Source, both Size bytes, at Key. ETags are stored without quotes.
type Entry struct {
	Key    string `json:"k"`
	Source string `json:"s"`
	Backup string `json:"b"`
	Size   int64  `json:"z"`
}

// Needed reports whether e is worth recording: its ETags differ (equal ETags need no index).
func (e Entry) Needed() bool {
	return change.NormalizeETag(e.Source) != change.NormalizeETag(e.Backup)
}

// Matches reports whether e records exactly this pair: the key, the size, the source's ETag and
// the backup's ETag. A nil entry matches nothing.
func (e *Entry) Matches(src, bak change.Object) bool {
	if e == nil || e.Key != src.Key || e.Key != bak.Key || e.Size != src.Size || e.Size != bak.Size {
		return false
	}
	s, b := change.NormalizeETag(src.ETag), change.NormalizeETag(bak.ETag)
	return s != "" && b != "" && change.NormalizeETag(e.Source) == s && change.NormalizeETag(e.Backup) == b
}

// Holds reports whether the backup object bak holds the content of the source object src, by
// their listings and the index entry e of the key (nil when the index has none): the sizes must
// match, and either the ETags are equal or e records exactly this source ETag → backup ETag.
func Holds(src, bak change.Object, e *Entry) bool {
	if src.Size != bak.Size {
		return false
	}
	s, b := change.NormalizeETag(src.ETag), change.NormalizeETag(bak.ETag)
	if s != "" && s == b {
		return true
	}
	return e.Matches(src, bak)
}

func (e Entry) validate() error {
	switch {
	case e.Key == "":
		return errors.New("entry with an empty key")
	case change.NormalizeETag(e.Source) == "" || change.NormalizeETag(e.Backup) == "":
		return fmt.Errorf("entry %q: empty ETag", e.Key)
	case e.Size < 0:
		return fmt.Errorf("entry %q: negative size", e.Key)
	}
	return nil
}

func (e Entry) normalized() Entry {
	e.Source, e.Backup = change.NormalizeETag(e.Source), change.NormalizeETag(e.Backup)
	return e
}

// Generation names the files of one execution's index: carry files 0 … CarryFiles-1 and the
// copied files of batches 0 … CopyBatches-1 (a missing copied file holds no entries). A backup
// listed in key-space ranges (batch.RangeKey) has per-range counts instead: range r's carry files
// 0 … RangeCarryFiles[r]-1 and copied files of its copy batches 0 … RangeCopyBatches[r]-1, read
// range after range (in key order).
//
// A cursor carries a generation as its Ref, without the per-range counts (up to DefaultMaxRanges
// each, too many for a state's payload): Ranges says how many, and Load reads them back.
type Generation struct {
	Execution        string `json:"execution"`
	CarryFiles       int    `json:"carryFiles"`
	CopyBatches      int    `json:"copyBatches"`
	RangeCarryFiles  []int  `json:"rangeCarryFiles,omitempty"`
	RangeCopyBatches []int  `json:"rangeCopyBatches,omitempty"`
	Ranges           int    `json:"ranges,omitempty"`
	// Order lists the ranges in key order when their numbers are not (a range split while it
	// was listed hands the rest of its keys to ranges numbered after all others); nil: 0, 1, ….
	Order []int `json:"order,omitempty"`
}

// Empty reports whether g has no files to read (no generation, or one without entries).
func (g Generation) Empty() bool { return g.CarryFiles == 0 && g.copiedFiles() == 0 && g.Ranges == 0 }

// Ref returns g without its per-range counts, as a cursor carries it.
func (g Generation) Ref() Generation {
	if g.Ranges == 0 {
		return g
	}
	return Generation{Execution: g.Execution, CarryFiles: g.CarryFiles, CopyBatches: g.CopyBatches, Ranges: g.Ranges}
}

// loaded reports whether g holds its per-range counts (it is not a Ref of a ranged generation).
func (g Generation) loaded() bool {
	return len(g.RangeCarryFiles) == g.Ranges && len(g.RangeCopyBatches) == g.Ranges
}

// copiedFiles is how many copied files g names (some of which may not exist).
func (g Generation) copiedFiles() int { return g.CopyBatches + sum(g.RangeCopyBatches) }

// carryFiles is how many carry files g names.
func (g Generation) carryFiles() int { return g.CarryFiles + sum(g.RangeCarryFiles) }

func sum(ns []int) int {
	n := 0
	for _, c := range ns {
		n += c
	}
	return n
}

// flat names file number n of a stream numbered plain files first (plain(n), n < plainFiles),
// then range after range in key order (ranged(r, seq), seq < perRange[r]).
func (g Generation) flat(n, plainFiles int, perRange []int, plain func(int) string, ranged func(r, seq int) string) string {
	if n < plainFiles {
		return plain(n)
	}
	n -= plainFiles
	for i := range perRange {
		r := i
		if g.Order != nil {
			r = g.Order[i]
		}
		if n < perRange[r] {
			return ranged(r, n)
		}
		n -= perRange[r]
	}
	return plain(plainFiles + sum(perRange)) // beyond the last: never read
}

// copiedKey names g's copied file number n: ranges' files follow the plain batches' files.
func (g Generation) copiedKey(n int) string {
	return g.flat(n, g.CopyBatches, g.RangeCopyBatches,
		func(n int) string { return CopiedKey(g.Execution, n) },
		func(r, seq int) string { return RangeCopiedKey(g.Execution, r, seq) })
}

// carryKey names g's carry file number n: ranges' files follow the plain carry files.
func (g Generation) carryKey(n int) string {
	return g.flat(n, g.CarryFiles, g.RangeCarryFiles,
		func(n int) string { return CarryKey(g.Execution, n) },
		func(r, seq int) string { return RangeCarryKey(g.Execution, r, seq) })
}

// RangeCarryKey names carry file seq of key-space range r of an execution.
func RangeCarryKey(execution string, r, seq int) string {
	return fmt.Sprintf("%scarry/r%06d-%06d.jsonl", ExecutionPrefix(execution), r, seq)
}

// CopiedPrefix is where the copied files of an execution live.
func CopiedPrefix(execution string) string { return ExecutionPrefix(execution) + "copied/" }

// RangeCopiedKey names the copied file of copy batch seq of key-space range r of an execution.
func RangeCopiedKey(execution string, r, seq int) string {
	return fmt.Sprintf("%sr%06d-%06d.jsonl", CopiedPrefix(execution), r, seq)
}

// ExecutionPrefix is where an execution's index files live.
func ExecutionPrefix(execution string) string { return Prefix + execution + "/" }

// CarryKey names carry file n of an execution.
func CarryKey(execution string, n int) string {
	return fmt.Sprintf("%scarry/%06d.jsonl", ExecutionPrefix(execution), n)
}

// CopiedKey names the copied file of batch n of an execution.
func CopiedKey(execution string, n int) string {
	return fmt.Sprintf("%scopied/%06d.jsonl", ExecutionPrefix(execution), n)
}

// GenerationKey names an execution's generation file.
func GenerationKey(execution string) string { return ExecutionPrefix(execution) + "generation.json" }

// CopiedKeyForBatch names the copied file of a batch, from the batch's key
// (batch.Key(execution, n)).
func CopiedKeyForBatch(execution, batchKey string) (string, error) {
	if r, seq, ok := batch.ParseRangeKey(execution, batchKey); ok {
		return RangeCopiedKey(execution, r, seq), nil
	}
	base := strings.TrimSuffix(path.Base(batchKey), ".jsonl")
	n, err := strconv.Atoi(base)
	if err != nil || n < 0 || batch.Key(execution, n) != batchKey {
		return "", fmt.Errorf("batch key %q is not a batch of execution %q", batchKey, execution)
	}
	return CopiedKey(execution, n), nil
}

// InUse reports whether g holds any entry: a carry file, or a copied file (one LIST of its
// execution's copied files). A backup without SSE-KMS names a copied file for every copy batch
// and writes none; read as empty, its generation costs no request per file.
func InUse(ctx context.Context, client s3.ListObjectsV2APIClient, bucket string, g Generation, opts ...func(*s3.Options)) (bool, error) {
	switch {
	case g.CarryFiles > 0 || sum(g.RangeCarryFiles) > 0:
		return true, nil
	case g.copiedFiles() == 0:
		return false, nil
	}
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(CopiedPrefix(g.Execution)), MaxKeys: aws.Int32(1)}, opts...)
	if err != nil {
		return false, fmt.Errorf("look for the ETag index's copied files in s3://%s/%s (the lister needs s3:ListBucket on the run bucket): %w", bucket, CopiedPrefix(g.Execution), err)
	}
	return len(out.Contents) > 0, nil
}

// Getter is what reading the index needs of an S3 client.
type Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Putter is what writing the index needs of an S3 client.
type Putter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var (
	_ Getter = (*s3.Client)(nil)
	_ Putter = (*s3.Client)(nil)
)

// ErrGenerationMissing means index/current.json names a generation whose files are gone (an
// expiry, a manual cleanup). Current returns it with an empty Generation: log it and go on, as
// with no index; it costs one copy of every object whose ETags differ.
var ErrGenerationMissing = errors.New("the index generation named by " + CurrentKey + " is gone")

// ErrOutOfOrder means entries were not given, or not stored, in strictly increasing key order.
var ErrOutOfOrder = errors.New("index entries out of key order")

// pointer is the content of index/current.json.
type pointer struct {
	Execution string `json:"execution"`
}

// Current returns the generation index/current.json names; an empty Generation when there is
// none yet. When the named generation is gone it returns an empty Generation and an error
// wrapping ErrGenerationMissing.
func Current(ctx context.Context, client Getter, bucket string, opts ...func(*s3.Options)) (Generation, error) {
	data, found, err := get(ctx, client, bucket, CurrentKey, opts...)
	if err != nil || !found {
		return Generation{}, err
	}
	var p pointer
	if err := strictjson.Unmarshal(data, &p); err != nil || p.Execution == "" {
		return Generation{}, fmt.Errorf("index pointer s3://%s/%s: %q is not {\"execution\": …}: %v", bucket, CurrentKey, data, err)
	}
	g, err := readGeneration(ctx, client, bucket, p.Execution, opts)
	if err != nil {
		return Generation{}, err
	}
	if g.carryFiles() > 0 {
		// The carry files expire with the generation file; check the first one is still there,
		// so that a generation that is gone is found here and not in the middle of a listing.
		first := g.carryKey(0)
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(first), Range: aws.String("bytes=0-0")}, opts...)
		if err != nil {
			if fault.IsNotFound(err) {
				return Generation{}, fmt.Errorf("%w: its first carry file s3://%s/%s does not exist", ErrGenerationMissing, bucket, first)
			}
			return Generation{}, fmt.Errorf("check index carry file s3://%s/%s: %w", bucket, first, err)
		}
		out.Body.Close()
	}
	return g, nil
}

// check validates a generation file's content: execution's, counts ≥ 0, and Ranges saying how
// many ranges it counts (a file written before Ranges existed has RangeCopyBatches alone).
func (g *Generation) check(execution string) error {
	negative := func(c int) bool { return c < 0 }
	if g.Ranges == 0 {
		g.Ranges = max(len(g.RangeCarryFiles), len(g.RangeCopyBatches))
	}
	if len(g.RangeCarryFiles) == 0 && g.Ranges > 0 {
		g.RangeCarryFiles = make([]int, g.Ranges)
	}
	if g.Execution != execution || g.CarryFiles < 0 || g.CopyBatches < 0 || slices.ContainsFunc(g.RangeCopyBatches, negative) ||
		slices.ContainsFunc(g.RangeCarryFiles, negative) || !g.loaded() {
		return fmt.Errorf("%+v does not describe execution %q's index", *g, execution)
	}
	if g.Order != nil {
		if len(g.Order) != g.Ranges {
			return fmt.Errorf("%+v: an order of %d ranges for %d", *g, len(g.Order), g.Ranges)
		}
		seen := make([]bool, g.Ranges)
		for _, r := range g.Order {
			if r < 0 || r >= g.Ranges || seen[r] {
				return fmt.Errorf("%+v: the order is not of ranges 0 … %d, each once", *g, g.Ranges-1)
			}
			seen[r] = true
		}
	}
	return nil
}

// Load returns the whole generation ref names: ref itself, or, for a ranged generation's Ref,
// the generation file with its per-range counts.
func Load(ctx context.Context, client Getter, bucket string, ref Generation, opts ...func(*s3.Options)) (Generation, error) {
	if ref.Ranges == 0 || ref.loaded() {
		return ref, nil
	}
	g, err := readGeneration(ctx, client, bucket, ref.Execution, opts)
	if err != nil {
		return Generation{}, err
	}
	if g.Ranges != ref.Ranges || g.CarryFiles != ref.CarryFiles || g.CopyBatches != ref.CopyBatches {
		return Generation{}, fmt.Errorf("index generation s3://%s/%s changed since the run began (%+v, the run read %+v)", bucket, GenerationKey(ref.Execution), g, ref)
	}
	return g, nil
}

// readGeneration reads and checks execution's generation file; a missing one is
// ErrGenerationMissing.
func readGeneration(ctx context.Context, client Getter, bucket, execution string, opts []func(*s3.Options)) (Generation, error) {
	key := GenerationKey(execution)
	data, found, err := get(ctx, client, bucket, key, opts...)
	if err != nil {
		return Generation{}, err
	}
	if !found {
		return Generation{}, fmt.Errorf("%w: s3://%s/%s does not exist", ErrGenerationMissing, bucket, key)
	}
	var g Generation
	if err := strictjson.Unmarshal(data, &g); err != nil {
		return Generation{}, fmt.Errorf("index generation s3://%s/%s: %w", bucket, key, err)
	}
	if err := g.check(execution); err != nil {
		return Generation{}, fmt.Errorf("index generation s3://%s/%s: %w", bucket, key, err)
	}
	return g, nil
}

// Commit stores a generation and then points index/current.json at it. The lister calls it once,
// when its listing is done (never in a dry run).
func Commit(ctx context.Context, client Putter, bucket string, g Generation, opts ...func(*s3.Options)) error {
	if g.Execution == "" || g.check(g.Execution) != nil {
		return fmt.Errorf("commit index generation %+v: needs an execution, counts ≥ 0, and as many ranges' carry files as copy batches", g)
	}
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	if err := put(ctx, client, bucket, GenerationKey(g.Execution), "application/json", data, opts...); err != nil {
		return err
	}
	data, err = json.Marshal(pointer{Execution: g.Execution})
	if err != nil {
		return err
	}
	return put(ctx, client, bucket, CurrentKey, "application/json", data, opts...)
}

// WriteCopied stores the entries of one copy batch (the copier's record of what it copied, with
// the backup ETag each copy got) as the batch's copied file, sorted by key. Entries whose ETags
// are equal are left out; with none left nothing is written. A retried batch rewrites the file,
// so the copier records every item whose backup holds the source's content, including those it
// found already there.
func WriteCopied(ctx context.Context, client Putter, bucket, execution, batchKey string, entries []Entry, opts ...func(*s3.Options)) error {
	key, err := CopiedKeyForBatch(execution, batchKey)
	if err != nil {
		return err
	}
	var keep []Entry
	for _, e := range entries {
		if err := e.validate(); err != nil {
			return fmt.Errorf("index copied file %s: %w", key, err)
		}
		if e.Needed() {
			keep = append(keep, e.normalized())
		}
	}
	if len(keep) == 0 {
		return nil
	}
	sortEntries(keep)
	for i := 1; i < len(keep); i++ {
		if keep[i].Key == keep[i-1].Key {
			return fmt.Errorf("index copied file %s: key %q recorded twice", key, keep[i].Key)
		}
	}
	var buf bytes.Buffer
	for _, e := range keep {
		if err := encode(&buf, e); err != nil {
			return err
		}
	}
	return put(ctx, client, bucket, key, "application/x-ndjson", buf.Bytes(), opts...)
}

func encode(buf *bytes.Buffer, e Entry) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("encode index entry %q: %w", e.Key, err)
	}
	return nil
}

func put(ctx context.Context, client Putter, bucket, key, contentType string, body []byte, opts ...func(*s3.Options)) error {
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String(contentType),
	}, opts...); err != nil {
		return fmt.Errorf("write index file s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}

// get reads a whole object; found is false when it does not exist.
func get(ctx context.Context, client Getter, bucket, key string, opts ...func(*s3.Options)) (data []byte, found bool, err error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}, opts...)
	if err != nil {
		if fault.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read index file s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	data, err = io.ReadAll(out.Body)
	if err != nil {
		return nil, false, fmt.Errorf("read index file s3://%s/%s: %w", bucket, key, err)
	}
	return data, true, nil
}
