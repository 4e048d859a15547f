// Package lister is the backup lister: it merges the source and backup listings in key order,
// classifies every key (new, changed, unchanged, deleted), writes work batches to the run bucket,
// and returns a small cursor so that big buckets take many invocations, each well inside the
// Lambda time limit. Memory holds one listing page per bucket and one batch, whatever the size of
// the bucket.
package lister

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/execinput"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// S3 is what the lister needs of an S3 client.
type S3 interface {
	s3.ListObjectsV2APIClient
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, opts ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Config is the lister's configuration, from its environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
	BatchSize                             int64 // items per batch file
	BatchBytes                            int64 // bytes to copy per batch file
	MaxKeysPerInvocation                  int64 // 0: until the time budget runs out
	MaxDeletePercent                      float64
}

// ConfigFromEnv reads SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET (required), BATCH_SIZE (default
// 1000), BATCH_BYTES (default 16GiB), LISTER_MAX_KEYS (default 0) and MAX_DELETE_PERCENT
// (default 25).
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		SourceBucket:         r.Required("SOURCE_BUCKET"),
		BackupBucket:         r.Required("BACKUP_BUCKET"),
		RunBucket:            r.Required("RUN_BUCKET"),
		BatchSize:            r.Int("BATCH_SIZE", batch.DefaultSize, 1, batch.MaxSize),
		BatchBytes:           r.Bytes("BATCH_BYTES", batch.DefaultBytes, 1, batch.MaxBytes),
		MaxKeysPerInvocation: r.Int("LISTER_MAX_KEYS", 0, 0, 1<<40),
		MaxDeletePercent:     float64(r.Int("MAX_DELETE_PERCENT", 25, 0, 100)),
	}
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	if err := distinctBuckets(c.SourceBucket, c.BackupBucket, c.RunBucket); err != nil {
		return Config{}, err
	}
	return c, nil
}

func distinctBuckets(source, backup, run string) error {
	if source == backup || source == run || backup == run {
		return &fault.ConfigError{Msg: fmt.Sprintf("SOURCE_BUCKET (%s), BACKUP_BUCKET (%s) and RUN_BUCKET (%s) must be three different buckets", source, backup, run)}
	}
	return nil
}

// Cursor carries the merge position and running totals between invocations.
type Cursor struct {
	After         string `json:"after"`
	NextBatch     int    `json:"nextBatch"`
	Invocations   int    `json:"invocations"`
	Listed        int64  `json:"listed"`
	New           int64  `json:"new"`
	Changed       int64  `json:"changed"`
	Unchanged     int64  `json:"unchanged"`
	ToDelete      int64  `json:"toDelete"`
	BackupObjects int64  `json:"backupObjects"`
	BytesToCopy   int64  `json:"bytesToCopy"`
	Retries       int64  `json:"retries"`
}

// Request is the lister's payload, built by the state machine's List state.
type Request struct {
	Execution string          `json:"execution"`
	Input     json.RawMessage `json:"input"`
	Cursor    *Cursor         `json:"cursor"`
}

// Response tells the state machine whether to list again.
type Response struct {
	Cursor      Cursor `json:"cursor"`
	Done        bool   `json:"done"`
	DryRun      bool   `json:"dryRun"`
	BatchPrefix string `json:"batchPrefix"`
}

// Handler is the lister function.
type Handler struct {
	S3     S3
	Config Config
	Logger *slog.Logger
	Now    func() time.Time
}

// Handle runs one lister invocation. Errors are the named types of package fault.
func (h *Handler) Handle(ctx context.Context, req Request) (Response, error) {
	resp, err := h.handle(ctx, req)
	if err != nil {
		return Response{}, fault.Boundary(err)
	}
	return resp, nil
}

func (h *Handler) handle(ctx context.Context, req Request) (Response, error) {
	if req.Execution == "" {
		return Response{}, &fault.InvalidInput{Msg: "lister request has no execution name"}
	}
	opts, err := execinput.Parse(req.Input)
	if err != nil {
		return Response{}, err
	}
	cur := Cursor{}
	if req.Cursor != nil {
		cur = *req.Cursor
	} else if err := h.checkBuckets(ctx); err != nil {
		return Response{}, err
	}
	cur.Invocations++
	start := h.now()
	stopAt := lambdafn.StopAt(ctx)

	retries := &s3client.RetryCounter{}
	m := merger{
		src: listing.NewObjects(h.S3, h.Config.SourceBucket, opts.Prefix, cur.After).WithOptions(retries.Option()),
		bak: listing.NewObjects(h.S3, h.Config.BackupBucket, opts.Prefix, cur.After).WithOptions(retries.Option()),
	}
	w := &writer{h: h, ctx: ctx, execution: req.Execution, cur: &cur, dryRun: opts.DryRun, retries: retries}
	var processed int64
	done := false
	for {
		if h.Config.MaxKeysPerInvocation > 0 && processed >= h.Config.MaxKeysPerInvocation {
			break
		}
		if !stopAt.IsZero() && h.now().After(stopAt) {
			break
		}
		src, bak, ok, err := m.next(ctx)
		if err != nil {
			return Response{}, err
		}
		if !ok {
			done = true
			break
		}
		if err := w.add(src, bak); err != nil {
			return Response{}, err
		}
		processed++
	}
	if err := w.flush(); err != nil {
		return Response{}, err
	}
	h.Logger.InfoContext(ctx, "listed", "execution", req.Execution, "invocation", cur.Invocations,
		"keys", processed, "done", done, "after", cur.After, "batches", cur.NextBatch,
		"listed", cur.Listed, "new", cur.New, "changed", cur.Changed, "unchanged", cur.Unchanged,
		"toDelete", cur.ToDelete, "elapsed", h.now().Sub(start).String())
	if done {
		if err := guard(cur, opts, h.Config.MaxDeletePercent); err != nil {
			return Response{}, err
		}
	}
	cur.Retries += retries.Count()
	return Response{Cursor: cur, Done: done, DryRun: opts.DryRun, BatchPrefix: batch.Prefix(req.Execution)}, nil
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// checkBuckets runs before anything is written: every bucket must exist, and the backup must be
// versioned, or copies would overwrite history and deletions would destroy data.
func (h *Handler) checkBuckets(ctx context.Context) error {
	if err := listing.RequireBuckets(ctx, h.S3,
		listing.Bucket{Role: "source", Name: h.Config.SourceBucket}, listing.Bucket{Role: "backup", Name: h.Config.BackupBucket}, listing.Bucket{Role: "run", Name: h.Config.RunBucket},
	); err != nil {
		return err
	}
	v, err := h.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(h.Config.BackupBucket)})
	if err != nil {
		return fmt.Errorf("read versioning of backup bucket %q: %w", h.Config.BackupBucket, err)
	}
	if v.Status != types.BucketVersioningStatusEnabled {
		return &fault.BackupNotVersioned{Msg: fmt.Sprintf("backup bucket %q must have versioning enabled (it is %q); nothing was copied", h.Config.BackupBucket, string(v.Status))}
	}
	return nil
}

// guard refuses a run that would mark more than the allowed share of the backup deleted.
func guard(cur Cursor, opts execinput.Options, defaultPercent float64) error {
	limit := defaultPercent
	if opts.MaxDeletePercent != nil {
		limit = *opts.MaxDeletePercent
	}
	if cur.ToDelete == 0 || cur.BackupObjects == 0 {
		return nil
	}
	share := float64(cur.ToDelete) * 100 / float64(cur.BackupObjects)
	if share <= limit {
		return nil
	}
	return &fault.DeletionGuardTripped{Msg: fmt.Sprintf(
		"this run would mark %d of the backup's %d current objects deleted (%.1f%%), more than the %.0f%% allowed; nothing was copied or marked. "+
			"If the deletions are intended, start an execution with {\"maxDeletePercent\": 100}",
		cur.ToDelete, cur.BackupObjects, share, limit)}
}

// writer accumulates work items into batch files.
type writer struct {
	h         *Handler
	ctx       context.Context
	execution string
	cur       *Cursor
	dryRun    bool
	retries   *s3client.RetryCounter
	items     []batch.Item
	bytes     int64
}

func (w *writer) add(src, bak *change.Object) error {
	key := keyOf(src, bak)
	class := change.Classify(src, bak)
	if src != nil {
		w.cur.Listed++
	}
	if bak != nil {
		w.cur.BackupObjects++
	}
	var it batch.Item
	switch class {
	case change.Unchanged:
		w.cur.Unchanged++
	case change.New, change.Changed:
		if class == change.New {
			w.cur.New++
		} else {
			w.cur.Changed++
		}
		w.cur.BytesToCopy += src.Size
		it = batch.Item{Op: batch.OpCopy, Key: key, Change: string(class), Size: src.Size, ETag: src.ETag, LastModified: src.LastModified}
	case change.Deleted:
		w.cur.ToDelete++
		it = batch.Item{Op: batch.OpDelete, Key: key, Change: string(class), Size: bak.Size, ETag: bak.ETag, LastModified: bak.LastModified}
	}
	w.cur.After = key
	if it.Op == "" || w.dryRun {
		return nil
	}
	w.items = append(w.items, it)
	if it.Op == batch.OpCopy {
		w.bytes += it.Size
	}
	if int64(len(w.items)) >= w.h.Config.BatchSize || w.bytes >= w.h.Config.BatchBytes {
		return w.flush()
	}
	return nil
}

// flush writes the pending items as the next batch file. Batch names are deterministic, so a
// retried invocation rewrites the same files.
func (w *writer) flush() error {
	if len(w.items) == 0 {
		return nil
	}
	header := batch.Header{Version: batch.Version, Source: w.h.Config.SourceBucket, Destination: w.h.Config.BackupBucket}
	if err := batch.Write(w.ctx, w.h.S3, w.h.Config.RunBucket, batch.Key(w.execution, w.cur.NextBatch), header, w.items, w.retries.Option()); err != nil {
		return err
	}
	w.cur.NextBatch++
	w.items = w.items[:0]
	w.bytes = 0
	return nil
}

func keyOf(src, bak *change.Object) string {
	if src != nil {
		return src.Key
	}
	return bak.Key
}

// merger walks two key-ordered listings together.
type merger struct{ src, bak *listing.Objects }

// next returns the entries of the next key in either listing; ok is false at the end of both.
func (m *merger) next(ctx context.Context) (src, bak *change.Object, ok bool, err error) {
	s, err := m.src.Peek(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	b, err := m.bak.Peek(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	switch {
	case s == nil && b == nil:
		return nil, nil, false, nil
	case b == nil || (s != nil && s.Key < b.Key):
		m.src.Pop()
		return s, nil, true, nil
	case s == nil || b.Key < s.Key:
		m.bak.Pop()
		return nil, b, true, nil
	default:
		m.src.Pop()
		m.bak.Pop()
		return s, b, true, nil
	}
}
