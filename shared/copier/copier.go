// Package copier is the copier function: it runs one work batch — copies into the backup or a
// restore target, and delete markers (a backup's deletions, an exact restore's removals) — with
// bounded concurrency, records every object's outcome in the run bucket (and, for a backup into
// an SSE-KMS bucket, the ETag each copy got, in the ETag index), and returns counts. One object's
// failure is recorded and the batch goes on; a batch that cannot run at all fails with a named
// error. A copy in parts is recorded in the run bucket (UploadsPrefix) before its first part, so
// that a retry of a batch interrupted by its deadline or by Lambda continues it instead of
// copying its finished parts again.
package copier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/etagindex"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/shared/s3copy"
)

// S3 is what the copier needs of an S3 client.
type S3 interface {
	s3copy.API
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Config is the copier's configuration, from its environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
	// RestoreTargets are the buckets a restore may write; a restore batch copies versions of the
	// backup into one of them. Empty: this copier runs backups only.
	RestoreTargets     []string
	Concurrency        int
	MultipartThreshold int64
	PartSize           int64
	PartConcurrency    int
	// Destinations are the backup's further destinations (DESTINATIONS): a backup batch may
	// write one of them, a restore batch may read one.
	Destinations []destination.Destination
}

// DefaultConcurrency is how many objects one copier invocation copies at once (COPIER_CONCURRENCY).
const DefaultConcurrency = 32

// DefaultStreamPartSize caps the part size of streamed copies (to or from another provider),
// whose parts are buffered: PART_CONCURRENCY of them at once, 8 × 16 MiB by default. A source's
// own multipart layout is kept whatever this says.
const DefaultStreamPartSize = 16 << 20

// ConfigFromEnv reads SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET (required), RESTORE_TARGETS
// (comma-separated, default none), COPIER_CONCURRENCY (default DefaultConcurrency, 32),
// MULTIPART_THRESHOLD (default s3copy.DefaultThreshold, 5GiB), MULTIPART_PART_SIZE (default
// s3copy.DefaultPartSize, 128MiB) and PART_CONCURRENCY (default s3copy.DefaultPartConcurrency, 8:
// part requests in flight per invocation, shared by all its objects).
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		SourceBucket:       r.Required("SOURCE_BUCKET"),
		BackupBucket:       r.Required("BACKUP_BUCKET"),
		RunBucket:          r.Required("RUN_BUCKET"),
		RestoreTargets:     r.List("RESTORE_TARGETS"),
		Concurrency:        int(r.Int("COPIER_CONCURRENCY", DefaultConcurrency, 1, 1024)),
		MultipartThreshold: r.Bytes("MULTIPART_THRESHOLD", s3copy.DefaultThreshold, s3copy.MinPartSize, s3copy.MaxPartSize),
		PartSize:           r.Bytes("MULTIPART_PART_SIZE", s3copy.DefaultPartSize, s3copy.MinPartSize, s3copy.MaxPartSize),
		PartConcurrency:    int(r.Int("PART_CONCURRENCY", s3copy.DefaultPartConcurrency, 1, 256)),
	}
	if err := r.Err(); err != nil {
		return c, err
	}
	var err error
	c.Destinations, err = destination.FromEnv(lookup, c.SourceBucket, c.BackupBucket, c.RunBucket)
	return c, err
}

// Request is the copier's payload, built by the Map's CopyBatch state.
type Request struct {
	Execution  string `json:"execution"`
	BatchKey   string `json:"batchKey"`
	RetryCount int    `json:"retryCount"`
}

// Response is the copier's summary of one batch; details are in the outcome file.
type Response struct {
	BatchKey    string `json:"batchKey"`
	Copied      int    `json:"copied"`
	Deleted     int    `json:"deleted"`
	Failed      int    `json:"failed"`
	Skipped     int    `json:"skipped"`
	BytesCopied int64  `json:"bytesCopied"`
	Retries     int64  `json:"retries"`
	OutcomeKey  string `json:"outcomeKey"`
}

// Handler is the copier function.
type Handler struct {
	S3     S3
	Config Config
	Logger *slog.Logger
	// Sleep, when set, replaces real sleeps between retries (tests).
	Sleep func(ctx context.Context, d time.Duration) error
	// Now, when set, replaces time.Now where the invocation's time is compared with its
	// deadline (tests).
	Now func() time.Time
	// Destinations, when set, are the further destinations' clients by name; nil opens them
	// from Config.Destinations on first use (destination.Open).
	Destinations map[string]S3
	destMu       sync.Mutex
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// UploadsPrefix is where the copier records the multipart uploads of a batch in the run bucket,
// one JSON object per destination key (s3copy.S3Uploads), so that a retry of the batch continues
// them: work/<execution>/uploads/<batch>/, <batch> being the batch file's name without .jsonl.
func UploadsPrefix(execution, batchKey string) string {
	return batch.WorkPrefix(execution) + "uploads/" + strings.TrimSuffix(path.Base(batchKey), ".jsonl") + "/"
}

// Handle runs one batch. Errors are the named types of package fault.
func (h *Handler) Handle(ctx context.Context, req Request) (Response, error) {
	resp, err := h.handle(ctx, req)
	return resp, fault.Boundary(err)
}

func (h *Handler) handle(ctx context.Context, req Request) (Response, error) {
	if req.Execution == "" || !strings.HasPrefix(req.BatchKey, batch.Prefix(req.Execution)) {
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("batch key %q is not a batch of execution %q", req.BatchKey, req.Execution)}
	}
	outcomeKey, err := batch.OutcomeKey(req.BatchKey)
	if err != nil {
		return Response{}, &fault.InvalidInput{Msg: err.Error(), Err: err}
	}
	counter := &s3client.RetryCounter{}
	items, header, err := h.read(ctx, req.BatchKey, counter)
	if err != nil {
		return Response{}, err
	}
	rt, err := h.route(ctx, header)
	if err != nil {
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("batch %s: %v", req.BatchKey, err), Err: err}
	}
	start := time.Now()
	out, copied, err := h.run(ctx, req, header, rt, items, counter)
	if err != nil {
		return Response{}, err
	}
	// The index file goes before the outcome file: a batch whose outcome is written has recorded
	// its copies. A failure here is retried as a batch, whose verify mode redoes no copy.
	if err := h.recordCopies(ctx, req, copied, counter); err != nil {
		return Response{}, err
	}
	body, err := json.Marshal(out)
	if err != nil {
		return Response{}, err
	}
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(h.Config.RunBucket), Key: aws.String(outcomeKey),
		Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
	}, counter.Option()); err != nil {
		return Response{}, fmt.Errorf("write outcome %s: %w", outcomeKey, err)
	}
	h.Logger.InfoContext(ctx, "batch done", "batch", req.BatchKey, "attempt", req.RetryCount+1,
		"items", out.Items, "copied", out.Copied, "deleted", out.Deleted, "failed", out.Failed,
		"skipped", out.Skipped, "alreadyPresent", out.AlreadyPresent, "bytes", out.BytesCopied,
		"retries", out.Retries, "elapsed", time.Since(start).String())
	return Response{
		BatchKey: req.BatchKey, Copied: out.Copied, Deleted: out.Deleted, Failed: out.Failed,
		Skipped: out.Skipped, BytesCopied: out.BytesCopied, Retries: out.Retries, OutcomeKey: outcomeKey,
	}, nil
}

// backup reports whether a batch is a backup: source → the backup bucket or a further
// destination, which only bucketvault writes.
func (h *Handler) backup(hd batch.Header) bool {
	if hd.Source != h.Config.SourceBucket || hd.SourceName != "" {
		return false
	}
	if hd.DestinationName == "" {
		return hd.Destination == h.Config.BackupBucket
	}
	d, ok := destination.Find(h.Config.Destinations, hd.DestinationName)
	return ok && d.Bucket == hd.Destination
}

// recordCopies writes the batch's copied file of the ETag index: which backup ETag holds which
// source ETag, for the copies whose two ETags differ (SSE-KMS). Nothing is written, and no
// request made, when there are none. A failure fails the batch with a TransientError.
func (h *Handler) recordCopies(ctx context.Context, req Request, entries []etagindex.Entry, counter *s3client.RetryCounter) error {
	if !slices.ContainsFunc(entries, etagindex.Entry.Needed) {
		return nil
	}
	if err := etagindex.WriteCopied(ctx, h.S3, h.Config.RunBucket, req.Execution, req.BatchKey, entries, counter.Option()); err != nil {
		return &fault.TransientError{Msg: fmt.Sprintf("batch %s: its copies are done but not recorded in the ETag index; a retry records them: %v", req.BatchKey, err), Err: err}
	}
	return nil
}

func (h *Handler) read(ctx context.Context, key string, counter *s3client.RetryCounter) ([]batch.Item, batch.Header, error) {
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)}, counter.Option())
	if err != nil {
		if fault.Retryable(err) {
			return nil, batch.Header{}, fmt.Errorf("read batch %s: %w", key, err)
		}
		return nil, batch.Header{}, &fault.BatchUnreadable{Msg: fmt.Sprintf("read batch s3://%s/%s: %v", h.Config.RunBucket, key, err), Err: err}
	}
	defer obj.Body.Close()
	var items []batch.Item
	header, err := batch.Read(obj.Body, func(it batch.Item) error { items = append(items, it); return nil })
	if err != nil {
		if fault.Retryable(err) {
			return nil, header, fmt.Errorf("read batch %s: %w", key, err)
		}
		return nil, header, &fault.BatchUnreadable{Msg: fmt.Sprintf("batch s3://%s/%s: %v", h.Config.RunBucket, key, err), Err: err}
	}
	return items, header, nil
}

// run processes every item and returns, for a backup, the index entry of every item that ended
// copied or already present. It returns an error only when the batch must be retried as a whole:
// the invocation is about to time out, or the context ended.
func (h *Handler) run(ctx context.Context, req Request, header batch.Header, rt route, items []batch.Item, counter *s3client.RetryCounter) (report.Outcome, []etagindex.Entry, error) {
	stopAt := lambdafn.StopAt(ctx)
	opts := s3copy.Options{
		Threshold: h.Config.MultipartThreshold, PartSize: h.Config.PartSize,
		PartConcurrency: h.Config.PartConcurrency, Sleep: h.Sleep,
		// Copies in parts are recorded, continued by a retry of the batch, and stop taking parts
		// when the items do.
		Uploads: &s3copy.S3Uploads{S3: h.S3, Bucket: h.Config.RunBucket, Prefix: UploadsPrefix(req.Execution, req.BatchKey),
			Opts: []func(*s3.Options){counter.Option()}},
		StopAt: stopAt, Now: h.now,
	}
	if rt.source != nil {
		opts.Source, opts.ServerSide = rt.source, rt.serverSide
		if !rt.serverSide {
			// Streamed: each part in flight is a buffer in memory (s3copy.Options.Source).
			opts.PartSize = min(opts.PartSize, DefaultStreamPartSize)
		}
	}
	cp := s3copy.New(rt.dest, opts)
	concurrency := h.Config.Concurrency
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	verify := req.RetryCount > 0

	out := report.Outcome{BatchKey: req.BatchKey, Items: len(items), Failures: []report.Failure{}, Skips: []report.Skip{}, Destination: header.DestinationName}
	var entries []etagindex.Entry
	var mu sync.Mutex
	// A fixed set of workers takes the items in order: a goroutine per item would grow a fresh
	// stack through the SDK's deep call chain for every object, which costs measurable CPU.
	next := make(chan batch.Item)
	g, gctx := errgroup.WithContext(ctx)
	for range min(concurrency, len(items)) {
		g.Go(func() error {
			for it := range next {
				rec := h.one(gctx, cp, header, it, verify, counter)
				mu.Lock()
				rec.apply(&out)
				if rec.entry != nil {
					entries = append(entries, *rec.entry)
				}
				mu.Unlock()
			}
			return nil
		})
	}
	for _, it := range items {
		if !stopAt.IsZero() && h.now().After(stopAt) {
			break
		}
		if gctx.Err() != nil {
			break
		}
		next <- it
	}
	close(next)
	_ = g.Wait() // workers record their errors; none is returned
	out.Retries = counter.Count()
	done := out.Copied + out.Deleted + out.Failed + out.Skipped
	if done < len(items) {
		// Out of time or cancelled: the Map retries the batch (BatchInProgress has many more
		// attempts than a TransientError), and verification on the retry skips what this attempt
		// already did; a copy in parts resumes from its finished parts.
		return out, nil, &fault.BatchInProgress{Msg: fmt.Sprintf("batch %s stopped after %d of %d items (deadline or cancellation); retry completes it", req.BatchKey, done, len(items))}
	}
	return out, entries, nil
}

// record is one item's outcome.
type record struct {
	copied, deleted, alreadyPresent, sourceChanged bool
	bytes                                          int64
	failure                                        *report.Failure
	skip                                           *report.Skip
	note                                           *report.Note // the item's note, carried into the outcome once it is done
	// entry records, for a backup, what the backup now holds for the item (copied or present).
	entry *etagindex.Entry
}

func (r record) apply(out *report.Outcome) {
	switch {
	case r.failure != nil:
		out.Failed++
		out.Failures = append(out.Failures, *r.failure)
	case r.skip != nil:
		out.Skipped++
		out.Skips = append(out.Skips, *r.skip)
	case r.copied:
		out.Copied++
		out.BytesCopied += r.bytes
	case r.deleted:
		out.Deleted++
	default:
		return // unfinished
	}
	if r.alreadyPresent {
		out.AlreadyPresent++
	}
	if r.sourceChanged {
		out.SourceChanged++
	}
	if r.note != nil {
		out.Notes = append(out.Notes, *r.note)
	}
}

// one runs one item; an item with a Note carries it into the outcome.
func (h *Handler) one(ctx context.Context, cp *s3copy.Copier, hd batch.Header, it batch.Item, verify bool, counter *s3client.RetryCounter) record {
	rec := h.do(ctx, cp, hd, it, verify, counter)
	if it.Note != "" {
		rec.note = &report.Note{Key: it.Destination(), Note: it.Note}
	}
	return rec
}

func (h *Handler) do(ctx context.Context, cp *s3copy.Copier, hd batch.Header, it batch.Item, verify bool, counter *s3client.RetryCounter) record {
	fail := func(err error) record {
		if s3copy.Interrupted(ctx, err) {
			return record{} // unfinished, not failed: the batch is retried and continues it
		}
		h.Logger.WarnContext(ctx, "object not backed up", "key", it.Key, "op", it.Op, "destination", hd.DestinationName, "error", err)
		return record{failure: &report.Failure{Key: it.Key, Op: string(it.Op), Error: err.Error(), Destination: hd.DestinationName}}
	}
	switch it.Op {
	case batch.OpCopy:
		backup := h.backup(hd)
		req := s3copy.Request{
			SourceBucket: hd.Source, DestBucket: hd.Destination, Key: it.Key, DestKey: it.DestKey,
			SourceVersionID: it.VersionID,
			Listed:          change.Object{Key: it.Key, Size: it.Size, ETag: it.ETag, LastModified: it.LastModified},
			Verify:          verify,
			BackupDest:      backup,
			Retries:         counter,
		}
		if backup {
			// A new key was absent from the backup; a changed key's listed ETag is Prior. A
			// changed item without one (a batch listed before Prior existed) gets no SSE-KMS rule.
			req.Prior, req.PriorListed = it.Prior, it.Prior != "" || it.Change == string(change.New)
		}
		res, err := cp.Copy(ctx, req)
		if err != nil {
			return fail(err)
		}
		var rec record
		switch res.Outcome {
		case s3copy.Vanished:
			return record{skip: &report.Skip{Key: it.Key, Reason: "vanished: the source object was deleted after it was listed"}}
		case s3copy.AlreadyPresent:
			rec = record{copied: true, alreadyPresent: true}
		default:
			rec = record{copied: true, bytes: res.Bytes, sourceChanged: res.SourceChanged}
		}
		if backup && hd.DestinationName == "" {
			rec.entry = h.entry(ctx, it.Key, res) // the ETag index is the backup bucket's
		}
		return rec
	case batch.OpDelete:
		req := s3copy.DeleteRequest{
			SourceBucket: hd.Source, DestBucket: hd.Destination, Key: it.Key, DestKey: it.DestKey,
			Verify: verify, Retries: counter,
		}
		if !h.backup(hd) || it.Change == batch.ChangeExcluded {
			// An exact restore's removal, or a backup's key a filter now excludes (deleteExcluded:
			// the source still has it): the object as planned, removed only while the
			// destination still holds it; the source is not looked at.
			req.Expect = &change.Object{Key: it.Destination(), Size: it.Size, ETag: it.ETag, LastModified: it.LastModified}
		}
		outcome, err := cp.Delete(ctx, req)
		if err != nil {
			return fail(err)
		}
		switch outcome {
		case s3copy.Reappeared:
			return record{skip: &report.Skip{Key: it.Key, Reason: "reappeared: the key exists in the source again; not marked deleted, the next run backs it up"}}
		case s3copy.DestChanged:
			if h.backup(hd) {
				return record{skip: &report.Skip{Key: it.Key, Reason: "changed in the backup since it was listed: not marked deleted"}}
			}
			return record{skip: &report.Skip{Key: it.Destination(), Reason: "changed in the target since the restore was planned: not removed"}}
		}
		return record{deleted: true, alreadyPresent: outcome == s3copy.AlreadyDeleted}
	case batch.OpKeep:
		return record{skip: &report.Skip{Key: it.Destination(), Reason: it.Reason}}
	}
	return fail(fmt.Errorf("unknown op %q", it.Op))
}

// entry is the ETag index entry of a backup copy: the content actually copied (the source as it
// was when copied, which differs from the listing when the source changed meanwhile) and the
// ETag the backup's version got. Without the backup's ETag there is nothing to record; the next
// run then copies the object again if the two ETags differ.
func (h *Handler) entry(ctx context.Context, key string, res s3copy.Result) *etagindex.Entry {
	if change.NormalizeETag(res.DestETag) == "" || change.NormalizeETag(res.Object.ETag) == "" {
		h.Logger.WarnContext(ctx, "copy not recorded in the ETag index: an ETag is unknown", "key", key,
			"sourceETag", res.Object.ETag, "backupETag", res.DestETag)
		return nil
	}
	return &etagindex.Entry{Key: key, Source: res.Object.ETag, Backup: res.DestETag, Size: res.Object.Size}
}
