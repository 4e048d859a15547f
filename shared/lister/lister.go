// Package lister is the backup lister: it merges the source and backup listings in key order,
// classifies every key (new, changed, unchanged, deleted), writes work batches to the run bucket,
// and returns a small cursor so that big buckets take many invocations, each well inside the
// Lambda time limit. Memory holds two listing pages per bucket and one batch of each kind,
// whatever the size of the bucket.
//
// Copies and deletions go into batches of their own. The invocation that finishes the listing
// applies the guards (package guard) and writes the manifest of the batches the Map runs: every
// copy batch, and the deletion batches only when the deletion guard passes. New and changed
// objects only add versions, so they are copied whatever the guards say.
//
// Filters (package filter: the deployment's FILTERS, or the execution's "filters") narrow the
// listing to the prefixes an include rule can match (listed one after the other, in key order),
// and decide on every key before it is classified: key, size and age rules cost no request; a
// tag rule is read (GetObjectTagging on the source, DefaultTagConcurrency at a time) only for an
// object that would otherwise be copied, never for an unchanged one. An excluded key is neither
// copied nor marked deleted, unless deleteExcluded; its ETag index entry is carried as it is.
package lister

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/bucketcheck"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/etagindex"
	"github.com/bucketvault/bucketvault/shared/execinput"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/filter"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/runlock"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// S3 is what the lister needs of an S3 client.
type S3 interface {
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, opts ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	// GetObjectTagging reads a source object's tags, only when a filter has a tag rule.
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// What the lister does with a new or changed source object in an archive storage class
// (ARCHIVED_SOURCES). Such an object cannot be copied until it is restored (thawed).
const (
	// ArchivedSkip leaves it out and names it, with its class, among the report's skips; the
	// run can succeed.
	ArchivedSkip = "skip"
	// ArchivedFail tries to copy it like any other; S3 refuses (InvalidObjectState) unless it
	// has been thawed, and the refusal is a named failure: the run ends BackupIncomplete.
	ArchivedFail = "fail"
)

// ChangeExcluded is the Change of a deletion item whose key the source still has (package batch).
const ChangeExcluded = batch.ChangeExcluded

// Defaults of the lister's own settings. The batch sizes are package batch's (batch.DefaultSize,
// batch.DefaultBytes), the guards package guard's.
const (
	// DefaultMaxKeysPerInvocation 0 takes keys until the invocation's time budget runs out.
	DefaultMaxKeysPerInvocation = 0
	// DefaultArchivedSources skips archived sources and names them.
	DefaultArchivedSources = ArchivedSkip
	// DefaultTagConcurrency is how many GetObjectTagging requests a filter's tag rules send at
	// once.
	DefaultTagConcurrency = 16
	// DefaultChunkKeys is how many merged keys wait, behind a key whose tags are to be read, for
	// the tags of the chunk to be read together before their work items are written;
	// DefaultChunkTags ends a chunk early once that many of its keys need their tags read.
	DefaultChunkKeys = 1000
	DefaultChunkTags = 4 * DefaultTagConcurrency
	// DefaultEarlyCopyBatches bounds the copy batches a range's child execution copies itself as
	// soon as the range is listed: an Inline Map of about 7 history events per batch, well
	// inside the child's 25,000; the Copy Map runs a range's batches beyond it.
	DefaultEarlyCopyBatches = 1000
)

// Config is the lister's configuration, from its environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
	BatchSize                             int64 // items per batch file
	BatchBytes                            int64 // bytes to copy per batch file
	MaxKeysPerInvocation                  int64 // 0: until the time budget runs out
	Guards                                guard.Limits
	ArchivedSources                       string // ArchivedSkip or ArchivedFail
	// Filter is the deployment's filters (FILTERS); nil backs up everything. An execution's
	// "filters" input replaces it for that run.
	Filter *filter.Filter
	// Ranges is the fewest key-space ranges a big bucket is listed in (LISTER_RANGES); 0 lists
	// every bucket in one sequence; RangesAuto (the default, "auto") lists in ranges a source
	// of AutoRangeKeys source keys or more (how many: DefaultRanges).
	Ranges int
	// AutoRangeKeys is the size from which LISTER_RANGES=auto lists in ranges:
	// DefaultAutoRangeKeys (tests lower it).
	AutoRangeKeys int64
	// SpillKeys is how many source keys a range lister lists before it splits the rest of its
	// range into new ranges (LISTER_SPILL_KEYS; more when the hints said the range is bigger:
	// spillAt); 0 never.
	SpillKeys int64
	// ListConcurrency is how many ranges are listed at once (LISTER_CONCURRENCY): the ListRanges
	// Map's MaxConcurrencyPath reads it from the split's response.
	ListConcurrency int
	// Destinations are the further destinations (DESTINATIONS, package destination), each
	// merged with the one source listing.
	Destinations []destination.Destination
}

// ConfigFromEnv reads SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET (required), BATCH_SIZE, BATCH_BYTES,
// LISTER_MAX_KEYS, LISTER_RANGES, LISTER_CONCURRENCY, LISTER_SPILL_KEYS, the guards' MAX_DELETE_PERCENT, DELETE_GUARD_FLOOR, MAX_CHANGE_PERCENT and
// CHANGE_GUARD_FLOOR, ARCHIVED_SOURCES (skip or fail) and FILTERS (package filter's JSON); each
// defaults to its Default… constant (FILTERS: none).
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		SourceBucket:         r.Required("SOURCE_BUCKET"),
		BackupBucket:         r.Required("BACKUP_BUCKET"),
		RunBucket:            r.Required("RUN_BUCKET"),
		BatchSize:            r.Int("BATCH_SIZE", batch.DefaultSize, 1, batch.MaxSize),
		BatchBytes:           r.Bytes("BATCH_BYTES", batch.DefaultBytes, 1, batch.MaxBytes),
		MaxKeysPerInvocation: r.Int("LISTER_MAX_KEYS", DefaultMaxKeysPerInvocation, 0, 1<<40),
		Guards: guard.Limits{
			Delete: guard.Limit{
				MaxPercent: float64(r.Int("MAX_DELETE_PERCENT", guard.DefaultMaxDeletePercent, 0, 100)),
				Floor:      r.Int("DELETE_GUARD_FLOOR", guard.DefaultDeleteFloor, guard.MinFloor, 1<<40),
			},
			Change: guard.Limit{
				MaxPercent: float64(r.Int("MAX_CHANGE_PERCENT", guard.DefaultMaxChangePercent, 0, 100)),
				Floor:      r.Int("CHANGE_GUARD_FLOOR", guard.DefaultChangeFloor, guard.MinFloor, 1<<40),
			},
		},
		ArchivedSources: r.OneOf("ARCHIVED_SOURCES", DefaultArchivedSources, ArchivedSkip, ArchivedFail),
		Ranges:          int(r.IntOrWord("LISTER_RANGES", "auto", RangesAuto, DefaultRanges, 0, DefaultMaxRanges)),
		ListConcurrency: int(r.Int("LISTER_CONCURRENCY", DefaultListConcurrency, 1, MaxListConcurrency)),
		AutoRangeKeys:   DefaultAutoRangeKeys,
		SpillKeys:       r.Int("LISTER_SPILL_KEYS", DefaultSpillKeys, 0, MaxSpillKeys),
	}
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	f, err := filter.FromEnv(lookup)
	if err != nil {
		return Config{}, err
	}
	c.Filter = f
	if err := distinctBuckets(c.SourceBucket, c.BackupBucket, c.RunBucket); err != nil {
		return Config{}, err
	}
	if c.Destinations, err = destination.FromEnv(lookup, c.SourceBucket, c.BackupBucket, c.RunBucket); err != nil {
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

// Position is where the merge stands, which only the lister reads: the last key merged, and how
// many copy and deletion batches this execution's successful invocations wrote (copy batches
// batch.Key 0 … CopyBatches-1, deletion batches batch.DeleteKey 0 … DeleteBatches-1; their sum is
// the totals' Batches).
type Position struct {
	After         string `json:"after"`
	CopyBatches   int    `json:"copyBatches"`
	DeleteBatches int    `json:"deleteBatches"`
	// Index is where the execution stands in the ETag index (package etagindex).
	Index IndexPosition `json:"index"`
	// Now is the run's clock for the filters' age rules, taken by its first invocation, so that
	// every invocation judges an object's age against the same moment.
	Now time.Time `json:"now"`
	// Ranges is how many key-space ranges the split and the plan's passes wrote (0: the listing
	// is one sequence); the plan reads their results. Examined is how many of them the plan
	// already looked at for the rest of a range that turned out large, Resplits how many passes
	// of ranges it added.
	Ranges   int `json:"ranges,omitempty"`
	Examined int `json:"examined,omitempty"`
	Resplits int `json:"resplits,omitempty"`
	// Hints, in a range lister's cursor, are every DefaultHintEvery-th source key it passed, for
	// the next run's split; SinceHint counts the source keys after the last one.
	Hints     []Hint `json:"hints,omitempty"`
	SinceHint int64  `json:"sinceHint,omitempty"`
	// Destinations are the further destinations' batch counts, in the setting's order
	// (batch.DestinationKey and batch.DestinationDeleteKey number them).
	Destinations []DestinationPosition `json:"destinations,omitempty"`
}

// DestinationPosition counts one further destination's copy and deletion batches.
type DestinationPosition struct {
	CopyBatches   int `json:"copyBatches"`
	DeleteBatches int `json:"deleteBatches"`
}

// IndexPosition is the lister's place in the ETag index: the generation the first invocation
// found current, how far this execution has read it, and the number of the next carry file it
// writes. When the listing is done the lister commits a generation of CarryFiles = NextCarry
// carry files and this execution's copy batches.
type IndexPosition struct {
	Read      etagindex.Generation `json:"read"`
	At        etagindex.Position   `json:"at"`
	NextCarry int                  `json:"nextCarry"`
}

// Cursor carries the totals and the position between invocations.
type Cursor = report.Cursor[Position]

// Request is the lister's payload, built by the state machine's Split, List, ListRange and Plan
// states.
type Request struct {
	Execution string          `json:"execution"`
	Input     json.RawMessage `json:"input"`
	Cursor    *Cursor         `json:"cursor"`
	// Phase is "" (list the whole key space, one invocation after another), PhaseSplit,
	// PhaseRange or PhasePlan.
	Phase string `json:"phase,omitempty"`
	// Range is the key-space range a PhaseRange invocation lists.
	Range *Range `json:"range,omitempty"`
}

// Response tells the state machine whether to list again, and what to copy.
type Response struct {
	Cursor Cursor `json:"cursor"`
	Done   bool   `json:"done"`
	DryRun bool   `json:"dryRun"`
	// ManifestKey names the manifest of the batches the Copy state runs (its ItemReader reads
	// it); ManifestBatches is how many it lists, 0 skipping the Copy state. Both are set by the
	// invocation that finishes a listing that is not a dry run.
	ManifestKey     string `json:"manifestKey"`
	ManifestBatches int    `json:"manifestBatches"`
	// Guards are the guards' verdicts, set by the invocation that finishes the listing; the
	// reporter decides the run's status from them.
	Guards []report.Guard `json:"guards"`
	// Ranges, set by the split, is how many key-space ranges RangesKey lists (JSON Lines, one
	// Range a line) for the ListRanges Map; 0 lists the key space in one sequence.
	Ranges    int    `json:"ranges"`
	RangesKey string `json:"rangesKey"`
	// ListConcurrency, set by the split, is how many ranges the ListRanges Map lists at once
	// (its MaxConcurrencyPath).
	ListConcurrency int `json:"listConcurrency"`
	// CopyBatches, set by the invocation that finishes a key-space range (not in a dry run),
	// are the range's first copy batches (at most DefaultEarlyCopyBatches), which its child
	// execution copies at once, while other ranges still list; never null.
	CopyBatches []string `json:"copyBatches"`
}

// Handler is the lister function.
type Handler struct {
	S3     S3
	Config Config
	Logger *slog.Logger
	Now    func() time.Time
	// Destinations, when set, are the further destinations' clients by name; nil opens them
	// from Config.Destinations on first use (destination.Open).
	Destinations map[string]S3
	destMu       sync.Mutex
}

// Handle runs one lister invocation. Errors are the named types of package fault.
func (h *Handler) Handle(ctx context.Context, req Request) (Response, error) {
	resp, err := h.handle(ctx, req)
	if err != nil {
		return Response{}, fault.Boundary(err)
	}
	return resp, nil
}

// The streams the merge walks, by index in a merged row. The ETag index is walked beside them
// (etagindex.Carry), looked up by each merged key.
const (
	sourceStream = iota
	backupStream
)

func (h *Handler) handle(ctx context.Context, req Request) (Response, error) {
	if req.Execution == "" {
		return Response{}, &fault.InvalidInput{Msg: "lister request has no execution name"}
	}
	// A malformed input (a filter rule among it) fails here: before the lock, before any write.
	opts, err := execinput.Parse(req.Input)
	if err != nil {
		return Response{}, err
	}
	flt := h.Config.Filter
	if opts.Filters != nil {
		flt = opts.Filters // the execution's filters replace the deployment's; {} runs unfiltered
	}
	switch req.Phase {
	case "", PhaseSplit, PhaseRange:
	case PhasePlan:
		return h.plan(ctx, req, opts)
	default:
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("lister request: unknown phase %q", req.Phase)}
	}
	rng := req.Range
	if (req.Phase == PhaseRange) != (rng != nil) || req.Phase == PhaseSplit && req.Cursor != nil {
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("lister request: phase %q with range %v and cursor %v", req.Phase, rng != nil, req.Cursor != nil)}
	}
	retries := &s3client.RetryCounter{}
	cur := Cursor{}
	switch {
	case req.Cursor != nil:
		cur = *req.Cursor
	case rng != nil:
		// A range lister starts at its range, with the split's clock; the split checked the
		// buckets and the further destinations, took the lock and read the ETag index's pointer.
		cur.Position.After, cur.Position.Now = rng.After, rng.Now
		if !slices.EqualFunc(rng.Destinations, h.Config.Destinations, func(a report.DestinationTotals, b destination.Destination) bool {
			return a.Name == b.Name && a.Bucket == b.Bucket
		}) {
			return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("lister range %d names further destinations %v; the configuration %v (DESTINATIONS changed during the run?)", rng.Index, rng.Destinations, h.Config.Destinations)}
		}
		if len(rng.Destinations) > 0 {
			cur.Totals.Destinations = checked(rng.Destinations)
			cur.Position.Destinations = make([]DestinationPosition, len(rng.Destinations))
		}
		cur.Position.Index.Read = rng.ETagIndex // its start in the index: sought below
	default:
		if err := h.checkBuckets(ctx); err != nil {
			return Response{}, err
		}
		// One run per source and backup at a time; a dry run writes nothing and needs no lock.
		if !opts.DryRun {
			lock := runlock.Locker{S3: h.S3, RunBucket: h.Config.RunBucket, Source: h.Config.SourceBucket, Backup: h.Config.BackupBucket, Opts: []func(*s3.Options){retries.Option()}}
			if err := lock.Acquire(ctx, req.Execution, h.now()); err != nil {
				return Response{}, err
			}
		}
		g, err := h.currentIndex(ctx, retries)
		if err != nil {
			return Response{}, err
		}
		cur.Position.Index.Read = g.Ref() // a ranged generation's counts stay in its file (Load)
		if err := h.checkDestinations(ctx, &cur); err != nil {
			return Response{}, err
		}
	}
	if cur.Position.Now.IsZero() {
		cur.Position.Now = h.now().UTC()
	}
	cur.Totals.Invocations++
	if req.Phase == PhaseSplit {
		return h.split(ctx, req, opts, cur, retries)
	}
	start := h.now()
	stopAt := lambdafn.StopAt(ctx)
	outOfTime := func() bool { return !stopAt.IsZero() && h.now().After(stopAt) }

	after := cur.Position.After
	// Only what an include rule can match is listed; the backup in full under deleteExcluded,
	// to find the keys no include rule matches.
	sourcePrefixes, backupPrefixes := flt.ListPrefixes(opts.Prefix), flt.BackupPrefixes(opts.Prefix)
	var source, backup stream = newPrefixStream(h.S3, h.Config.SourceBucket, sourcePrefixes, after, retries.Option()),
		newPrefixStream(h.S3, h.Config.BackupBucket, backupPrefixes, after, retries.Option())
	w := newWriter(h, ctx, req.Execution, &cur, opts.DryRun, retries, flt)
	w.prefix = opts.Prefix
	if rng != nil {
		source, backup = bounded(source, rng.Until), bounded(backup, rng.Until)
		w.copies.key = func(execution string, seq int) string { return batch.RangeKey(execution, rng.Index, seq) }
		w.deletions.key = func(execution string, seq int) string { return batch.RangeDeleteKey(execution, rng.Index, seq) }
		w.hints = true
	}
	further, err := h.furtherStreams(ctx, &cur, sourcePrefixes, after, rng, retries)
	if err != nil {
		return Response{}, err
	}
	w.further = further
	streams := []stream{source, backup}
	for _, f := range further {
		streams = append(streams, f.stream)
	}
	m := newMerger(streams...)
	idx := &cur.Position.Index
	gen, err := etagindex.Load(ctx, h.S3, h.Config.RunBucket, idx.Read, retries.Option())
	if err != nil {
		return Response{}, err
	}
	if rng != nil && req.Cursor == nil && !gen.Empty() {
		// A range's first invocation finds where its range starts in the index (a binary
		// search on the files' first entries), so that it reads none of the ranges before it.
		if idx.At, err = etagindex.Seek(ctx, h.S3, h.Config.RunBucket, gen, rng.After, retries.Option()); err != nil {
			return Response{}, err
		}
	}
	reader := etagindex.NewReader(h.S3, h.Config.RunBucket, gen, idx.At, retries.Option())
	if rng != nil {
		reader.Within(rng.After, rng.Until) // the index entries of other ranges are theirs to carry
	}
	carry := &etagindex.Carry{
		Reader: reader,
		// The backup's prefixes hold the source's: every key either listing sees. The entries of
		// keys outside them (another prefix's, or those a filter keeps from the listing) are
		// carried as they are.
		Prefixes: backupPrefixes,
	}
	if !opts.DryRun {
		carry.Writer = etagindex.NewWriter(h.S3, h.Config.RunBucket, req.Execution, idx.NextCarry, 0, retries.Option())
		if rng != nil {
			carry.Writer.InRange(rng.Index)
		}
	}
	var processed int64
	done, spill := false, false
	spillAt := h.spillAt(rng)
	for {
		if h.Config.MaxKeysPerInvocation > 0 && processed >= h.Config.MaxKeysPerInvocation {
			break
		}
		if outOfTime() {
			break
		}
		if spillAt > 0 && max(cur.Totals.Listed, cur.Totals.BackupObjects) >= spillAt {
			spill = true // the range turned out large: the plan cuts the rest into new ranges
			break
		}
		row, ok, err := m.next(ctx)
		if err != nil {
			return Response{}, err
		}
		if !ok {
			done = true
			break
		}
		// When only a further destination holds the key, the backup bucket has nothing to do.
		key := firstKey(row)
		entry, err := carry.Lookup(ctx, key)
		if err != nil {
			return Response{}, err
		}
		if err := w.decide(key, row, entry, carry); err != nil {
			return Response{}, err
		}
		processed++
	}
	// Every key decided is written before the cursor moves past it.
	if err := w.drain(); err != nil {
		return Response{}, err
	}
	var rest *Range
	if spill {
		// This range ends at the last key merged; the ETag index entries after it are the new
		// ranges' to carry.
		done = true
		if end := cur.Position.After; rng.Until == "" || end < rng.Until {
			rest = &Range{After: end, Until: rng.Until}
			reader.Within(rng.After, end)
		}
	}
	if done {
		// The index beyond the last listed key (up to the range's end) is carried too (another
		// prefix's entries); with a large index that may take more invocations.
		// LISTER_MAX_KEYS counts the entries carried here as keys.
		stop := func() bool {
			if outOfTime() || h.Config.MaxKeysPerInvocation > 0 && processed >= h.Config.MaxKeysPerInvocation {
				return true
			}
			processed++
			return false
		}
		if done, err = carry.Finish(ctx, stop); err != nil {
			return Response{}, err
		}
	}
	if err := w.flush(); err != nil {
		return Response{}, err
	}
	if carry.Writer != nil {
		if idx.NextCarry, err = carry.Writer.Flush(ctx); err != nil {
			return Response{}, err
		}
	}
	idx.At = carry.Reader.Position()
	t := &cur.Totals
	h.Logger.InfoContext(ctx, "listed", "execution", req.Execution, "invocation", t.Invocations,
		"keys", processed, "done", done, "after", cur.Position.After, "batches", t.Batches,
		"listed", t.Listed, "new", t.New, "changed", t.Changed, "unchanged", t.Unchanged,
		"toDelete", t.ToDelete, "archived", t.Archived, "excluded", t.Excluded, "excludedDeletions", t.ExcludedDeletions,
		"tagReads", t.TagReads, "elapsed", h.now().Sub(start).String())

	resp := Response{Done: done, DryRun: opts.DryRun, Guards: []report.Guard{}, CopyBatches: []string{}}
	if done && rng != nil {
		// The range is listed: its copies can start at once (copies never wait on the guards,
		// which only hold deletions back); its result waits for the plan, which judges all
		// ranges together and runs the deletions.
		early := 0
		if !opts.DryRun {
			early = min(cur.Position.CopyBatches, DefaultEarlyCopyBatches)
		}
		for seq := range early {
			resp.CopyBatches = append(resp.CopyBatches, batch.RangeKey(req.Execution, rng.Index, seq))
		}
		t.Retries += retries.Count()
		if err := h.writeRangeResult(ctx, req.Execution, *rng, cur, early, rest, retries); err != nil {
			return Response{}, err
		}
		resp.Cursor = cur
		return resp, nil
	}
	if done {
		deletion, change := guard.Check(cur.Totals, h.limits(opts))
		resp.Guards = []report.Guard{deletion, change}
		withheld := h.furtherGuards(ctx, req.Execution, cur.Totals.Destinations, h.limits(opts), &resp.Guards)
		for _, g := range resp.Guards {
			if g.Tripped {
				h.Logger.WarnContext(ctx, "guard tripped", "execution", req.Execution, "guard", g.Name, "error", g.Error, "message", g.Message)
			}
		}
		if !opts.DryRun {
			keys := w.manifest(deletion.Tripped, withheld)
			if err := batch.WriteManifestKeys(ctx, h.S3, h.Config.RunBucket, req.Execution, keys, retries.Option()); err != nil {
				return Response{}, err
			}
			resp.ManifestKey, resp.ManifestBatches = batch.ManifestKey(req.Execution), len(keys)
			// The next execution reads what this one carried and what its copy batches copy.
			g := etagindex.Generation{Execution: req.Execution, CarryFiles: idx.NextCarry, CopyBatches: cur.Position.CopyBatches}
			if err := etagindex.Commit(ctx, h.S3, h.Config.RunBucket, g, retries.Option()); err != nil {
				return Response{}, err
			}
			// The next run's split decides by this run's size (LISTER_RANGES=auto).
			if err := h.writePointer(ctx, SizeKey, req.Execution, opts.Prefix, t.Listed, retries); err != nil {
				return Response{}, err
			}
		}
	}
	t.Retries += retries.Count()
	resp.Cursor = cur
	return resp, nil
}

// limits are the configured guards with this execution's overrides.
func (h *Handler) limits(opts execinput.Options) guard.Limits {
	l := h.Config.Guards
	if opts.MaxDeletePercent != nil {
		l.Delete.MaxPercent = *opts.MaxDeletePercent
	}
	if opts.MaxChangePercent != nil {
		l.Change.MaxPercent = *opts.MaxChangePercent
	}
	return l
}

// currentIndex returns the ETag index generation the execution reads. A generation that is gone
// (expired, removed) is logged and read as empty: it costs a copy of each object whose backup
// ETag differs from its source's (SSE-KMS), never a missed change.
func (h *Handler) currentIndex(ctx context.Context, retries *s3client.RetryCounter) (etagindex.Generation, error) {
	g, err := etagindex.Current(ctx, h.S3, h.Config.RunBucket, retries.Option())
	if errors.Is(err, etagindex.ErrGenerationMissing) {
		h.Logger.WarnContext(ctx, "ETag index not found: objects whose backup ETag differs from the source's (SSE-KMS) are copied again", "error", err)
		return etagindex.Generation{}, nil
	}
	if err != nil {
		return etagindex.Generation{}, err
	}
	// Without SSE-KMS no file of the generation exists: read it as empty, not a GET per batch.
	inUse, err := etagindex.InUse(ctx, h.S3, h.Config.RunBucket, g, retries.Option())
	if err != nil || !inUse {
		return etagindex.Generation{}, err
	}
	return g, nil
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
	// A directory bucket lists out of key order: the merge would be wrong, so refuse it first.
	for _, b := range []struct{ role, name string }{{"source", h.Config.SourceBucket}, {"backup", h.Config.BackupBucket}} {
		if err := bucketcheck.Supported(b.role, b.name); err != nil {
			return err
		}
	}
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

// archived reports whether a storage class must be restored (thawed) before its objects can be
// read or copied. GLACIER_IR and every other class are readable at once.
func archived(storageClass string) bool {
	return storageClass == string(types.ObjectStorageClassGlacier) || storageClass == string(types.ObjectStorageClassDeepArchive)
}

// writer decides on every merged key and sorts work items into copy and deletion batches. Keys
// are decided in key order as they are merged (walking the ETag index beside them), queued, and
// written a chunk at a time, so that the tags of a chunk's keys are read together.
type writer struct {
	h         *Handler
	ctx       context.Context
	execution string
	cur       *Cursor
	dryRun    bool
	retries   *s3client.RetryCounter
	filter    *filter.Filter
	prefix    string // the run's prefix: changes are counted by the folder below it
	copies    pending
	deletions pending
	queue     []decided
	tagsDue   int  // keys of queue whose tags are still to be read
	hints     bool // record every DefaultHintEvery-th source key in the cursor (a range lister)
	further   []*furtherDest
}

// decided is one merged key, classified and judged by the filters, waiting to be written.
type decided struct {
	key      string
	src, bak *change.Object
	class    change.Class
	d        filter.Decision
	readTags bool // d is NeedTags: read the object's tags and call MatchTags
	// further are the further destinations' entries and classes, by index in writer.further
	// (a destination that failed is skipped).
	further []furtherDecided
}

// pending is one kind of batch being filled: its items, the key of its batch number seq, and the
// cursor's count of this kind of batch.
type pending struct {
	key    func(execution string, seq int) string
	count  *int
	header batch.Header
	items  []batch.Item
	bytes  int64
}

func newWriter(h *Handler, ctx context.Context, execution string, cur *Cursor, dryRun bool, retries *s3client.RetryCounter, f *filter.Filter) *writer {
	return &writer{
		h: h, ctx: ctx, execution: execution, cur: cur, dryRun: dryRun, retries: retries, filter: f,
		copies:    pending{key: batch.Key, count: &cur.Position.CopyBatches, header: h.header()},
		deletions: pending{key: batch.DeleteKey, count: &cur.Position.DeleteBatches, header: h.header()},
	}
}

// decide classifies one key from its two listings and its ETag index entry (nil when none), and
// judges it by the filters; it carries the key's index entry on when it still holds, and queues
// the key to be written. A key whose ETags differ is unchanged when the entry records exactly this
// pair (the backup's version is the copy of this source content).
//
// The filters judge a source object by its listing (filter.Match), and a key gone from the source
// by its key alone (filter.MatchKey). When only tags can decide, they are read for a new or
// changed object and never for an unchanged one, which stays unchanged. An excluded key is left
// alone (with its index entry, whatever it says: an entry only ever matches its exact ETags)
// unless deleteExcluded marks its backup deleted.
func (w *writer) decide(key string, row []*change.Object, entry *etagindex.Entry, carry *etagindex.Carry) error {
	src, bak := row[sourceStream], row[backupStream]
	k := decided{key: key, src: src, bak: bak, class: change.Classify(src, bak)}
	if src == nil && bak == nil {
		k.class = change.Unchanged // only further destinations hold the key
	}
	k.further = w.decideFurther(row)
	matched := k.class == change.Changed && entry.Matches(*src, *bak)
	if matched {
		k.class = change.Unchanged
	}
	switch {
	case w.filter.Empty():
	case src != nil:
		k.d = w.filter.Match(key, src.Size, src.LastModified, w.cur.Position.Now)
	default:
		k.d = w.filter.MatchKey(key)
	}
	if k.d.NeedTags() {
		if k.class == change.New || k.class == change.Changed || k.furtherCopies() {
			k.readTags = true
			w.tagsDue++
		} else {
			k.d = filter.Decision{Verdict: filter.Include} // unchanged: nothing to do whatever its tags
		}
	}
	markDeleted := k.d.Excluded() && w.filter.DeleteExcluded() && bak != nil
	if entry != nil && (k.d.Excluded() && !markDeleted || matched && !k.d.Excluded()) {
		if err := carry.Keep(w.ctx, *entry); err != nil {
			return err
		}
	}
	w.queue = append(w.queue, k)
	// Keys queue only behind one whose tags are to be read: without tag rules each is written
	// at once, as before filters.
	if w.tagsDue == 0 || len(w.queue) >= DefaultChunkKeys || w.tagsDue >= DefaultChunkTags {
		return w.drain()
	}
	return nil
}

// drain reads the tags the queued keys need, DefaultTagConcurrency at a time, and writes the
// queued keys in order.
func (w *writer) drain() error {
	if w.tagsDue > 0 {
		g, ctx := errgroup.WithContext(w.ctx)
		g.SetLimit(DefaultTagConcurrency)
		for i := range w.queue {
			k := &w.queue[i]
			if !k.readTags {
				continue
			}
			g.Go(func() error {
				tags, err := w.tags(ctx, k.src.Key)
				if err != nil {
					return err
				}
				k.d = w.filter.MatchTags(k.d, tags)
				return nil
			})
		}
		err := g.Wait()
		w.cur.Totals.TagReads += int64(w.tagsDue)
		w.tagsDue = 0
		if err != nil {
			return err
		}
	}
	for _, k := range w.queue {
		if err := w.add(k); err != nil {
			return err
		}
	}
	clear(w.queue) // drop the objects' pointers
	w.queue = w.queue[:0]
	return nil
}

// tags reads a source object's tags. An object deleted since it was listed has none: the copier
// then finds it gone, as it would without filters.
func (w *writer) tags(ctx context.Context, key string) (map[string]string, error) {
	out, err := w.h.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(w.h.Config.SourceBucket), Key: aws.String(key)}, w.retries.Option())
	switch {
	case fault.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read the tags of s3://%s/%s for the filters' tag rules (the lister needs s3:GetObjectTagging on the source): %w", w.h.Config.SourceBucket, key, err)
	}
	return filter.Tags(out.TagSet), nil
}

// add counts one decided key and puts its work item, if any, in its batch.
func (w *writer) add(k decided) error {
	if err := w.addFurther(k); err != nil {
		return err
	}
	if k.src == nil && k.bak == nil {
		w.cur.Position.After = k.key
		return nil
	}
	src, bak := k.src, k.bak
	key := k.key
	t := &w.cur.Totals
	if src != nil {
		t.Listed++
		if w.hints {
			w.cur.Position.hint(key)
		}
	}
	if bak != nil {
		t.BackupObjects++
	}
	w.cur.Position.After = key
	if k.d.Excluded() {
		if src != nil {
			t.Excluded++
			t.ExcludedByRule = filter.Counts(t.ExcludedByRule).Add(k.d)
		}
		switch {
		case bak != nil && w.filter.DeleteExcluded():
			t.ToDelete++
			it := batch.Item{Op: batch.OpDelete, Key: key, Change: string(change.Deleted), Size: bak.Size, ETag: bak.ETag, LastModified: bak.LastModified}
			if src != nil {
				it.Change = ChangeExcluded
			}
			return w.put(&w.deletions, it, 0)
		case src == nil:
			t.ExcludedDeletions++
		}
		return nil
	}
	switch k.class {
	case change.New, change.Changed:
		class := k.class
		if class == change.New {
			t.New++
		} else {
			t.Changed++
		}
		t.Changes.Add(report.FolderOf(w.prefix, key), string(class))
		it := batch.Item{Op: batch.OpCopy, Key: key, Change: string(class), Size: src.Size, ETag: src.ETag, LastModified: src.LastModified}
		if bak != nil {
			it.Prior = bak.ETag
		}
		if archived(src.StorageClass) {
			t.Archived++
			if w.h.Config.ArchivedSources == ArchivedSkip {
				it.Op = batch.OpKeep
				it.Reason = fmt.Sprintf("archived (%s): not copied; an object in %s must be restored (thawed) before it can be copied. "+
					"ARCHIVED_SOURCES=skip names it here on every run until it is; ARCHIVED_SOURCES=fail fails the run instead", src.StorageClass, src.StorageClass)
				return w.put(&w.copies, it, 0)
			}
		}
		t.BytesToCopy += src.Size
		return w.put(&w.copies, it, src.Size)
	case change.Deleted:
		t.ToDelete++
		t.Changes.Add(report.FolderOf(w.prefix, key), "deleted")
		return w.put(&w.deletions, batch.Item{Op: batch.OpDelete, Key: key, Change: string(k.class), Size: bak.Size, ETag: bak.ETag, LastModified: bak.LastModified}, 0)
	default:
		t.Unchanged++
		return nil
	}
}

// put adds an item that copies size bytes to its kind's pending batch, writing the batch when full.
func (w *writer) put(p *pending, it batch.Item, size int64) error {
	if w.dryRun {
		return nil
	}
	p.items = append(p.items, it)
	p.bytes += size
	if int64(len(p.items)) >= w.h.Config.BatchSize || p.bytes >= w.h.Config.BatchBytes {
		return w.write(p)
	}
	return nil
}

// flush writes both kinds' pending items, the backup bucket's and each further destination's.
func (w *writer) flush() error {
	if err := w.write(&w.copies); err != nil {
		return err
	}
	if err := w.write(&w.deletions); err != nil {
		return err
	}
	for _, f := range w.further {
		if err := w.write(&f.copies); err != nil {
			return err
		}
		if err := w.write(&f.deletions); err != nil {
			return err
		}
	}
	return nil
}

// write stores p's items as its kind's next batch file. Batch names are deterministic, so a
// retried invocation rewrites the same files.
func (w *writer) write(p *pending) error {
	if len(p.items) == 0 {
		return nil
	}
	if err := batch.Write(w.ctx, w.h.S3, w.h.Config.RunBucket, p.key(w.execution, *p.count), p.header, p.items, w.retries.Option()); err != nil {
		return err
	}
	*p.count++
	w.cur.Totals.Batches++
	p.items, p.bytes = p.items[:0], 0
	return nil
}

// manifest lists the batches the run executes: exactly those this execution's successful
// invocations wrote, per the cursor (never a file a failed attempt left behind), copies first
// (the backup bucket's, then each further destination's), then the deletion batches of every
// destination whose deletions are not withheld (withheld: by further destination name).
func (w *writer) manifest(withholdDeletions bool, withheld map[string]bool) []string {
	var p planned
	for seq := range w.cur.Position.CopyBatches {
		p.copies = append(p.copies, batch.Key(w.execution, seq))
	}
	for seq := range w.cur.Position.DeleteBatches {
		p.deletions = append(p.deletions, batch.DeleteKey(w.execution, seq))
	}
	p.destCopies, p.destDeletions = make([][]string, len(w.h.Config.Destinations)), make([][]string, len(w.h.Config.Destinations))
	for i, d := range w.h.Config.Destinations {
		for seq := range w.cur.Position.Destinations[i].CopyBatches {
			p.destCopies[i] = append(p.destCopies[i], batch.DestinationKey(w.execution, d.Name, seq))
		}
		for seq := range w.cur.Position.Destinations[i].DeleteBatches {
			p.destDeletions[i] = append(p.destDeletions[i], batch.DestinationDeleteKey(w.execution, d.Name, seq))
		}
	}
	return p.manifest(w.h.Config.Destinations, withholdDeletions, withheld)
}

// planned are the batches a listing wrote, by kind: the backup bucket's, and each further
// destination's in the setting's order.
type planned struct {
	copies, deletions         []string
	destCopies, destDeletions [][]string
}

// manifest lists them in the order the Copy Map runs them: copies first (the backup bucket's,
// then each further destination's), then the deletions of every destination whose deletions are
// not withheld (withholdDeletions: the backup bucket's; withheld: by further destination name).
func (p planned) manifest(dests []destination.Destination, withholdDeletions bool, withheld map[string]bool) []string {
	keys := slices.Clone(p.copies)
	for _, c := range p.destCopies {
		keys = append(keys, c...)
	}
	if !withholdDeletions {
		keys = append(keys, p.deletions...)
	}
	for i, d := range dests {
		if !withheld[d.Name] {
			keys = append(keys, p.destDeletions[i]...)
		}
	}
	return keys
}

func keyOf(src, bak *change.Object) string {
	if src != nil {
		return src.Key
	}
	return bak.Key
}

// stream is one key-ordered listing the merge walks.
type stream interface {
	Peek(ctx context.Context) (*change.Object, error)
	Pop()
}

// merger walks key-ordered streams together.
type merger struct {
	streams []stream
	row     []*change.Object
}

func newMerger(streams ...stream) *merger {
	return &merger{streams: streams, row: make([]*change.Object, len(streams))}
}

// next returns, for the smallest key any stream holds next, each stream's entry for that key
// (nil where a stream has none), consuming them; ok is false at the end of every stream. The
// returned row is reused by the next call.
func (m *merger) next(ctx context.Context) (row []*change.Object, ok bool, err error) {
	var first *change.Object
	for i, s := range m.streams {
		o, err := s.Peek(ctx)
		if err != nil {
			return nil, false, err
		}
		m.row[i] = o
		if o != nil && (first == nil || o.Key < first.Key) {
			first = o
		}
	}
	if first == nil {
		return nil, false, nil
	}
	key := first.Key
	for i, o := range m.row {
		if o != nil && o.Key == key {
			m.streams[i].Pop()
		} else {
			m.row[i] = nil
		}
	}
	return m.row, true, nil
}

// prefixStream lists a bucket's keys under several prefixes, one prefix after the other. With
// prefixes in key order and none a prefix of another (filter.ListPrefixes), every key under one
// of them comes once, in key order. Resuming after a key, it lists the prefixes still to come
// (filter.After), each starting after that key; a prefix's listing starts when the one before
// it ends.
type prefixStream struct {
	open     func(prefix string) stream
	prefixes []string
	cur      stream
}

func newPrefixStream(client s3.ListObjectsV2APIClient, bucket string, prefixes []string, after string, opts ...func(*s3.Options)) *prefixStream {
	return &prefixStream{
		prefixes: filter.After(prefixes, after),
		open: func(prefix string) stream {
			return listing.NewObjects(client, bucket, prefix, after).WithOptions(opts...)
		},
	}
}

// Peek returns the next object without consuming it; nil at the end of the last prefix.
func (s *prefixStream) Peek(ctx context.Context) (*change.Object, error) {
	for {
		if s.cur == nil {
			if len(s.prefixes) == 0 {
				return nil, nil
			}
			s.cur, s.prefixes = s.open(s.prefixes[0]), s.prefixes[1:]
		}
		o, err := s.cur.Peek(ctx)
		if err != nil || o != nil {
			return o, err
		}
		s.cur = nil
	}
}

// Pop consumes the object Peek returned.
func (s *prefixStream) Pop() { s.cur.Pop() }
