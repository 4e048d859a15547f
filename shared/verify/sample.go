package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/report"
)

// S3 is what the verifier needs of an S3 client.
type S3 interface {
	s3.ListObjectsV2APIClient
	s3.ListObjectVersionsAPIClient
	listing.HeadBucketAPI
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	// The restore sample: the tags of a source object and of its restored copy, and the
	// deletion of the scratch copies.
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// entry is one object to check: the backup's current version as listed (nil when the listing did
// not hold the key), and the last backup's batch item when that backup copied it.
type entry struct {
	Key    string         `json:"key"`
	Listed *change.Object `json:"listed,omitempty"`
	Copied *batch.Item    `json:"copied,omitempty"`
}

// rngStream is the second PCG seed; the first is the drill's seed.
const rngStream = 0x9e3779b97f4a7c15

func newRNG(seed int64) *rand.PCG { return rand.NewPCG(uint64(seed), rngStream) }

// errBatchesGone means the last backup's manifest or a batch of it no longer exists.
var errBatchesGone = errors.New("the last backup's batches are gone")

// list walks the backup's current objects from cur.After beside the last backup's copy batches
// until the listing ends (true) or the budget is spent.
func (h *Handler) list(ctx context.Context, execution string, cur *Cursor, b *budget) (bool, error) {
	pcg := new(rand.PCG)
	if err := pcg.UnmarshalBinary(cur.RNG); err != nil {
		return false, &fault.InvalidInput{Msg: "verify cursor: random state unreadable", Err: err}
	}
	rng := rand.New(pcg)
	var reservoir []entry
	if cur.Rule.Mode == ModeCount && cur.Reservoir != "" {
		var err error
		if reservoir, err = readLines[entry](ctx, h, cur.Reservoir); err != nil {
			return false, err
		}
	}
	w := &jsonlWriter{h: h, key: func(seq int) string { return SampleKey(execution, seq) }, seq: &cur.SampleFiles, max: SampleFileEntries}
	copied := &copiedStream{h: h, cur: cur, loaded: -1}
	emitCopied := func(it *batch.Item, listed *change.Object) error {
		cur.Tally.LastCopied++
		return w.add(ctx, entry{Key: it.Key, Listed: listed, Copied: it})
	}
	objs := listing.NewObjects(h.S3, h.Config.BackupBucket, "", cur.After)
	finished := false
	for !b.spent() {
		o, err := objs.Peek(ctx)
		if err != nil {
			return false, s3Error(err, h.Config.BackupBucket, "list the backup")
		}
		if o == nil {
			finished = true
			break
		}
		objs.Pop()
		b.used++
		cur.Tally.BackupObjects++
		it, err := copied.peek(ctx)
		for ; err == nil && it != nil && it.Key < o.Key; it, err = copied.peek(ctx) {
			copied.pop()
			if err := emitCopied(it, nil); err != nil {
				return false, err
			}
		}
		if err != nil {
			return false, err
		}
		switch {
		case it != nil && it.Key == o.Key:
			copied.pop()
			if err := emitCopied(it, o); err != nil {
				return false, err
			}
		case cur.Rule.Mode == ModeAll || (cur.Rule.Mode == ModePercent && rng.Float64()*100 < cur.Rule.Percent):
			cur.Tally.Sampled++
			if err := w.add(ctx, entry{Key: o.Key, Listed: o}); err != nil {
				return false, err
			}
		case cur.Rule.Mode == ModeCount && cur.Rule.N > 0:
			// Reservoir sampling (Algorithm R): after n candidates each is held with
			// probability N/n, in memory of N entries.
			cur.Candidates++
			if int64(len(reservoir)) < cur.Rule.N {
				reservoir = append(reservoir, entry{Key: o.Key, Listed: o})
			} else if j := rng.Int64N(cur.Candidates); j < cur.Rule.N {
				reservoir[j] = entry{Key: o.Key, Listed: o}
			}
		}
		cur.After = o.Key
	}
	if finished {
		for {
			it, err := copied.peek(ctx)
			if err != nil {
				return false, err
			}
			if it == nil {
				break
			}
			copied.pop()
			if err := emitCopied(it, nil); err != nil {
				return false, err
			}
		}
		slices.SortFunc(reservoir, func(a, b entry) int { return strings.Compare(a.Key, b.Key) })
		cur.Tally.Sampled += int64(len(reservoir))
		for _, e := range reservoir {
			if err := w.add(ctx, e); err != nil {
				return false, err
			}
		}
		cur.Reservoir = ""
	} else if cur.Rule.Mode == ModeCount && len(reservoir) > 0 {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, e := range reservoir {
			if err := enc.Encode(e); err != nil {
				return false, err
			}
		}
		key := reservoirKey(execution, cur.Tally.Invocations)
		if err := h.put(ctx, key, buf.Bytes()); err != nil {
			return false, err
		}
		cur.Reservoir = key
	}
	if err := w.flush(ctx); err != nil {
		return false, err
	}
	state, err := pcg.MarshalBinary()
	if err != nil {
		return false, err
	}
	cur.RNG = state
	return finished, nil
}

// jsonlWriter writes entries into numbered JSON Lines files of at most max lines; seq counts the
// files written (it lives in the cursor).
type jsonlWriter struct {
	h   *Handler
	key func(seq int) string
	seq *int
	max int
	buf bytes.Buffer
	n   int
}

func (w *jsonlWriter) add(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.buf.Write(b)
	w.buf.WriteByte('\n')
	if w.n++; w.n >= w.max {
		return w.flush(ctx)
	}
	return nil
}

func (w *jsonlWriter) flush(ctx context.Context) error {
	if w.n == 0 {
		return nil
	}
	if err := w.h.put(ctx, w.key(*w.seq), w.buf.Bytes()); err != nil {
		return err
	}
	*w.seq++
	w.buf.Reset()
	w.n = 0
	return nil
}

// readJSONL calls fn with each non-empty line of a run bucket object.
// readLines reads a JSON Lines file of the run bucket into values of T.
func readLines[T any](ctx context.Context, h *Handler, key string) ([]T, error) {
	var out []T
	err := h.readJSONL(ctx, key, func(line []byte) error {
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func (h *Handler) readJSONL(ctx context.Context, key string, fn func(line []byte) error) error {
	body, err := h.get(ctx, key)
	if err != nil {
		return err
	}
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("read s3://%s/%s: %w", h.Config.RunBucket, key, err)
		}
	}
	return nil
}

// get reads a run bucket object whole (sample, findings and batch files: bounded in size).
func (h *Handler) get(ctx context.Context, key string) ([]byte, error) {
	out, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
	if err != nil {
		return nil, s3Error(err, h.Config.RunBucket, "read s3://"+h.Config.RunBucket+"/"+key)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", h.Config.RunBucket, key, err)
	}
	return body, nil
}

// copiedBatches returns the keys of the last backup's copy batches, from its manifest (deletion
// batches left out); errBatchesGone when the manifest has expired.
func (h *Handler) copiedBatches(ctx context.Context, cur *Cursor) ([]string, error) {
	if cur.Against == "" || cur.Tally.LastCopiedUnknown {
		return nil, nil
	}
	body, err := h.get(ctx, batch.ManifestKey(cur.Against))
	if fault.IsCode(err, "NoSuchKey", "NotFound") {
		return nil, errBatchesGone
	}
	if err != nil {
		return nil, err
	}
	keys, err := batch.ReadManifest(bytes.NewReader(body), cur.Against)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", cur.Against, err)
	}
	return slices.DeleteFunc(keys, func(k string) bool { return strings.Contains(k, "/batches/delete-") }), nil
}

// copiedStream walks the objects the last backup copied, in key order, batch by batch: a batch's
// copy items less those its outcome names as failed or skipped. Its position lives in the cursor.
type copiedStream struct {
	h      *Handler
	cur    *Cursor
	keys   []string
	read   bool
	loaded int
	items  []batch.Item
}

func (s *copiedStream) peek(ctx context.Context) (*batch.Item, error) {
	if !s.read {
		keys, err := s.h.copiedBatches(ctx, s.cur)
		if errors.Is(err, errBatchesGone) {
			s.cur.Tally.LastCopiedUnknown = true
		} else if err != nil {
			return nil, err
		}
		s.keys, s.read = keys, true
	}
	for s.cur.CopiedBatch < len(s.keys) && !s.cur.Tally.LastCopiedUnknown {
		if s.loaded != s.cur.CopiedBatch {
			items, err := s.h.copiedItems(ctx, s.keys[s.cur.CopiedBatch])
			if errors.Is(err, errBatchesGone) {
				s.cur.Tally.LastCopiedUnknown = true
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			s.items, s.loaded = items, s.cur.CopiedBatch
		}
		if s.cur.CopiedItem < len(s.items) {
			return &s.items[s.cur.CopiedItem], nil
		}
		s.cur.CopiedBatch++
		s.cur.CopiedItem = 0
	}
	return nil, nil
}

func (s *copiedStream) pop() { s.cur.CopiedItem++ }

// copiedItems reads one copy batch of the last backup and its outcome.
func (h *Handler) copiedItems(ctx context.Context, batchKey string) ([]batch.Item, error) {
	body, err := h.get(ctx, batchKey)
	if fault.IsCode(err, "NoSuchKey", "NotFound") {
		return nil, errBatchesGone
	}
	if err != nil {
		return nil, err
	}
	notCopied := map[string]bool{}
	if key, err := batch.OutcomeKey(batchKey); err == nil {
		if out, err := h.get(ctx, key); err == nil {
			var o report.Outcome
			if err := json.Unmarshal(out, &o); err != nil {
				return nil, fmt.Errorf("outcome %s: %w", key, err)
			}
			for _, f := range o.Failures {
				notCopied[f.Key] = true
			}
			for _, s := range o.Skips {
				notCopied[s.Key] = true
			}
		} else if !fault.IsCode(err, "NoSuchKey", "NotFound") {
			return nil, err
		}
	}
	var items []batch.Item
	_, err = batch.Read(bytes.NewReader(body), func(it batch.Item) error {
		if it.Op == batch.OpCopy && !notCopied[it.Key] {
			items = append(items, it)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("batch %s: %w", batchKey, err)
	}
	return items, nil
}
