// Package batch defines the work batches the lister writes to the run bucket and the copier
// reads: a JSON Lines file whose first line is a Header and every further line one Item, and the
// key layout of the run bucket: short-lived work files under work/<execution>/ (batches,
// outcomes, thaw lists) and the lasting records under runs/<execution>/ (report, history), so
// that a lifecycle rule can expire the one after days and keep the other for a year.
package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the batch format version written in every header.
const Version = 1

// Defaults of the batch-size settings (BATCH_SIZE, BATCH_BYTES) that the lister and the planner
// share, and their bounds.
const (
	DefaultSize  = 1000     // items per batch file
	MaxSize      = 100000   // items per batch file, at most
	DefaultBytes = 16 << 30 // bytes to copy per batch file
	MaxBytes     = 1 << 50  // bytes per batch file, at most
)

// Op is what the copier does with an item.
type Op string

// The operations.
const (
	OpCopy   Op = "copy"   // copy the source object into the destination
	OpDelete Op = "delete" // put a delete marker on the destination key (a backup's deletion, an exact restore's removal)
	OpKeep   Op = "keep"   // leave the destination alone and report why (restore with overwrite false)
)

// Header names the buckets a batch works between. DestinationName names a backup's further
// destination (package destination) the batch writes, SourceName the further destination a
// restore reads; both are empty for the backup bucket.
type Header struct {
	Version         int    `json:"version"`
	Source          string `json:"source"`
	Destination     string `json:"destination"`
	DestinationName string `json:"destinationName,omitempty"`
	SourceName      string `json:"sourceName,omitempty"`
}

// ChangeExcluded is the Change of a backup's deletion item whose key the source still has: a
// filter excludes it and deleteExcluded marks it deleted (so the copier does not skip it as
// reappeared in the source; it removes the backup's current object only while it is the one
// listed).
const ChangeExcluded = "excluded"

// Item is one object to copy or mark deleted. ETag, Size and LastModified describe the source
// object as listed (copy) or the destination's current version (delete). VersionID names the
// source version to copy (restore); DestKey, when set, is the destination key (restore under a
// new prefix); Reason explains a keep.
type Item struct {
	Op           Op        `json:"op"`
	Key          string    `json:"key"`
	Change       string    `json:"change"`
	Size         int64     `json:"size"`
	ETag         string    `json:"etag,omitempty"`
	LastModified time.Time `json:"lastModified"`
	VersionID    string    `json:"versionId,omitempty"`
	DestKey      string    `json:"destKey,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	// Note, when set, is carried into the report's notes for this key (e.g. a restore that had to
	// choose between a version and a delete marker of the same second).
	Note string `json:"note,omitempty"`
	// Prior, on a copy into the backup, is the backup's current ETag as the lister saw it; empty
	// when the key was absent from the backup. A version of the key whose ETag is not Prior was
	// written since the listing, which lets the copier recognise its own copy in an SSE-KMS backup,
	// whose ETags are never the source's.
	Prior string `json:"prior,omitempty"`
}

// Destination is the key the item writes.
func (it Item) Destination() string {
	if it.DestKey != "" {
		return it.DestKey
	}
	return it.Key
}

// MaxKeyBytes is S3's limit on a key's length.
const MaxKeyBytes = 1024

// Validate checks one item.
func (it Item) Validate() error {
	switch {
	case it.Op != OpCopy && it.Op != OpDelete && it.Op != OpKeep:
		return fmt.Errorf("item %q: unknown op %q", it.Key, it.Op)
	case it.Key == "":
		return errors.New("item with an empty key")
	case len(it.Key) > MaxKeyBytes || len(it.DestKey) > MaxKeyBytes:
		return fmt.Errorf("item key of %d bytes exceeds %d", max(len(it.Key), len(it.DestKey)), MaxKeyBytes)
	case !utf8.ValidString(it.Key):
		return fmt.Errorf("item key %q is not valid UTF-8", it.Key)
	case it.Size < 0:
		return fmt.Errorf("item %q: negative size", it.Key)
	}
	return nil
}

// Encode renders a batch file.
func Encode(h Header, items []Item) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// Read decodes a batch file, calling fn for each item in order. Unknown fields, a missing or
// foreign header, and invalid items are errors.
func Read(r io.Reader, fn func(Item) error) (Header, error) {
	return ReadWithHeader(r, nil, fn)
}

// ReadWithHeader is Read that calls onHeader (when not nil) with the header before the first item.
func ReadWithHeader(r io.Reader, onHeader func(Header) error, fn func(Item) error) (Header, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var h Header
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if line == 1 {
			if err := dec.Decode(&h); err != nil {
				return h, fmt.Errorf("batch header: %w", err)
			}
			if h.Version != Version || h.Source == "" || h.Destination == "" {
				return h, fmt.Errorf("batch header %s: want version %d with source and destination", text, Version)
			}
			if onHeader != nil {
				if err := onHeader(h); err != nil {
					return h, err
				}
			}
			continue
		}
		var it Item
		if err := dec.Decode(&it); err != nil {
			return h, fmt.Errorf("batch line %d: %w", line, err)
		}
		if err := it.Validate(); err != nil {
			return h, fmt.Errorf("batch line %d: %w", line, err)
		}
		if err := fn(it); err != nil {
			return h, err
		}
	}
	if err := sc.Err(); err != nil {
		return h, fmt.Errorf("batch: %w", err)
	}
	if line == 0 {
		return h, errors.New("batch is empty: no header")
	}
	return h, nil
}

// RunPrefix is where an execution's lasting records (report, history) live in the run bucket.
func RunPrefix(execution string) string { return "runs/" + execution + "/" }

// WorkPrefix is where an execution's short-lived work files live in the run bucket.
func WorkPrefix(execution string) string { return "work/" + execution + "/" }

// ThawPrefix is where a restore's planner writes the archived versions it asked to thaw: one
// batch file per ThawKey.
func ThawPrefix(execution string) string { return WorkPrefix(execution) + "thaw/" }

// ThawKey is the thaw file numbered seq.
func ThawKey(execution string, seq int) string {
	return fmt.Sprintf("%s%06d.jsonl", ThawPrefix(execution), seq)
}

// Prefix is where the lister (or the planner) writes an execution's batches.
func Prefix(execution string) string { return WorkPrefix(execution) + "batches/" }

// Key names batch number seq of an execution; zero padding keeps listing order = batch order.
func Key(execution string, seq int) string {
	return fmt.Sprintf("%s%06d.jsonl", Prefix(execution), seq)
}

// OutcomeKey names the copier's outcome file for a batch key.
func OutcomeKey(batchKey string) (string, error) {
	dir, file, ok := cutLast(batchKey, "/batches/")
	if !ok || !strings.HasSuffix(file, ".jsonl") || strings.Contains(file, "/") {
		return "", fmt.Errorf("batch key %q is not of the form work/<execution>/batches/<n>.jsonl", batchKey)
	}
	return dir + "/outcomes/" + strings.TrimSuffix(file, ".jsonl") + ".json", nil
}

// ReportKey names an execution's report.
func ReportKey(execution string) string { return RunPrefix(execution) + "report.json" }

// HistoryKey names an execution's recorded history.
func HistoryKey(execution string) string { return RunPrefix(execution) + "history.json" }

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// Putter is what Write needs of an S3 client.
type Putter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Write stores a batch file.
func Write(ctx context.Context, client Putter, bucket, key string, h Header, items []Item, opts ...func(*s3.Options)) error {
	body, err := Encode(h, items)
	if err != nil {
		return err
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String("application/x-ndjson"),
	}, opts...); err != nil {
		return fmt.Errorf("write batch %s: %w", key, err)
	}
	return nil
}

// ManifestKey names the list of an execution's batches that the Distributed Map reads (ItemReader
// s3:getObject, InputType JSONL) instead of listing the batch prefix, so that a file a failed
// attempt left behind is never run.
func ManifestKey(execution string) string { return WorkPrefix(execution) + "manifest.jsonl" }

// ManifestEntry is one line of the manifest; Key is the name the Map's ItemSelector reads
// ($$.Map.Item.Value.Key), as in an s3:listObjectsV2 item.
type ManifestEntry struct {
	Key string `json:"Key"`
}

// WriteManifest stores the manifest of batches 0 … n-1 of an execution. It is written once,
// by the invocation that finishes the listing or planning, from the count its cursor carries.
func WriteManifest(ctx context.Context, client Putter, bucket, execution string, n int, opts ...func(*s3.Options)) error {
	keys := make([]string, n)
	for seq := range n {
		keys[seq] = Key(execution, seq)
	}
	return WriteManifestKeys(ctx, client, bucket, execution, keys, opts...)
}

// DeleteKey names deletion batch number seq of an execution. A backup writes its deletions into
// batches of their own, numbered apart from the copy batches, so that a tripped deletion guard can
// withhold them while the copies run.
func DeleteKey(execution string, seq int) string {
	return fmt.Sprintf("%sdelete-%06d.jsonl", Prefix(execution), seq)
}

// DestinationKey names copy batch number seq of an execution for its further destination name
// (package destination), numbered apart from the backup bucket's.
func DestinationKey(execution, name string, seq int) string {
	return fmt.Sprintf("%sto-%s-%06d.jsonl", Prefix(execution), name, seq)
}

// DestinationDeleteKey names deletion batch number seq of an execution for its further
// destination name.
func DestinationDeleteKey(execution, name string, seq int) string {
	return fmt.Sprintf("%sdelete-to-%s-%06d.jsonl", Prefix(execution), name, seq)
}

// RangeKey names copy batch number seq of key-space range number r of an execution (a backup
// listed in ranges, each range by a lister of its own): ranges number their batches apart, so two
// ranges never write the same file, and a retried range lister rewrites its own.
func RangeKey(execution string, r, seq int) string {
	return fmt.Sprintf("%sr%06d-%06d.jsonl", Prefix(execution), r, seq)
}

// RangeDeleteKey names deletion batch number seq of key-space range number r of an execution.
func RangeDeleteKey(execution string, r, seq int) string {
	return fmt.Sprintf("%sdelete-r%06d-%06d.jsonl", Prefix(execution), r, seq)
}

// RangeDestinationKey names copy batch number seq of key-space range r of an execution for its
// further destination name. The dot, which no destination name holds, ends the name: no
// name's range batch is another's plain batch (a name may end in "-r000001").
func RangeDestinationKey(execution, name string, r, seq int) string {
	return fmt.Sprintf("%sto-%s.r%06d-%06d.jsonl", Prefix(execution), name, r, seq)
}

// RangeDestinationDeleteKey names deletion batch number seq of key-space range r of an execution
// for its further destination name.
func RangeDestinationDeleteKey(execution, name string, r, seq int) string {
	return fmt.Sprintf("%sdelete-to-%s.r%06d-%06d.jsonl", Prefix(execution), name, r, seq)
}

// ParseRangeKey returns the range and batch numbers of a copy batch key RangeKey made; ok is
// false for any other key.
func ParseRangeKey(execution, key string) (r, seq int, ok bool) {
	rest, found := strings.CutPrefix(key, Prefix(execution)+"r")
	rest, found2 := strings.CutSuffix(rest, ".jsonl")
	a, b, found3 := strings.Cut(rest, "-")
	if !found || !found2 || !found3 {
		return 0, 0, false
	}
	var err1, err2 error
	r, err1 = strconv.Atoi(a)
	seq, err2 = strconv.Atoi(b)
	if err1 != nil || err2 != nil || r < 0 || seq < 0 || RangeKey(execution, r, seq) != key {
		return 0, 0, false
	}
	return r, seq, true
}

// EarlyManifestKey names the list of the copy batches a backup listed in key-space ranges copied
// while the other ranges were still listing (each range's child execution copies its own, up to a
// bound); the Copy Map runs the rest. The reporter reads both.
func EarlyManifestKey(execution string) string { return WorkPrefix(execution) + "early-manifest.jsonl" }

// WriteEarlyManifest stores the early manifest of an execution.
func WriteEarlyManifest(ctx context.Context, client Putter, bucket, execution string, keys []string, opts ...func(*s3.Options)) error {
	return writeManifest(ctx, client, bucket, execution, EarlyManifestKey(execution), keys, opts...)
}

// PreviewManifestKey names the list of the batches a dry run wrote to show what the real run would
// do that its counts alone do not tell (an exact restore's removals, which the report names). No
// Map reads it: a dry run copies and removes nothing.
func PreviewManifestKey(execution string) string {
	return WorkPrefix(execution) + "preview-manifest.jsonl"
}

// WritePreviewManifest stores the preview manifest of batches 0 … n-1 of a dry run, in the format
// of the manifest (ReadManifest reads it).
func WritePreviewManifest(ctx context.Context, client Putter, bucket, execution string, n int, opts ...func(*s3.Options)) error {
	keys := make([]string, n)
	for seq := range n {
		keys[seq] = Key(execution, seq)
	}
	return writeManifest(ctx, client, bucket, execution, PreviewManifestKey(execution), keys, opts...)
}

// WriteManifestKeys stores the manifest of exactly the given batch keys of an execution, in order.
func WriteManifestKeys(ctx context.Context, client Putter, bucket, execution string, keys []string, opts ...func(*s3.Options)) error {
	return writeManifest(ctx, client, bucket, execution, ManifestKey(execution), keys, opts...)
}

func writeManifest(ctx context.Context, client Putter, bucket, execution, key string, keys []string, opts ...func(*s3.Options)) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, k := range keys {
		if !strings.HasPrefix(k, Prefix(execution)) {
			return fmt.Errorf("batch manifest of %s: %q is not one of its batches", execution, k)
		}
		if err := enc.Encode(ManifestEntry{Key: k}); err != nil {
			return err
		}
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes()), ContentType: aws.String("application/x-ndjson"),
	}, opts...); err != nil {
		return fmt.Errorf("write batch manifest %s: %w", key, err)
	}
	return nil
}

// ReadManifest decodes a manifest: the batch keys it lists, in order. Unknown fields, an entry
// without a key and a key outside the execution's batches are errors.
func ReadManifest(r io.Reader, execution string) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var keys []string
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		var e ManifestEntry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("batch manifest line %d: %w", line, err)
		}
		if !strings.HasPrefix(e.Key, Prefix(execution)) {
			return nil, fmt.Errorf("batch manifest line %d: %q is not a batch of execution %s", line, e.Key, execution)
		}
		keys = append(keys, e.Key)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("batch manifest: %w", err)
	}
	return keys, nil
}
