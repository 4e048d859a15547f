// Package planner is the restore planner: it walks the versioned backup bucket's history in key
// order and, for each selected key, picks the version that was current at the requested moment;
// it compares that version with the restore target and writes work batches for the copier
// (missing or differing objects; differing ones only when overwriting is allowed). Versions in
// archive storage classes are thawed first with RestoreObject, and a second mode reports how
// many are still thawing. Like the lister, it returns a small cursor so that any bucket size
// takes several short invocations.
package planner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
)

// S3 is what the planner needs of an S3 client.
type S3 interface {
	s3.ListObjectsV2APIClient
	s3.ListObjectVersionsAPIClient
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	RestoreObject(ctx context.Context, in *s3.RestoreObjectInput, opts ...func(*s3.Options)) (*s3.RestoreObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Config is the planner's configuration, from its environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
	RestoreTargets                        []string
	BatchSize, BatchBytes                 int64
	MaxKeysPerInvocation                  int64
	ThawCheckSeconds                      int
}

// ConfigFromEnv reads SOURCE_BUCKET (the default target), BACKUP_BUCKET, RUN_BUCKET (required),
// RESTORE_TARGETS (buckets a restore may write, comma-separated), BATCH_SIZE (1000), BATCH_BYTES
// (16GiB), PLANNER_MAX_KEYS (0: time-bound) and THAW_CHECK_SECONDS (3600).
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		SourceBucket:         r.Required("SOURCE_BUCKET"),
		BackupBucket:         r.Required("BACKUP_BUCKET"),
		RunBucket:            r.Required("RUN_BUCKET"),
		RestoreTargets:       r.List("RESTORE_TARGETS"),
		BatchSize:            r.Int("BATCH_SIZE", batch.DefaultSize, 1, batch.MaxSize),
		BatchBytes:           r.Bytes("BATCH_BYTES", batch.DefaultBytes, 1, batch.MaxBytes),
		MaxKeysPerInvocation: r.Int("PLANNER_MAX_KEYS", 0, 0, 1<<40),
		ThawCheckSeconds:     int(r.Int("THAW_CHECK_SECONDS", 3600, 0, 86400)),
	}
	return c, r.Err()
}

// Cursor carries the walk position and running totals between invocations.
type Cursor struct {
	RestoredAt    string `json:"restoredAt"`
	Scope         int    `json:"scope"`
	After         string `json:"after"`
	NextBatch     int    `json:"nextBatch"`
	NextThaw      int    `json:"nextThaw"`
	Invocations   int    `json:"invocations"`
	Listed        int64  `json:"listed"`
	New           int64  `json:"new"`
	Changed       int64  `json:"changed"`
	Unchanged     int64  `json:"unchanged"`
	Kept          int64  `json:"kept"`
	Archived      int64  `json:"archived"`
	BytesToCopy   int64  `json:"bytesToCopy"`
	Entries       int64  `json:"entries"`
	Matched       int64  `json:"matched"`
	Earliest      string `json:"earliest"`
	ThawRequested int64  `json:"thawRequested"`
}

// Modes of an invocation.
const (
	ModePlan = "plan"
	ModeThaw = "thaw"
)

// Request is the planner's payload.
type Request struct {
	Execution string          `json:"execution"`
	Input     json.RawMessage `json:"input"`
	Cursor    *Cursor         `json:"cursor"`
	Mode      string          `json:"mode"`
}

// Response tells the state machine whether to plan again, wait for thawing, or copy.
type Response struct {
	Cursor          Cursor `json:"cursor"`
	Done            bool   `json:"done"`
	DryRun          bool   `json:"dryRun"`
	BatchPrefix     string `json:"batchPrefix"`
	RestoredAt      string `json:"restoredAt"`
	TargetBucket    string `json:"targetBucket"`
	TargetPrefix    string `json:"targetPrefix"`
	ThawPending     int64  `json:"thawPending"`
	ThawWaitSeconds int    `json:"thawWaitSeconds"`
}

// Handler is the planner function.
type Handler struct {
	S3     S3
	Config Config
	Logger *slog.Logger
}

// Handle runs one planner invocation. Errors are the named types of package fault.
func (h *Handler) Handle(ctx context.Context, req Request) (Response, error) {
	resp, err := h.handle(ctx, req)
	if err != nil {
		return Response{}, fault.Boundary(err)
	}
	return resp, nil
}

func (h *Handler) handle(ctx context.Context, req Request) (Response, error) {
	if req.Execution == "" {
		return Response{}, &fault.InvalidInput{Msg: "planner request has no execution name"}
	}
	opts, err := restoreinput.Parse(req.Input)
	if err != nil {
		return Response{}, err
	}
	target := opts.TargetBucket
	if target == "" {
		target = h.Config.SourceBucket
	}
	resp := Response{
		DryRun: opts.DryRun, BatchPrefix: batch.Prefix(req.Execution), TargetBucket: target, TargetPrefix: opts.TargetPrefix,
		ThawWaitSeconds: h.Config.ThawCheckSeconds,
	}
	if opts.ThawCheckSeconds != nil {
		resp.ThawWaitSeconds = *opts.ThawCheckSeconds
	}
	switch req.Mode {
	case ModeThaw:
		if req.Cursor == nil {
			return Response{}, &fault.InvalidInput{Msg: "thaw check without a cursor"}
		}
		resp.Cursor, resp.Done, resp.RestoredAt = *req.Cursor, true, req.Cursor.RestoredAt
		resp.ThawPending, err = h.thawPending(ctx, req.Execution, req.Cursor.NextThaw, opts)
		return resp, err
	case "", ModePlan:
	default:
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("planner mode %q: want %q or %q", req.Mode, ModePlan, ModeThaw)}
	}

	cur := Cursor{}
	if req.Cursor != nil {
		cur = *req.Cursor
	} else {
		if err := h.check(ctx, target); err != nil {
			return Response{}, err
		}
		at, err := h.moment(ctx, opts)
		if err != nil {
			return Response{}, err
		}
		cur.RestoredAt = at.UTC().Format(time.RFC3339Nano)
	}
	at, err := time.Parse(time.RFC3339Nano, cur.RestoredAt)
	if err != nil {
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("cursor restoredAt %q: %v", cur.RestoredAt, err)}
	}
	cur.Invocations++
	w := &writer{h: h, ctx: ctx, execution: req.Execution, cur: &cur, opts: opts, target: target}
	done, err := h.walk(ctx, w, opts, at)
	if err != nil {
		return Response{}, err
	}
	if err := w.flush(); err != nil {
		return Response{}, err
	}
	h.Logger.InfoContext(ctx, "planned", "execution", req.Execution, "invocation", cur.Invocations, "done", done,
		"restoredAt", cur.RestoredAt, "listed", cur.Listed, "new", cur.New, "changed", cur.Changed,
		"unchanged", cur.Unchanged, "kept", cur.Kept, "archived", cur.Archived, "batches", cur.NextBatch)
	if done {
		if err := nothingToRestore(cur, h.Config.BackupBucket); err != nil {
			return Response{}, err
		}
		resp.ThawPending = cur.ThawRequested
	}
	resp.Cursor, resp.Done, resp.RestoredAt = cur, done, cur.RestoredAt
	return resp, nil
}

// check runs before anything is written: the target must be allowed, and every bucket must exist.
func (h *Handler) check(ctx context.Context, target string) error {
	if !slices.Contains(h.Config.RestoreTargets, target) {
		return &fault.InvalidInput{Msg: fmt.Sprintf("bucket %q is not an allowed restore target (RESTORE_TARGETS: %s)", target, strings.Join(h.Config.RestoreTargets, ", "))}
	}
	if target == h.Config.BackupBucket || target == h.Config.RunBucket {
		return &fault.InvalidInput{Msg: fmt.Sprintf("cannot restore into the %s bucket itself", map[bool]string{true: "backup", false: "run"}[target == h.Config.BackupBucket])}
	}
	return listing.RequireBuckets(ctx, h.S3,
		listing.Bucket{Role: "backup", Name: h.Config.BackupBucket}, listing.Bucket{Role: "run", Name: h.Config.RunBucket}, listing.Bucket{Role: "target", Name: target})
}

// moment resolves "at": a timestamp, a backup execution's finishedAt, or (for a single version)
// that version's own time.
func (h *Handler) moment(ctx context.Context, opts restoreinput.Options) (time.Time, error) {
	if opts.VersionID != "" && opts.At == "" {
		out, err := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.Config.BackupBucket), Key: aws.String(opts.Keys[0]), VersionId: aws.String(opts.VersionID)})
		if err != nil {
			if fault.IsNotFound(err) || fault.IsCode(err, "InvalidArgument", "BadRequest") {
				return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("version %q of key %q is not in backup bucket %q", opts.VersionID, opts.Keys[0], h.Config.BackupBucket)}
			}
			return time.Time{}, fmt.Errorf("head version: %w", err)
		}
		return aws.ToTime(out.LastModified), nil
	}
	t, isTime, err := restoreinput.ParseMoment(opts.At)
	if err != nil || isTime {
		return t, err
	}
	key := batch.ReportKey(opts.At)
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
	if err != nil {
		if fault.IsNotFound(err) {
			return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("no backup execution named %q: s3://%s/%s does not exist", opts.At, h.Config.RunBucket, key)}
		}
		return time.Time{}, fmt.Errorf("read report of %q: %w", opts.At, err)
	}
	defer obj.Body.Close()
	var rep struct {
		FinishedAt string `json:"finishedAt"`
		RestoredAt string `json:"restoredAt"`
	}
	data, err := io.ReadAll(obj.Body)
	if err == nil {
		err = json.Unmarshal(data, &rep)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read report of %q: %w", opts.At, err)
	}
	if rep.RestoredAt != "" {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("execution %q is a restore, not a backup", opts.At)}
	}
	t, err = time.Parse(time.RFC3339Nano, rep.FinishedAt)
	if err != nil {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("report of %q has no usable finishedAt (%q)", opts.At, rep.FinishedAt)}
	}
	return t, nil
}

// walk plans keys until the selection is exhausted (done) or the invocation's budget is spent.
func (h *Handler) walk(ctx context.Context, w *writer, opts restoreinput.Options, at time.Time) (bool, error) {
	if opts.VersionID != "" {
		return true, h.single(ctx, w, opts)
	}
	scopes, exact := opts.Scopes()
	stopAt := lambdafn.StopAt(ctx)
	var processed int64
	for w.cur.Scope < len(scopes) {
		scope := scopes[w.cur.Scope]
		versions := listing.NewVersions(h.S3, h.Config.BackupBucket, scope, w.cur.After)
		startAfter := ""
		if w.cur.After != "" {
			startAfter = opts.TargetPrefix + w.cur.After
		}
		targets := listing.NewObjects(h.S3, w.target, opts.TargetPrefix+scope, startAfter)
		for {
			if (h.Config.MaxKeysPerInvocation > 0 && processed >= h.Config.MaxKeysPerInvocation) || (!stopAt.IsZero() && time.Now().After(stopAt)) {
				return false, nil
			}
			key, history, ok, err := versions.Next(ctx)
			if err != nil {
				return false, err
			}
			if !ok || (exact && key != scope) {
				break
			}
			tgt, err := targetFor(ctx, targets, opts.TargetPrefix+key)
			if err != nil {
				return false, err
			}
			if err := w.key(key, history, at, tgt); err != nil {
				return false, err
			}
			w.cur.After = key
			processed++
		}
		w.cur.Scope++
		w.cur.After = ""
	}
	return true, nil
}

// single plans the one version named by versionId.
func (h *Handler) single(ctx context.Context, w *writer, opts restoreinput.Options) error {
	key := opts.Keys[0]
	out, err := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.Config.BackupBucket), Key: aws.String(key), VersionId: aws.String(opts.VersionID)})
	if err != nil {
		if fault.IsNotFound(err) || fault.IsCode(err, "InvalidArgument", "BadRequest", "MethodNotAllowed") {
			return &fault.InvalidInput{Msg: fmt.Sprintf("version %q of key %q is not a restorable version in backup bucket %q", opts.VersionID, key, h.Config.BackupBucket)}
		}
		return fmt.Errorf("head version: %w", err)
	}
	v := listing.Version{
		Object:    change.Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), LastModified: aws.ToTime(out.LastModified)},
		VersionID: opts.VersionID, StorageClass: string(out.StorageClass),
	}
	targets := listing.NewObjects(h.S3, w.target, opts.TargetPrefix+key, "")
	tgt, err := targetFor(ctx, targets, opts.TargetPrefix+key)
	if err != nil {
		return err
	}
	return w.key(key, []listing.Version{v}, v.LastModified, tgt)
}

// targetFor advances the target listing to key and returns the target's object there, if any.
func targetFor(ctx context.Context, targets *listing.Objects, key string) (*change.Object, error) {
	for {
		t, err := targets.Peek(ctx)
		if err != nil || t == nil || t.Key > key {
			return nil, err
		}
		targets.Pop()
		if t.Key == key {
			return t, nil
		}
	}
}

// nothingToRestore turns an empty plan into a clear error when the selection or the moment is wrong.
func nothingToRestore(cur Cursor, backup string) error {
	switch {
	case cur.Listed > 0 || cur.Matched > 0:
		return nil
	case cur.Entries == 0:
		return &fault.InvalidInput{Msg: fmt.Sprintf("nothing in backup bucket %q matches the selection", backup)}
	default:
		return &fault.InvalidInput{Msg: fmt.Sprintf("%s is before the first backup of the selection: its earliest backed-up version is from %s; nothing was restored", cur.RestoredAt, cur.Earliest)}
	}
}

// writer turns planned keys into batch and thaw files.
type writer struct {
	h         *Handler
	ctx       context.Context
	execution string
	cur       *Cursor
	opts      restoreinput.Options
	target    string
	items     []batch.Item
	bytes     int64
	thaw      []batch.Item
}

func (w *writer) key(key string, history []listing.Version, at time.Time, tgt *change.Object) error {
	w.cur.Entries += int64(len(history))
	for _, v := range history {
		if e := v.LastModified.UTC().Format(time.RFC3339Nano); w.cur.Earliest == "" || e < w.cur.Earliest {
			w.cur.Earliest = e
		}
	}
	v := listing.AsOf(history, at)
	if v == nil {
		return nil // the key did not exist yet at that moment
	}
	w.cur.Matched++
	if v.DeleteMarker {
		return nil // the key was deleted at that moment
	}
	w.cur.Listed++
	it := batch.Item{Op: batch.OpCopy, Key: key, Size: v.Size, ETag: v.ETag, LastModified: v.LastModified, VersionID: v.VersionID}
	if w.opts.TargetPrefix != "" {
		it.DestKey = w.opts.TargetPrefix + key
	}
	switch {
	case tgt == nil:
		w.cur.New++
		it.Change = string(change.New)
	case change.Same(v.Object, *tgt):
		w.cur.Unchanged++
		return nil
	case !w.opts.OverwriteAllowed():
		w.cur.Kept++
		it.Op, it.Change, it.Reason = batch.OpKeep, "kept", "exists in the target with different content and overwrite is false: left untouched"
		return w.add(it)
	default:
		w.cur.Changed++
		it.Change = string(change.Changed)
	}
	w.cur.BytesToCopy += v.Size
	if archived(v.StorageClass) {
		w.cur.Archived++
		if !w.opts.DryRun {
			if err := w.h.thaw(w.ctx, it, w.opts); err != nil {
				return err
			}
			w.cur.ThawRequested++
			w.thaw = append(w.thaw, it)
		}
	}
	return w.add(it)
}

func (w *writer) add(it batch.Item) error {
	if w.opts.DryRun {
		return nil
	}
	w.items = append(w.items, it)
	w.bytes += it.Size
	if int64(len(w.items)) >= w.h.Config.BatchSize || w.bytes >= w.h.Config.BatchBytes || len(w.thaw) >= int(w.h.Config.BatchSize) {
		return w.flush()
	}
	return nil
}

// flush writes pending items as the next batch file and pending thaw requests as the next thaw
// file; names are deterministic so a retried invocation rewrites the same files.
func (w *writer) flush() error {
	header := batch.Header{Version: batch.Version, Source: w.h.Config.BackupBucket, Destination: w.target}
	if len(w.items) > 0 {
		if err := batch.Write(w.ctx, w.h.S3, w.h.Config.RunBucket, batch.Key(w.execution, w.cur.NextBatch), header, w.items); err != nil {
			return err
		}
		w.cur.NextBatch++
		w.items, w.bytes = w.items[:0], 0
	}
	if len(w.thaw) > 0 {
		if err := batch.Write(w.ctx, w.h.S3, w.h.Config.RunBucket, thawKey(w.execution, w.cur.NextThaw), header, w.thaw); err != nil {
			return err
		}
		w.cur.NextThaw++
		w.thaw = w.thaw[:0]
	}
	return nil
}

func thawKey(execution string, seq int) string {
	return fmt.Sprintf("%sthaw/%06d.jsonl", batch.WorkPrefix(execution), seq)
}

// archived reports whether a storage class must be thawed before its objects can be copied.
func archived(class string) bool {
	return class == string(types.StorageClassGlacier) || class == string(types.StorageClassDeepArchive)
}

// thaw asks S3 to make an archived version readable for opts.ThawDays days.
func (h *Handler) thaw(ctx context.Context, it batch.Item, opts restoreinput.Options) error {
	_, err := h.S3.RestoreObject(ctx, &s3.RestoreObjectInput{
		Bucket: aws.String(h.Config.BackupBucket), Key: aws.String(it.Key), VersionId: aws.String(it.VersionID),
		RestoreRequest: &types.RestoreRequest{
			Days:                 aws.Int32(int32(opts.ThawDays)),
			GlacierJobParameters: &types.GlacierJobParameters{Tier: types.Tier(opts.ThawTier)},
		},
	})
	if err != nil && !fault.IsCode(err, "RestoreAlreadyInProgress") {
		return fmt.Errorf("thaw %q version %s: %w", it.Key, it.VersionID, err)
	}
	return nil
}

// thawPending counts the archived versions of this restore that are not readable yet; a version
// whose thaw was never started or has lapsed is asked for again.
func (h *Handler) thawPending(ctx context.Context, execution string, files int, opts restoreinput.Options) (int64, error) {
	var pending atomic.Int64
	for n := range files {
		key := thawKey(execution, n)
		obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", key, err)
		}
		var items []batch.Item
		_, err = batch.Read(obj.Body, func(it batch.Item) error { items = append(items, it); return nil })
		obj.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", key, err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for _, it := range items {
			g.Go(func() error {
				out, err := h.S3.HeadObject(gctx, &s3.HeadObjectInput{Bucket: aws.String(h.Config.BackupBucket), Key: aws.String(it.Key), VersionId: aws.String(it.VersionID)})
				if err != nil {
					return fmt.Errorf("check thaw of %q: %w", it.Key, err)
				}
				restore := aws.ToString(out.Restore)
				switch {
				case strings.Contains(restore, `ongoing-request="false"`):
					return nil // readable
				case restore == "":
					if err := h.thaw(gctx, it, opts); err != nil {
						return err
					}
				}
				pending.Add(1)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
	}
	return pending.Load(), nil
}
