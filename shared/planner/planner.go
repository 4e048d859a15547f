// Package planner is the restore planner: it walks the versioned backup bucket's history in key
// order and, for each selected key, picks the version that was current at the requested moment;
// it compares that version with the restore target and writes work batches for the copier
// (missing or differing objects; differing ones only when overwriting is allowed). An exact
// restore, where the deployment allows it and into a versioned target only, also removes every
// target object in the selection that the backup did not hold at the moment, once the count of
// removals equals the one its input confirms: it refuses before anything runs otherwise. Versions in
// archive storage classes are thawed first with RestoreObject, and a second mode counts how
// many are still thawing. Like the lister, it returns a small cursor so that any bucket size
// takes several short invocations, and so does a thaw check of many archived versions. The
// thaw loop is bounded: it gives up with ThawIncomplete once the thaws have outlasted a multiple
// of their tier's documented retrieval time, and it stretches the wait between checks so that
// the whole loop stays within ThawHistoryBudget of the execution's 25,000 history events.
package planner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/bucketcheck"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
	"github.com/bucketvault/bucketvault/shared/runlog"
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
	GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, opts ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Defaults of the planner's settings.
const (
	// DefaultMaxKeysPerInvocation (PLANNER_MAX_KEYS) bounds the keys one planning invocation
	// walks; 0 means only its time budget does.
	DefaultMaxKeysPerInvocation = 0
	// DefaultThawCheckSeconds (THAW_CHECK_SECONDS) is the wait between two thaw checks of
	// archived versions; an execution's thawCheckSeconds overrides it.
	DefaultThawCheckSeconds = 3600
	// DefaultThawCheckMaxItems (THAW_CHECK_MAX_ITEMS) bounds the archived versions one
	// thaw-check invocation looks at, besides its time budget; 0 means only the time budget.
	DefaultThawCheckMaxItems = 100000
	// DefaultAllowExactRollback (ALLOW_EXACT_ROLLBACK, true or false) is whether restores may be
	// exact (restoreinput.Options.Exact): remove what the target holds in the selection that the
	// backup did not hold at the moment. Off unless the deployment turns it on.
	DefaultAllowExactRollback = false
	// ThawCheckConcurrency is how many HeadObject requests a thaw check has in flight.
	ThawCheckConcurrency = 16
	// ThawBoundFactor times the tier's documented retrieval time (ThawTime), and at least
	// MinThawBound, is how long a restore waits for its thaws before it gives up with
	// ThawIncomplete. S3 documents typical times, and large restores take longer.
	ThawBoundFactor = 2
	MinThawBound    = time.Hour
	// ThawHistoryBudget is how many of a Standard execution's 25,000 history events the thaw loop
	// may cost; the rest are for planning, retries, the Copy Map and the report. The planner
	// counts them as the restore definition spends them (ThawWaitEvents per wait,
	// ThawCheckEvents per thaw-check invocation) and waits longer between checks when the
	// thaws' time bound would not fit.
	ThawHistoryBudget = 10000
	// ThawWaitEvents: WaitStateEntered and WaitStateExited.
	ThawWaitEvents = 2
	// ThawCheckEvents: TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded,
	// TaskStateExited of CheckThaw, ChoiceStateEntered and ChoiceStateExited of MoreToCheck.
	ThawCheckEvents = 7
)

// ThawTime is the retrieval time S3 documents for a tier and archive storage class ("Understanding
// archive retrieval options", Amazon S3 User Guide): Expedited 1–5 minutes (GLACIER only),
// Standard 3–5 hours (GLACIER) or within 12 hours (DEEP_ARCHIVE), Bulk 5–12 hours (GLACIER) or
// within 48 hours (DEEP_ARCHIVE). It is 0 for a combination S3 does not offer.
func ThawTime(tier, class string) time.Duration {
	deep := class == string(types.StorageClassDeepArchive)
	switch types.Tier(tier) {
	case types.TierExpedited:
		if deep {
			return 0
		}
		return 5 * time.Minute
	case types.TierStandard:
		if deep {
			return 12 * time.Hour
		}
		return 5 * time.Hour
	case types.TierBulk:
		if deep {
			return 48 * time.Hour
		}
		return 12 * time.Hour
	}
	return 0
}

// Config is the planner's configuration, from its environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
	RestoreTargets                        []string
	BatchSize, BatchBytes                 int64
	MaxKeysPerInvocation                  int64
	ThawCheckSeconds                      int
	ThawCheckMaxItems                     int64
	AllowExactRollback                    bool
	// Destinations are the backup's further destinations (DESTINATIONS), which a restore may
	// read instead of the backup bucket.
	Destinations []destination.Destination
}

// ConfigFromEnv reads SOURCE_BUCKET (the default target), BACKUP_BUCKET, RUN_BUCKET (required),
// RESTORE_TARGETS (buckets a restore may write, comma-separated), BATCH_SIZE, BATCH_BYTES
// (batch.DefaultSize, batch.DefaultBytes), PLANNER_MAX_KEYS, THAW_CHECK_SECONDS and
// THAW_CHECK_MAX_ITEMS and ALLOW_EXACT_ROLLBACK (the Default constants above).
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		SourceBucket:         r.Required("SOURCE_BUCKET"),
		BackupBucket:         r.Required("BACKUP_BUCKET"),
		RunBucket:            r.Required("RUN_BUCKET"),
		RestoreTargets:       r.List("RESTORE_TARGETS"),
		BatchSize:            r.Int("BATCH_SIZE", batch.DefaultSize, 1, batch.MaxSize),
		BatchBytes:           r.Bytes("BATCH_BYTES", batch.DefaultBytes, 1, batch.MaxBytes),
		MaxKeysPerInvocation: r.Int("PLANNER_MAX_KEYS", DefaultMaxKeysPerInvocation, 0, 1<<40),
		ThawCheckSeconds:     int(r.Int("THAW_CHECK_SECONDS", DefaultThawCheckSeconds, restoreinput.MinThawCheckSeconds, restoreinput.MaxThawCheckSeconds)),
		ThawCheckMaxItems:    r.Int("THAW_CHECK_MAX_ITEMS", DefaultThawCheckMaxItems, 0, 1<<40),
		AllowExactRollback:   r.OneOf("ALLOW_EXACT_ROLLBACK", strconv.FormatBool(DefaultAllowExactRollback), "true", "false") == "true",
	}
	if err := r.Err(); err != nil {
		return c, err
	}
	var err error
	c.Destinations, err = destination.FromEnv(lookup, c.SourceBucket, c.BackupBucket, c.RunBucket)
	return c, err
}

// Position is the planner's own part of its cursor: where the walk over the backup's history is,
// what it has seen, and where a thaw check is. Only the planner reads it.
type Position struct {
	RestoredAt    string `json:"restoredAt"`    // the moment restored, RFC 3339
	Scope         int    `json:"scope"`         // index of the key range being walked
	After         string `json:"after"`         // last key planned in that range
	NextThaw      int    `json:"nextThaw"`      // thaw files written: 0 … NextThaw-1
	Entries       int64  `json:"entries"`       // history entries seen (versions and delete markers)
	Matched       int64  `json:"matched"`       // keys with an entry current at the moment
	Earliest      string `json:"earliest"`      // earliest LastModified seen, RFC 3339
	ThawRequested int64  `json:"thawRequested"` // archived versions asked to thaw while planning
	// A thaw check walks the thaw files in short invocations: ThawFile and ThawItem name the
	// next archived version to look at (file number, and item number within the file, from
	// 0), ThawPending counts those of this pass found not readable yet.
	ThawFile    int   `json:"thawFile"`
	ThawItem    int   `json:"thawItem"`
	ThawPending int64 `json:"thawPending"`
	// The thaw loop's bound: DEEP_ARCHIVE versions among those thawed (they set the documented
	// time), seconds of waiting scheduled so far, history events the loop has cost, and
	// thaw-check invocations in the current pass.
	ThawDeep   int64 `json:"thawDeep"`
	ThawWaited int64 `json:"thawWaited"`
	ThawEvents int64 `json:"thawEvents"`
	ThawCalls  int64 `json:"thawCalls"`
}

// Cursor carries the running totals (read by the reporter) and the planner's position between
// invocations.
type Cursor = report.Cursor[Position]

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

// Response tells the state machine whether to plan again, check thawing again, wait for it, or
// copy. Done is true once planning is complete (also in thaw mode). ManifestKey names the batch
// manifest the Copy Map reads; it is set once planning is done, except in a dry run.
// ThawChecked is true when ThawPending counts every archived version of the restore: after
// planning, and when a thaw check has walked all of them; until then a thaw check returns
// false with the count so far, and the state machine invokes it again.
type Response struct {
	Cursor          Cursor `json:"cursor"`
	Done            bool   `json:"done"`
	DryRun          bool   `json:"dryRun"`
	BatchPrefix     string `json:"batchPrefix"`
	ManifestKey     string `json:"manifestKey"`
	RestoredAt      string `json:"restoredAt"`
	TargetBucket    string `json:"targetBucket"`
	TargetPrefix    string `json:"targetPrefix"`
	ThawPending     int64  `json:"thawPending"`
	ThawChecked     bool   `json:"thawChecked"`
	ThawWaitSeconds int    `json:"thawWaitSeconds"`
}

// Handler is the planner function.
type Handler struct {
	S3     S3
	Config Config
	Logger *slog.Logger
	// Destinations, when set, are the further destinations' clients by name (a restore from
	// one, restoreinput.Options.From); nil opens them when a restore needs one.
	Destinations map[string]S3
	destMu       sync.Mutex
	fromName     string // the further destination this handler restores from ("" the backup bucket)
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
	if opts.Exact && !h.Config.AllowExactRollback {
		return Response{}, &fault.InvalidInput{Msg: "restore input: exact is not enabled in this deployment (ALLOW_EXACT_ROLLBACK is not true): an exact restore removes objects from the target; nothing was restored"}
	}
	target := opts.TargetBucket
	if target == "" {
		target = h.Config.SourceBucket
	}
	if h, err = h.from(ctx, opts, target); err != nil {
		return Response{}, err
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
		cur := *req.Cursor
		cur.Position.ThawEvents += ThawCheckEvents
		cur.Position.ThawCalls++
		checked, err := h.checkThaw(ctx, req.Execution, &cur.Position, opts)
		if err != nil {
			return Response{}, err
		}
		resp.Cursor, resp.Done, resp.RestoredAt = cur, true, cur.Position.RestoredAt
		resp.ManifestKey, resp.ThawPending, resp.ThawChecked = batch.ManifestKey(req.Execution), cur.Position.ThawPending, checked
		if checked && cur.Position.ThawPending > 0 {
			// The state machine waits, then checks again.
			if resp.ThawWaitSeconds, err = h.waitForThaw(ctx, req.Execution, &resp.Cursor.Position, opts, resp.ThawWaitSeconds, cur.Position.ThawCalls); err != nil {
				return Response{}, err
			}
		}
		if checked {
			// The next check, after the wait, starts a new pass.
			resp.Cursor.Position.ThawFile, resp.Cursor.Position.ThawItem, resp.Cursor.Position.ThawPending = 0, 0, 0
			resp.Cursor.Position.ThawCalls = 0
		}
		h.Logger.InfoContext(ctx, "thaw check", "execution", req.Execution, "checked", checked, "pending", resp.ThawPending,
			"file", cur.Position.ThawFile, "item", cur.Position.ThawItem, "files", cur.Position.NextThaw)
		return resp, nil
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
		if opts.Exact {
			if err := h.checkVersioned(ctx, target); err != nil {
				return Response{}, err
			}
		}
		at, err := h.moment(ctx, opts)
		if err != nil {
			return Response{}, err
		}
		cur.Position.RestoredAt = at.UTC().Format(time.RFC3339Nano)
	}
	at, err := time.Parse(time.RFC3339Nano, cur.Position.RestoredAt)
	if err != nil {
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("cursor restoredAt %q: %v", cur.Position.RestoredAt, err)}
	}
	cur.Totals.Invocations++
	w := &writer{h: h, ctx: ctx, execution: req.Execution, cur: &cur, opts: opts, target: target}
	done, err := h.walk(ctx, w, opts, at)
	if err != nil {
		return Response{}, err
	}
	if err := w.flush(); err != nil {
		return Response{}, err
	}
	t := cur.Totals
	h.Logger.InfoContext(ctx, "planned", "execution", req.Execution, "invocation", t.Invocations, "done", done,
		"restoredAt", cur.Position.RestoredAt, "listed", t.Listed, "new", t.New, "changed", t.Changed,
		"unchanged", t.Unchanged, "kept", t.Kept, "toDelete", t.ToDelete, "archived", t.Archived, "ambiguous", t.Ambiguous, "batches", t.Batches)
	if done {
		if err := nothingToRestore(cur, h.Config.BackupBucket); err != nil {
			return Response{}, err
		}
		if opts.Exact && !opts.DryRun && t.ToDelete != *opts.ConfirmRemovals {
			// Before the manifest: no batch of this plan ever runs, and nothing was thawed yet.
			return Response{}, &fault.RemovalsUnconfirmed{Msg: fmt.Sprintf("this exact restore would remove %d objects from s3://%s/%s, but confirmRemovals is %d: the target changed since the preview, or the count is wrong; nothing was copied or removed. Preview it again (dryRun) and confirm %d",
				t.ToDelete, target, opts.TargetPrefix, *opts.ConfirmRemovals, t.ToDelete)}
		}
		if opts.DryRun && t.Batches > 0 {
			// A dry run's batches hold only an exact restore's removals: the report names them.
			if err := batch.WritePreviewManifest(ctx, h.S3, h.Config.RunBucket, req.Execution, t.Batches); err != nil {
				return Response{}, err
			}
		}
		if !opts.DryRun {
			// Exactly the batches of this plan: a file a failed attempt left past them is never run.
			if err := batch.WriteManifest(ctx, h.S3, h.Config.RunBucket, req.Execution, t.Batches); err != nil {
				return Response{}, err
			}
			resp.ManifestKey = batch.ManifestKey(req.Execution)
		}
		resp.ThawPending, resp.ThawChecked = cur.Position.ThawRequested, true
		if cur.Position.ThawRequested > 0 && !opts.DryRun {
			if deferThaw(opts) {
				// Nothing was asked to thaw yet (see writer.key): the first check, right away, asks.
				resp.ThawWaitSeconds = 0
				cur.Position.ThawEvents += ThawWaitEvents
			} else if resp.ThawWaitSeconds, err = h.waitForThaw(ctx, req.Execution, &cur.Position, opts, resp.ThawWaitSeconds, h.passCalls(cur.Position)); err != nil {
				return Response{}, err
			}
		}
	}
	resp.Cursor, resp.Done, resp.RestoredAt = cur, done, cur.Position.RestoredAt
	return resp, nil
}

// check runs before anything is written: the target must be allowed, the backup and the target
// of a kind bucketvault supports (bucketcheck: a target's listing is merged with the plan too),
// and every bucket must exist.
func (h *Handler) check(ctx context.Context, target string) error {
	if !slices.Contains(h.Config.RestoreTargets, target) {
		return &fault.InvalidInput{Msg: fmt.Sprintf("bucket %q is not an allowed restore target (RESTORE_TARGETS: %s)", target, strings.Join(h.Config.RestoreTargets, ", "))}
	}
	if target == h.Config.BackupBucket || target == h.Config.RunBucket {
		return &fault.InvalidInput{Msg: fmt.Sprintf("cannot restore into the %s bucket itself", map[bool]string{true: "backup", false: "run"}[target == h.Config.BackupBucket])}
	}
	if err := bucketcheck.Supported("backup", h.Config.BackupBucket); err != nil {
		return err
	}
	if err := bucketcheck.Supported("restore target", target); err != nil {
		return err
	}
	return listing.RequireBuckets(ctx, h.S3,
		listing.Bucket{Role: "backup", Name: h.Config.BackupBucket}, listing.Bucket{Role: "run", Name: h.Config.RunBucket}, listing.Bucket{Role: "target", Name: target})
}

// checkVersioned refuses an exact restore into a target without versioning enabled: there a
// DeleteObject destroys the object (suspended: its null version) instead of putting a delete
// marker over it.
func (h *Handler) checkVersioned(ctx context.Context, target string) error {
	v, err := h.S3.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(target)})
	if err != nil {
		return fmt.Errorf("read versioning of restore target %q: %w", target, err)
	}
	if v.Status != types.BucketVersioningStatusEnabled {
		status := string(v.Status)
		if status == "" {
			status = "never enabled"
		}
		return &fault.TargetNotVersioned{Msg: fmt.Sprintf("an exact restore removes objects, so its target must have versioning enabled (a removal is then a delete marker, itself recoverable); bucket %q is %s; nothing was restored", target, status)}
	}
	return nil
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
	return runlog.Moment(ctx, h.S3, h.Config.RunBucket, opts.At)
}

// walk plans keys until the selection is exhausted (done) or the invocation's budget is spent.
// It reads the backup's history and the target side by side, in key order; in an exact restore a
// target object whose key the backup never had in the selection is removed.
func (h *Handler) walk(ctx context.Context, w *writer, opts restoreinput.Options, at time.Time) (bool, error) {
	if opts.VersionID != "" {
		return true, h.single(ctx, w, opts)
	}
	scopes, keysOnly := opts.Scopes()
	stopAt := lambdafn.StopAt(ctx)
	var processed int64
	spent := func() bool {
		// At least one key per invocation, so that the loop always moves on.
		return processed > 0 && ((h.Config.MaxKeysPerInvocation > 0 && processed >= h.Config.MaxKeysPerInvocation) || (!stopAt.IsZero() && time.Now().After(stopAt)))
	}
	pos := &w.cur.Position
	type backupKey struct {
		key     string
		history []listing.Version
	}
	for pos.Scope < len(scopes) {
		scope := scopes[pos.Scope]
		versions := listing.NewVersions(h.S3, h.Config.BackupBucket, scope, pos.After)
		startAfter := ""
		if pos.After != "" {
			startAfter = opts.TargetPrefix + pos.After
		}
		targets := listing.NewObjects(h.S3, w.target, opts.TargetPrefix+scope, startAfter)
		var next *backupKey // the backup's next key, read and not planned yet
		ended := false      // the backup has no more keys in this scope
		for {
			if spent() {
				return false, nil
			}
			if next == nil && !ended {
				key, history, ok, err := versions.Next(ctx)
				if err != nil {
					return false, err
				}
				if ok && (!keysOnly || key == scope) {
					next = &backupKey{key, history}
				} else {
					ended = true
				}
			}
			if opts.Exact {
				nextKey := ""
				if next != nil {
					nextKey = next.key
				}
				t, err := unmatched(ctx, targets, opts.TargetPrefix, scope, keysOnly, ended, nextKey)
				if err != nil {
					return false, err
				}
				if t != nil {
					key := strings.TrimPrefix(t.Key, opts.TargetPrefix)
					if err := w.remove(key, *t, "not in the backup: never backed up"); err != nil {
						return false, err
					}
					pos.After = key
					processed++
					continue
				}
			}
			if ended {
				break
			}
			tgt, err := targetFor(ctx, targets, opts.TargetPrefix+next.key)
			if err != nil {
				return false, err
			}
			if err := w.key(next.key, next.history, at, tgt); err != nil {
				return false, err
			}
			pos.After = next.key
			next = nil
			processed++
		}
		pos.Scope++
		pos.After = ""
	}
	return true, nil
}

// unmatched pops and returns the target's next object in the selection that comes before the
// backup's next key (any, once the backup has no more keys in the scope): one that the backup
// never had. Target objects outside the selection (with keysOnly, those that only start with the
// key) are passed over; so is the object named by targetPrefix itself, the folder restored into.
func unmatched(ctx context.Context, targets *listing.Objects, targetPrefix, scope string, keysOnly, ended bool, nextKey string) (*change.Object, error) {
	for {
		t, err := targets.Peek(ctx)
		if err != nil || t == nil {
			return nil, err
		}
		if keysOnly && t.Key != targetPrefix+scope {
			return nil, nil // the listing's prefix is the key: only longer keys follow, none selected
		}
		if !ended && t.Key >= targetPrefix+nextKey {
			return nil, nil
		}
		targets.Pop()
		if t.Key == targetPrefix {
			continue
		}
		return t, nil
	}
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
		Object: change.Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), LastModified: aws.ToTime(out.LastModified),
			StorageClass: string(out.StorageClass)},
		VersionID: opts.VersionID,
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
	pos := cur.Position
	switch {
	case cur.Totals.Listed > 0 || pos.Matched > 0:
		return nil
	case pos.Entries == 0:
		return &fault.InvalidInput{Msg: fmt.Sprintf("nothing in backup bucket %q matches the selection", backup)}
	default:
		return &fault.InvalidInput{Msg: fmt.Sprintf("%s is before the first backup of the selection: its earliest backed-up version is from %s; nothing was restored", pos.RestoredAt, pos.Earliest)}
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
	t, pos := &w.cur.Totals, &w.cur.Position
	pos.Entries += int64(len(history))
	for _, v := range history {
		if e := v.LastModified.UTC().Format(time.RFC3339Nano); pos.Earliest == "" || e < pos.Earliest {
			pos.Earliest = e
		}
	}
	v, ambiguity := listing.AsOf(history, at)
	if v == nil {
		// The key did not exist yet at that moment.
		if w.opts.Exact && tgt != nil {
			return w.remove(key, *tgt, "not in the backup at the moment: backed up only later")
		}
		return nil
	}
	pos.Matched++
	if ambiguity != "" {
		t.Ambiguous++
		w.h.Logger.WarnContext(w.ctx, "ambiguous moment", "execution", w.execution, "key", key, "note", ambiguity)
	}
	if v.DeleteMarker {
		// The key was deleted at that moment.
		if w.opts.Exact && tgt != nil {
			return w.remove(key, *tgt, "deleted as of the moment")
		}
		return nil
	}
	t.Listed++
	it := batch.Item{Op: batch.OpCopy, Key: key, Size: v.Size, ETag: v.ETag, LastModified: v.LastModified, VersionID: v.VersionID, Note: ambiguity}
	if w.opts.TargetPrefix != "" {
		it.DestKey = w.opts.TargetPrefix + key
	}
	switch {
	case tgt == nil:
		t.New++
		it.Change = string(change.New)
	case change.Same(v.Object, *tgt):
		// Provably the same content (size and ETag): nothing to copy. Anything less is copied,
		// or kept and reported when overwriting is not allowed.
		t.Unchanged++
		return nil
	case !w.opts.OverwriteAllowed():
		t.Kept++
		it.Op, it.Change, it.Reason = batch.OpKeep, "kept", "exists in the target with different content and overwrite is false: left untouched"
		return w.add(it)
	default:
		t.Changed++
		it.Change = string(change.Changed)
	}
	t.BytesToCopy += v.Size
	if archived(v.StorageClass) {
		t.Archived++
		deep := v.StorageClass == string(types.StorageClassDeepArchive)
		if deep && ThawTime(w.opts.ThawTier, v.StorageClass) == 0 {
			return &fault.InvalidInput{Msg: fmt.Sprintf("thawTier %s is not offered for DEEP_ARCHIVE versions (%q is one): use Standard (within 12 hours) or Bulk (within 48 hours); nothing was thawed",
				w.opts.ThawTier, key)}
		}
		if !w.opts.DryRun {
			// Expedited thaws wait for the end of planning, which refuses the restore if any
			// version is in DEEP_ARCHIVE, and so do an exact restore's, which planning may refuse
			// for its removals; the first thaw check asks for them.
			if !deferThaw(w.opts) {
				if err := w.h.thaw(w.ctx, it, w.opts); err != nil {
					return err
				}
			}
			pos.ThawRequested++
			if deep {
				pos.ThawDeep++
			}
			w.thaw = append(w.thaw, it)
		}
	}
	return w.add(it)
}

// remove plans the removal of the target's object tgt, restored key key, in an exact restore.
func (w *writer) remove(key string, tgt change.Object, why string) error {
	w.cur.Totals.ToDelete++
	it := batch.Item{Op: batch.OpDelete, Key: key, Change: "removed", Size: tgt.Size, ETag: tgt.ETag, LastModified: tgt.LastModified, Reason: why}
	if w.opts.TargetPrefix != "" {
		it.DestKey = tgt.Key
	}
	return w.add(it)
}

// add queues an item for the next batch file. A dry run writes only removals, which its report
// names; everything else it only counts.
func (w *writer) add(it batch.Item) error {
	if w.opts.DryRun && it.Op != batch.OpDelete {
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
	header := batch.Header{Version: batch.Version, Source: w.h.Config.BackupBucket, Destination: w.target, SourceName: w.h.fromName}
	if len(w.items) > 0 {
		if err := batch.Write(w.ctx, w.h.S3, w.h.Config.RunBucket, batch.Key(w.execution, w.cur.Totals.Batches), header, w.items); err != nil {
			return err
		}
		w.cur.Totals.Batches++
		w.items, w.bytes = w.items[:0], 0
	}
	if len(w.thaw) > 0 {
		if err := batch.Write(w.ctx, w.h.S3, w.h.Config.RunBucket, batch.ThawKey(w.execution, w.cur.Position.NextThaw), header, w.thaw); err != nil {
			return err
		}
		w.cur.Position.NextThaw++
		w.thaw = w.thaw[:0]
	}
	return nil
}

// deferThaw reports whether planning leaves the thaws for the first thaw check to ask for: an
// Expedited restore, and an exact one, which its confirmation may still refuse.
func deferThaw(opts restoreinput.Options) bool {
	return opts.ThawTier == string(types.TierExpedited) || opts.Exact
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

// thawBound is how long the restore waits for its thaws: ThawBoundFactor times the documented
// retrieval time of its tier for the slowest class among them, and at least MinThawBound.
func thawBound(opts restoreinput.Options, pos Position) time.Duration {
	class := string(types.StorageClassGlacier)
	if pos.ThawDeep > 0 {
		class = string(types.StorageClassDeepArchive)
	}
	return max(ThawBoundFactor*ThawTime(opts.ThawTier, class), MinThawBound)
}

// passCalls estimates the thaw-check invocations of one pass before any pass has run: one per
// ThawCheckMaxItems archived versions.
func (h *Handler) passCalls(pos Position) int64 {
	if n := h.Config.ThawCheckMaxItems; n > 0 {
		return max((pos.ThawRequested+n-1)/n, 1)
	}
	return 1
}

// waitForThaw decides the wait before the next thaw check and accounts for it in pos, or gives
// up with ThawIncomplete when the thaws have outlasted their bound or the history budget. The
// wait is the requested one (at least restoreinput.MinThawCheckSeconds), stretched when the rest
// of the bound at that pace would cost more events than the budget has left: a round is one wait
// and calls thaw-check invocations.
func (h *Handler) waitForThaw(ctx context.Context, execution string, pos *Position, opts restoreinput.Options, requested int, calls int64) (int, error) {
	bound := thawBound(opts, *pos)
	waited := time.Duration(pos.ThawWaited) * time.Second
	perRound := ThawWaitEvents + ThawCheckEvents*max(calls, 1)
	budget := ThawHistoryBudget - pos.ThawEvents
	if waited >= bound || budget < perRound {
		why := fmt.Sprintf("after %s of waiting, the bound for thawTier %s (%s, %d× S3's documented %s, at least %s)",
			waited, opts.ThawTier, thawClassName(*pos), ThawBoundFactor, ThawTime(opts.ThawTier, thawClassName(*pos)), MinThawBound)
		if waited < bound {
			why = fmt.Sprintf("after %s of waiting and %d history events of thaw checks, the restore's budget of %d of the execution's 25,000", waited, pos.ThawEvents, ThawHistoryBudget)
		}
		return 0, &fault.ThawIncomplete{Msg: fmt.Sprintf("%d of %d archived versions are still thawing %s; nothing was copied, every object is named in the report. Thaws already done stay readable for thawDays (%d) days: run the restore again to copy them",
			pos.ThawPending, pos.ThawRequested, why, opts.ThawDays)}
	}
	wait := max(requested, restoreinput.MinThawCheckSeconds)
	left := int64((bound - waited) / time.Second)
	rounds := budget / perRound
	if need := (left + rounds - 1) / rounds; int64(wait) < need {
		h.Logger.InfoContext(ctx, "thaw wait stretched to fit the execution history", "execution", execution,
			"requested", wait, "wait", need, "rounds", rounds, "eventsPerRound", perRound)
		wait = int(need)
	}
	pos.ThawWaited += int64(wait)
	pos.ThawEvents += ThawWaitEvents
	return wait, nil
}

func thawClassName(pos Position) string {
	if pos.ThawDeep > 0 {
		return string(types.StorageClassDeepArchive)
	}
	return string(types.StorageClassGlacier)
}

// checkThaw goes on with the thaw check at pos: it looks at the restore's archived versions in
// thaw-file order, adding those not readable yet to pos.ThawPending and asking again for any
// whose thaw was never started or has lapsed, until it has looked at all of them (checked) or
// the invocation's budget is spent: its stop time (lambdafn.StopAt) or ThawCheckMaxItems
// versions. It looks at one version at least, so that a pass always moves on.
func (h *Handler) checkThaw(ctx context.Context, execution string, pos *Position, opts restoreinput.Options) (checked bool, err error) {
	stopAt := lambdafn.StopAt(ctx)
	var looked int64
	spent := func() bool {
		return looked > 0 && ((h.Config.ThawCheckMaxItems > 0 && looked >= h.Config.ThawCheckMaxItems) || (!stopAt.IsZero() && time.Now().After(stopAt)))
	}
	for pos.ThawFile < pos.NextThaw {
		if spent() {
			return false, nil
		}
		key := batch.ThawKey(execution, pos.ThawFile)
		items, err := h.readThaw(ctx, key)
		if err != nil {
			return false, err
		}
		if pos.ThawItem > len(items) {
			return false, &fault.InvalidInput{Msg: fmt.Sprintf("thaw check cursor: item %d of %s, which has %d", pos.ThawItem, key, len(items))}
		}
		var pending atomic.Int64
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(ThawCheckConcurrency)
		for pos.ThawItem < len(items) && !spent() {
			it := items[pos.ThawItem]
			g.Go(func() error {
				readable, err := h.thawed(gctx, it, opts)
				if err == nil && !readable {
					pending.Add(1)
				}
				return err
			})
			pos.ThawItem++
			looked++
		}
		if err := g.Wait(); err != nil {
			return false, err
		}
		pos.ThawPending += pending.Load()
		if pos.ThawItem < len(items) {
			return false, nil
		}
		pos.ThawFile++
		pos.ThawItem = 0
	}
	return true, nil
}

// thawed reports whether an archived version is readable; one whose thaw was never started or
// has lapsed is asked for again.
func (h *Handler) thawed(ctx context.Context, it batch.Item, opts restoreinput.Options) (bool, error) {
	out, err := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.Config.BackupBucket), Key: aws.String(it.Key), VersionId: aws.String(it.VersionID)})
	if err != nil {
		return false, fmt.Errorf("check thaw of %q: %w", it.Key, err)
	}
	restore := aws.ToString(out.Restore)
	switch {
	case strings.Contains(restore, `ongoing-request="false"`):
		return true, nil
	case restore == "":
		if err := h.thaw(ctx, it, opts); err != nil {
			return false, err
		}
	}
	return false, nil
}

// readThaw reads one thaw file.
func (h *Handler) readThaw(ctx context.Context, key string) ([]batch.Item, error) {
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer obj.Body.Close()
	var items []batch.Item
	if _, err := batch.Read(obj.Body, func(it batch.Item) error { items = append(items, it); return nil }); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return items, nil
}
