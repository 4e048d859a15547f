package lister

// Listing in key-space ranges. A big bucket is not listed as one sequence: the split (the
// first invocation, PhaseSplit) cuts the key space into ranges (After, Until], a Map runs a
// lister loop per range (PhaseRange) that merges source and backup within its range exactly as
// the sequential lister does, writing batches named by range (batch.RangeKey), and the plan
// (PhasePlan) sums the ranges' totals, applies the guards to the sum and writes the one manifest
// the Copy Map reads: every copy batch, and the deletion batches unless a guard withholds them.
// Deletions therefore never run before every range has listed.
//
// Split points come from the previous ranged run's hints (every DefaultHintEvery-th source key,
// with the number of keys since the one before), or, without hints, from probing: bisection of
// the key space with ListObjectsV2 StartAfter=m, MaxKeys=1, which returns the first key after
// m. Keys are UTF-8, compared byte by byte, which is code point order: midpoints are computed
// on code points, so every probe and boundary is valid UTF-8, of any plane.
//
// Ranges stay off (the key space is listed in one sequence, as before) for a dry run, a bucket
// whose first listing page holds every key, and a deployment with LISTER_RANGES=0. The ETag
// index (SSE-KMS) is read by each range from where its first invocation finds the range starts
// in it (etagindex.Seek), within the range's bounds; each range writes carry files of its own, and the
// plan commits a generation of every range's carry and copied files. Further destinations are
// merged in every range, each range writing their batches apart (batch.RangeDestinationKey).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/etagindex"
	"github.com/bucketvault/bucketvault/shared/execinput"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// The lister's phases (Request.Phase).
const (
	// PhaseSplit is the first invocation of a backup: it checks the buckets, takes the lock and
	// decides whether to list in ranges; if not, its cursor goes on to the sequential loop.
	PhaseSplit = "split"
	// PhaseRange lists one key-space range (Request.Range).
	PhaseRange = "range"
	// PhasePlan merges the ranges' results and writes the manifest.
	PhasePlan = "plan"
)

// Defaults of listing in ranges.
const (
	// DefaultRanges is LISTER_RANGES's default, RangesAuto: a source is listed in ranges when the
	// last run (ranged or not) recorded DefaultAutoRangeKeys source keys or more or, on a first
	// run, when its probed ranges hold that many (countAtLeast); in one sequence otherwise (a
	// small bucket). At 80 ms a page, 100,000 keys are 100
	// pages, 8 s in one sequence; below that the Map Run and child executions cost more than they
	// save (at 20,000 keys ranged idle runs were slower on MinIO). How many: cut at the last
	// ranged run's hints, which balance the ranges by key count, as many as ranges are listed at
	// once (ListConcurrency), or one per DefaultRangeKeys keys if more; by probing, which does not
	// balance them, ProbeRangesPerLister times as many, so that a big range does not leave one
	// lister working alone. Each range costs a few requests more than listing its keys in
	// sequence (measured on MinIO at 200,000 keys with no LIST delay: 32 ranges as fast as one
	// sequence, 128 ranges 25 % slower; with 80 ms a LIST, about the same).
	RangesAuto           = -1
	DefaultRanges        = RangesAuto
	DefaultAutoRangeKeys = 100_000
	ProbeRangesPerLister = 4
	RecommendedRanges    = ProbeRangesPerLister * DefaultListConcurrency
	// DefaultListConcurrency is how many ranges are listed at once (LISTER_CONCURRENCY, the
	// ListRanges Map's MaxConcurrencyPath), MaxListConcurrency its most (a Map Run's limit on
	// concurrent child executions). Each range's child also runs up to 2 copier invocations
	// (CopyRange), so N listers use up to 3N of the account's concurrent Lambda executions
	// (1,000 by default).
	DefaultListConcurrency = 32
	MaxListConcurrency     = 10_000
	// LocalListersPerCPU is how many ranges the local executor lists at once per core when
	// LISTER_CONCURRENCY is not set (LocalListConcurrency): there every range's lister and
	// copiers share one process, and a core is busy with about two listings waiting on pages.
	LocalListersPerCPU = 2
	// DefaultRangeKeys is the keys per range a big bucket's hints aim at (more ranges than
	// DefaultRanges), and DefaultMaxRanges the most ranges.
	DefaultRangeKeys = 1_000_000
	DefaultMaxRanges = 10_000
	// DefaultHintEvery: a range lister records every DefaultHintEvery-th source key it passes;
	// DefaultMaxHintBytes bounds a range's hints in its cursor (beyond it they are thinned to every
	// other), DefaultMaxHints a run's hints file.
	DefaultHintEvery    = 100
	DefaultMaxHintBytes = 32 << 10
	DefaultMaxHints     = 100_000
	// DefaultProbeConcurrency is how many probes the split sends at once, DefaultMaxProbeRounds
	// how many rounds of bisection it runs at most.
	DefaultProbeConcurrency = 16
	DefaultMaxProbeRounds   = 24
	// DefaultRangeReads is how many range results the plan reads at once.
	DefaultRangeReads = 16
	// A range that turns out large is split while it is listed: once its lister has listed
	// LISTER_SPILL_KEYS source keys (DefaultSpillKeys), or DefaultSpillFactor times what the
	// hints said the range holds if more, it ends its range at the last key it merged and hands
	// the rest to the plan, which probes it into new ranges and runs the ListRanges Map again over
	// them (at most DefaultMaxResplits times; the ranges of the last pass do not split).
	DefaultSpillKeys   = DefaultRangeKeys
	DefaultSpillFactor = 4
	DefaultMaxResplits = 3
	MaxSpillKeys       = 1 << 40
)

// HintsPointerKey names the pointer to the hints the next run's split reads, beside the ETag
// index's pointer (index/current.json): {"execution": …, "source": …, "prefix": …, "keys": …}.
const HintsPointerKey = etagindex.Prefix + "hints.json"

// HintsKey names the hints file a ranged run writes: one Hint a line, in key order.
func HintsKey(execution string) string { return etagindex.ExecutionPrefix(execution) + "hints.jsonl" }

// RangesKey names the ranges file the split writes for the ListRanges Map (JSON Lines, one Range
// a line).
func RangesKey(execution string) string { return batch.WorkPrefix(execution) + "ranges.jsonl" }

// RangeResultKey names the result range r's lister writes when its range is listed.
func RangeResultKey(execution string, r int) string {
	return fmt.Sprintf("%sranges/r%06d.json", batch.WorkPrefix(execution), r)
}

// Range is one slice of the key space: the keys k with After < k ≤ Until (no end when Until is
// ""). Now is the run's clock (filters' age rules).
type Range struct {
	Index int       `json:"index"`
	After string    `json:"after"`
	Until string    `json:"until"`
	Now   time.Time `json:"now"`
	// Destinations are the further destinations as the split found them (name, bucket, and
	// the error of one that failed its check, which no range lists), in the setting's order.
	Destinations []report.DestinationTotals `json:"destinations,omitempty"`
	// ETagIndex is the ETag index generation the run reads (its Ref); the range's first
	// invocation finds where the range starts in it (etagindex.Seek).
	ETagIndex etagindex.Generation `json:"etagIndex"`
	// Expect is how many source keys the hints said the range holds (0: unknown, a probed
	// range); NoSpill keeps the range from splitting (the last pass of ranges).
	Expect  int64 `json:"expect,omitempty"`
	NoSpill bool  `json:"noSpill,omitempty"`
}

// Hint is a source key a lister passed, and how many source keys it passed since the hint before
// (this one included).
type Hint struct {
	Key  string `json:"k"`
	Keys int64  `json:"n"`
}

// SizeKey names the size of the source the last finished listing (ranged or not) listed, which
// LISTER_RANGES=auto decides by: a hintsPointer, whose execution left hints only if it was ranged.
const SizeKey = etagindex.Prefix + "size.json"

// hintsPointer is the content of HintsPointerKey and SizeKey.
type hintsPointer struct {
	Execution string `json:"execution"`
	Source    string `json:"source"`
	Prefix    string `json:"prefix"`
	Keys      int64  `json:"keys"`
}

// RangeResult is what a range lister leaves for the plan.
type RangeResult struct {
	Range         Range         `json:"range"`
	Totals        report.Totals `json:"totals"`
	CopyBatches   int           `json:"copyBatches"`
	DeleteBatches int           `json:"deleteBatches"`
	// EarlyCopies are the first copy batches the range's child execution copied itself, as soon
	// as the range was listed (Response.CopyBatches); the Copy Map runs the others.
	EarlyCopies int    `json:"earlyCopies"`
	Hints       []Hint `json:"hints"`
	TailKeys    int64  `json:"tailKeys"` // source keys after the last hint
	// Destinations are the further destinations' batch counts in this range, in the setting's
	// order (batch.RangeDestinationKey and batch.RangeDestinationDeleteKey number them).
	Destinations []DestinationPosition `json:"destinations,omitempty"`
	// CarryFiles is how many ETag index carry files the range wrote (etagindex.RangeCarryKey).
	CarryFiles int `json:"carryFiles"`
	// Spill, when the range turned out large, is the rest of it, which its lister left for new
	// ranges: the range was listed up to Spill.After.
	Spill *Range `json:"spill,omitempty"`
}

// LocalListConcurrency is LISTER_CONCURRENCY's default for the local executor on cpus cores:
// LocalListersPerCPU a core, at most DefaultListConcurrency.
func LocalListConcurrency(cpus int) int {
	return min(max(LocalListersPerCPU*cpus, 1), DefaultListConcurrency)
}

// RangesPassKey names the ranges file of pass pass of the ListRanges Map: the split's (pass 0,
// RangesKey) or the plan's, which cuts the rest of the ranges that turned out large.
func RangesPassKey(execution string, pass int) string {
	if pass == 0 {
		return RangesKey(execution)
	}
	return fmt.Sprintf("%sranges-%d.jsonl", batch.WorkPrefix(execution), pass)
}

// spillAt is how many source keys a range lister lists before it splits its range (0: never).
func (h *Handler) spillAt(r *Range) int64 {
	if r == nil || r.NoSpill || h.Config.SpillKeys <= 0 {
		return 0
	}
	return max(h.Config.SpillKeys, DefaultSpillFactor*r.Expect)
}

// hint counts one source key, recording it every DefaultHintEvery keys; past
// DefaultMaxHintBytes the hints are thinned to every other one.
func (p *Position) hint(key string) {
	p.SinceHint++
	if p.SinceHint < DefaultHintEvery {
		return
	}
	p.Hints = append(p.Hints, Hint{Key: key, Keys: p.SinceHint})
	p.SinceHint = 0
	size := 0
	for _, h := range p.Hints {
		size += len(h.Key) + 16
	}
	if size > DefaultMaxHintBytes {
		p.Hints = thin(p.Hints, 2)
	}
}

// thin keeps every k-th hint (and the last), each counting the keys of those it replaces.
func thin(hints []Hint, k int) []Hint {
	var out []Hint
	var n int64
	for i, h := range hints {
		n += h.Keys
		if (i+1)%k == 0 || i == len(hints)-1 {
			out = append(out, Hint{Key: h.Key, Keys: n})
			n = 0
		}
	}
	return out
}

// boundedStream ends a stream after the key until ("": never).
type boundedStream struct {
	stream
	until string
}

func bounded(s stream, until string) stream {
	if until == "" {
		return s
	}
	return &boundedStream{stream: s, until: until}
}

// Peek returns the next object up to until; nil beyond it.
func (b *boundedStream) Peek(ctx context.Context) (*change.Object, error) {
	o, err := b.stream.Peek(ctx)
	if err != nil || o == nil || o.Key > b.until {
		return nil, err
	}
	return o, nil
}

// split decides how the key space is listed. Without ranges it returns the cursor of a first
// invocation that listed nothing, which the sequential loop continues; with ranges it writes the
// ranges file for the ListRanges Map.
func (h *Handler) split(ctx context.Context, req Request, opts execinput.Options, cur Cursor, retries *s3client.RetryCounter) (Response, error) {
	resp := Response{DryRun: opts.DryRun, Guards: []report.Guard{}, ListConcurrency: h.Config.ListConcurrency}
	bounds, expect, why, err := h.splitPoints(ctx, opts, retries)
	if err != nil {
		return Response{}, err
	}
	if len(bounds) == 0 {
		h.Logger.InfoContext(ctx, "listing in one sequence", "execution", req.Execution, "why", why)
		cur.Totals.Retries += retries.Count()
		resp.Cursor = cur
		return resp, nil
	}
	ranges := h.cut(cur, "", "", bounds, 0)
	for i := range ranges {
		ranges[i].Expect = expect
	}
	key := RangesKey(req.Execution)
	if err := h.writeRanges(ctx, key, ranges, retries); err != nil {
		return Response{}, err
	}
	cur.Position.Ranges = len(bounds) + 1
	cur.Totals.Retries += retries.Count()
	h.Logger.InfoContext(ctx, "listing in ranges", "execution", req.Execution, "ranges", cur.Position.Ranges, "from", why)
	resp.Cursor, resp.Ranges, resp.RangesKey = cur, cur.Position.Ranges, key
	return resp, nil
}

// splitPoints returns the ranges' boundaries in increasing order (none: list in one sequence)
// and why.
func (h *Handler) splitPoints(ctx context.Context, opts execinput.Options, retries *s3client.RetryCounter) (bounds []string, expect int64, why string, err error) {
	switch {
	case h.Config.Ranges == 0:
		return nil, 0, "LISTER_RANGES is 0", nil
	case opts.DryRun:
		return nil, 0, "a dry run", nil
	}
	ranges, unknown := h.Config.Ranges, false
	if ranges == RangesAuto {
		size, err := h.readPointer(ctx, SizeKey, opts.Prefix, retries)
		if err != nil {
			return nil, 0, "", err
		}
		switch {
		case size == nil:
			// A first run: the probes count the keys (countAtLeast) before ranges are chosen.
			unknown = true
		case size.Keys < h.Config.AutoRangeKeys:
			return nil, 0, fmt.Sprintf("LISTER_RANGES is auto and the last run listed %d source keys, fewer than %d", size.Keys, h.Config.AutoRangeKeys), nil
		}
		ranges = h.Config.ListConcurrency
	}
	ptr, err := h.readPointer(ctx, HintsPointerKey, opts.Prefix, retries)
	if err != nil {
		return nil, 0, "", err
	}
	bounds, expect, found, err := h.hintedBounds(ctx, ptr, ranges, retries)
	if err != nil {
		return nil, 0, "", err
	}
	if found {
		return bounds, expect, "hints", nil
	}
	if h.Config.Ranges == RangesAuto {
		ranges = min(ProbeRangesPerLister*h.Config.ListConcurrency, DefaultMaxRanges)
		if unknown {
			// Enough ranges for countAtLeast to reach AutoRangeKeys when half of them hold a
			// page's keys, whatever LISTER_CONCURRENCY is.
			ranges = min(max(ranges, int(2*h.Config.AutoRangeKeys/countPage)), DefaultMaxRanges)
		}
	}
	bounds, why, err = h.probe(ctx, opts.Prefix, ranges, retries)
	if err != nil || len(bounds) == 0 || !unknown {
		return bounds, 0, why, err
	}
	n, err := h.countAtLeast(ctx, opts.Prefix, bounds, h.Config.AutoRangeKeys, retries)
	if err != nil {
		return nil, 0, "", err
	}
	if n < h.Config.AutoRangeKeys {
		return nil, 0, fmt.Sprintf("LISTER_RANGES is auto, no earlier run of this source and prefix recorded its size, and %d probed ranges held %d source keys in all, fewer than %d", len(bounds)+1, n, h.Config.AutoRangeKeys), nil
	}
	return bounds, 0, fmt.Sprintf("probing (a first run: %d probed ranges held %d source keys or more, at least %d)", len(bounds)+1, n, h.Config.AutoRangeKeys), nil
}

// countAtLeast reads countFirstPage keys of each range first, then twice as many each round, up
// to countPage (S3's most keys a page), for countRounds rounds at most (2,575 keys a range): a
// LIST cannot stop at a range's end, so a page longer than what is left of a range lists the next
// ranges' keys for nothing; doubling keeps that waste within about twice the range's keys (200
// ranges of a 20,000-key bucket would list 200,000 keys with pages of 1,000).
const (
	countPage      = 1000
	countFirstPage = 25
	countRounds    = 7
)

// countAtLeast counts the source keys in the ranges the bounds cut, a page of each range at once,
// up to countRounds pages of a range (growing: countFirstPage), until it has counted want: a
// lower bound of the source's size, exact when it stops short of want. A first run with
// LISTER_RANGES=auto knows no size, and a bucket too big to list in one sequence must not wait
// for the next run to be listed in ranges; a few requests a range cost less than a Map Run of
// ranges would over a small bucket. Probing may cut fewer ranges than asked (keys alike), hence
// more pages than one.
func (h *Handler) countAtLeast(ctx context.Context, prefix string, bounds []string, want int64, retries *s3client.RetryCounter) (int64, error) {
	type count struct {
		after, until string
		keys         int64
		open         bool // its last page was full and inside the range: it may hold more
	}
	cs := make([]count, len(bounds)+1)
	for i := range cs {
		cs[i].open = true
		if i > 0 {
			cs[i].after = bounds[i-1]
		}
		if i < len(bounds) {
			cs[i].until = bounds[i]
		}
	}
	var n int64
	for round := 0; round < countRounds && n < want; round++ {
		page := int32(min(countFirstPage<<round, countPage))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(DefaultProbeConcurrency)
		for i := range cs {
			c := &cs[i]
			if !c.open {
				continue
			}
			g.Go(func() error {
				in := &s3.ListObjectsV2Input{Bucket: aws.String(h.Config.SourceBucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(page)}
				if c.after != "" {
					in.StartAfter = aws.String(c.after)
				}
				out, err := h.S3.ListObjectsV2(gctx, in, retries.Option())
				if err != nil {
					return fmt.Errorf("count s3://%s/%s after %q: %w", h.Config.SourceBucket, prefix, c.after, err)
				}
				c.open = aws.ToBool(out.IsTruncated) && len(out.Contents) > 0
				for _, o := range out.Contents {
					key := aws.ToString(o.Key)
					if c.until != "" && key > c.until {
						c.open = false
						break
					}
					c.keys++
					c.after = key
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
		n = 0
		for _, c := range cs {
			n += c.keys
		}
	}
	return n, nil
}

// readPointer reads the pointer (HintsPointerKey or SizeKey) an earlier run of this source and
// prefix left (nil: none, unreadable, or another source's or prefix's).
func (h *Handler) readPointer(ctx context.Context, key, prefix string, retries *s3client.RetryCounter) (*hintsPointer, error) {
	data, found, err := h.get(ctx, key, retries)
	if err != nil || !found {
		return nil, err
	}
	var p hintsPointer
	if err := strictjson.Unmarshal(data, &p); err != nil {
		h.Logger.WarnContext(ctx, "pointer unreadable: ignored", "key", key, "error", err)
		return nil, nil
	}
	if p.Source != h.Config.SourceBucket || p.Prefix != prefix || p.Keys == 0 {
		return nil, nil
	}
	return &p, nil
}

// hintedBounds cuts the key space at the hints of the ranged run the pointer names: about
// DefaultRangeKeys keys a range, at least ranges ranges (as far as the hints allow), at most
// DefaultMaxRanges.
func (h *Handler) hintedBounds(ctx context.Context, p *hintsPointer, ranges int, retries *s3client.RetryCounter) (bounds []string, per int64, found bool, err error) {
	if p == nil {
		return nil, 0, false, nil
	}
	data, found, err := h.get(ctx, HintsKey(p.Execution), retries)
	if err != nil || !found {
		return nil, 0, false, err // expired with the index: probe
	}
	want := min(max(int64(ranges), p.Keys/DefaultRangeKeys), DefaultMaxRanges)
	per = max(p.Keys/want, 1)
	var acc int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var hn Hint
		if err := strictjson.Unmarshal(sc.Bytes(), &hn); err != nil {
			h.Logger.WarnContext(ctx, "hints unreadable: probing instead", "key", HintsKey(p.Execution), "error", err)
			return nil, 0, false, nil
		}
		acc += hn.Keys
		if acc >= per && (len(bounds) == 0 || hn.Key > bounds[len(bounds)-1]) && int64(len(bounds)) < want-1 {
			bounds = append(bounds, hn.Key)
			acc = 0
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, false, err
	}
	if len(bounds) == 0 {
		return nil, 0, false, nil
	}
	return bounds, per, true, nil
}

// interval is a part of the key space being bisected: keys in (after, until] (no end when open),
// first its first key.
type interval struct {
	after, first, until string
	open, done          bool
}

// probe cuts the key space by bisection: for an interval it lists one key after the midpoint of
// its first key and its end; a key there splits it, none shrinks it. A bucket whose first page
// holds every key is listed in one sequence.
func (h *Handler) probe(ctx context.Context, prefix string, ranges int, retries *s3client.RetryCounter) ([]string, string, error) {
	out, err := h.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(h.Config.SourceBucket), Prefix: aws.String(prefix)}, retries.Option())
	if err != nil {
		return nil, "", fmt.Errorf("list s3://%s/%s: %w", h.Config.SourceBucket, prefix, err)
	}
	if !aws.ToBool(out.IsTruncated) || len(out.Contents) == 0 {
		return nil, "the source's first listing page holds every key", nil
	}
	bounds, err := h.probeFrom(ctx, prefix, interval{first: aws.ToString(out.Contents[0].Key), open: true}, ranges, retries)
	return bounds, "probing", err
}

// probeWithin cuts the keys in (after, until] (until "": no end) into at most ranges ranges by
// probing; it returns the cuts strictly inside (none when the interval holds at most one key).
func (h *Handler) probeWithin(ctx context.Context, prefix, after, until string, ranges int, retries *s3client.RetryCounter) ([]string, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(h.Config.SourceBucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(1)}
	if after != "" {
		in.StartAfter = aws.String(after)
	}
	out, err := h.S3.ListObjectsV2(ctx, in, retries.Option())
	if err != nil {
		return nil, fmt.Errorf("probe s3://%s/%s after %q: %w", h.Config.SourceBucket, prefix, after, err)
	}
	if len(out.Contents) == 0 {
		return nil, nil
	}
	first := aws.ToString(out.Contents[0].Key)
	if until != "" && first > until {
		return nil, nil
	}
	return h.probeFrom(ctx, prefix, interval{after: after, first: first, until: until, open: until == ""}, ranges, retries)
}

// probeFrom bisects the interval iv (first: its first key) into at most ranges ranges and returns
// the cuts.
func (h *Handler) probeFrom(ctx context.Context, prefix string, iv interval, ranges int, retries *s3client.RetryCounter) ([]string, error) {
	if iv.open {
		// Every key from first on shares first's longest common prefix P with every other, so
		// every key is at most P+U+10FFFF…: bisect below it, where the midpoints fall among the
		// keys' differing code points. Without it an open end costs about 7 rounds per shared
		// code point ("logs/…" would exhaust the rounds before the keys part).
		common, err := h.commonPrefix(ctx, prefix, iv.first, retries)
		if err != nil {
			return nil, err
		}
		if common != "" {
			iv.until, iv.open = common+string(rune(maxRune)), false
		}
	}
	ivs := []interval{iv}
	for round := 0; round < DefaultMaxProbeRounds && len(ivs) < ranges; round++ {
		next := make([][]interval, len(ivs))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(DefaultProbeConcurrency)
		budget := ranges - len(ivs) // splits this round may make
		for i, iv := range ivs {
			next[i] = []interval{iv}
			if iv.done || budget == 0 {
				continue
			}
			budget--
			g.Go(func() error {
				parts, err := h.bisect(gctx, prefix, iv, retries)
				next[i] = parts
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		ivs = ivs[:0]
		progress := false
		for _, parts := range next {
			ivs = append(ivs, parts...)
			for _, p := range parts {
				progress = progress || !p.done
			}
		}
		if !progress {
			break
		}
	}
	var bounds []string
	for _, iv := range ivs[1:] {
		bounds = append(bounds, iv.after)
	}
	return bounds, nil
}

// bisect probes one interval: the first key after its midpoint.
func (h *Handler) bisect(ctx context.Context, prefix string, iv interval, retries *s3client.RetryCounter) ([]interval, error) {
	m := midpoint(iv.first, iv.until, iv.open)
	if m < iv.first || !iv.open && m >= iv.until || !utf8.ValidString(m) {
		iv.done = true
		return []interval{iv}, nil
	}
	out, err := h.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(h.Config.SourceBucket), Prefix: aws.String(prefix), StartAfter: aws.String(m), MaxKeys: aws.Int32(1)}, retries.Option())
	if err != nil {
		return nil, fmt.Errorf("probe s3://%s/%s after %q: %w", h.Config.SourceBucket, prefix, m, err)
	}
	if len(out.Contents) > 0 {
		k := aws.ToString(out.Contents[0].Key)
		if k > m && (iv.open || k <= iv.until) {
			return []interval{
				{after: iv.after, first: iv.first, until: m},
				{after: m, first: k, until: iv.until, open: iv.open},
			}, nil
		}
	}
	// Nothing in (m, until]: the interval ends at m.
	if m == iv.first {
		iv.done = true
	}
	iv.until, iv.open = m, false
	return []interval{iv}, nil
}

// The code points a key may hold, and the last of ASCII: probes stay in ASCII while the key
// there is ASCII, where most keys are.
const (
	maxRune    = utf8.MaxRune
	maxASCII   = 0x7f
	surrogateL = 0xd800
	surrogateH = 0xdfff
)

// commonPrefix returns the longest prefix of first (the source's first key under prefix) that
// every key under prefix starts with, at least prefix: by binary search on its length in code
// points, one probe a step (ListObjectsV2 StartAfter=P+U+10FFFF, MaxKeys=1 finds a key not
// starting with P, since none is below first).
func (h *Handler) commonPrefix(ctx context.Context, prefix, first string, retries *s3client.RetryCounter) (string, error) {
	runes := []rune(first)
	lo, hi := len([]rune(prefix)), len(runes) // every key starts with runes[:lo]; the answer is at most hi
	for lo < hi {
		mid := (lo + hi + 1) / 2
		p := string(runes[:mid])
		out, err := h.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(h.Config.SourceBucket), Prefix: aws.String(prefix), StartAfter: aws.String(p + string(rune(maxRune))), MaxKeys: aws.Int32(1)}, retries.Option())
		if err != nil {
			return "", fmt.Errorf("probe s3://%s/%s for the keys' common prefix: %w", h.Config.SourceBucket, prefix, err)
		}
		if len(out.Contents) == 0 {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return string(runes[:lo]), nil
}

// midpoint returns a valid UTF-8 string m with a ≤ m < b (b ignored when open), about halfway
// between them in code point order (which is UTF-8 byte order); a itself when nothing fits.
func midpoint(a, b string, open bool) string {
	ar, br := []rune(a), []rune(b)
	var out []rune
	for i := 0; ; i++ {
		ai := rune(-1)
		if i < len(ar) {
			ai = ar[i]
		}
		bi := rune(maxRune + 1)
		if !open {
			if i >= len(br) {
				return a // b is a prefix of a: not a < b
			}
			bi = br[i]
		}
		if ai == bi {
			out = append(out, ai)
			continue
		}
		if c, ok := between(ai, bi); ok {
			return string(append(out, c))
		}
		if ai < 0 {
			return a // a is a prefix of b, whose next code point is the smallest: nothing fits
		}
		// No code point between them here: keep a's and go on towards the open end.
		out, open = append(out, ai), true
	}
}

// between returns a code point c with lo < c < hi, halfway (within ASCII while lo is ASCII, where
// most keys are), never NUL nor a surrogate.
func between(lo, hi rune) (rune, bool) {
	first, last := max(lo+1, 1), hi-1
	if lo < maxASCII && last > maxASCII {
		last = maxASCII
	}
	if first > last {
		return 0, false
	}
	c := first + (last-first)/2
	if c >= surrogateL && c <= surrogateH {
		switch {
		case surrogateL-1 >= first:
			c = surrogateL - 1
		case surrogateH+1 <= last:
			c = surrogateH + 1
		default:
			return 0, false
		}
	}
	return c, true
}

// cut makes the ranges (after, until] cuts at bounds (in increasing order, strictly inside),
// numbered from first on.
func (h *Handler) cut(cur Cursor, after, until string, bounds []string, first int) []Range {
	afters := append([]string{after}, bounds...)
	ranges := make([]Range, len(afters))
	for i, a := range afters {
		end := until
		if i < len(bounds) {
			end = bounds[i]
		}
		ranges[i] = Range{Index: first + i, After: a, Until: end, Now: cur.Position.Now, Destinations: checked(cur.Totals.Destinations),
			ETagIndex: cur.Position.Index.Read}
	}
	return ranges
}

// writeRanges stores a ranges file for the ListRanges Map (JSON Lines, one Range a line).
func (h *Handler) writeRanges(ctx context.Context, key string, ranges []Range, retries *s3client.RetryCounter) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range ranges {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return h.put(ctx, key, buf.Bytes(), retries)
}

// checked returns the further destinations as their check left them: names, buckets and errors.
func checked(ds []report.DestinationTotals) []report.DestinationTotals {
	var out []report.DestinationTotals
	for _, d := range ds {
		out = append(out, report.DestinationTotals{Name: d.Name, Bucket: d.Bucket, Error: d.Error})
	}
	return out
}

// writeRangeResult stores a listed range's result for the plan. A retried invocation rewrites
// it whole.
func (h *Handler) writeRangeResult(ctx context.Context, execution string, r Range, cur Cursor, early int, rest *Range, retries *s3client.RetryCounter) error {
	res := RangeResult{Range: r, Spill: rest, Totals: cur.Totals, CopyBatches: cur.Position.CopyBatches, DeleteBatches: cur.Position.DeleteBatches,
		EarlyCopies: early, Hints: cur.Position.Hints, TailKeys: cur.Position.SinceHint, Destinations: cur.Position.Destinations,
		CarryFiles: cur.Position.Index.NextCarry}
	data, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return h.put(ctx, RangeResultKey(execution, r.Index), data, retries)
}

// plan merges the ranges' results: their totals summed, the guards applied to the sum, the one
// manifest (every range's copy batches, then their deletion batches unless withheld), the ETag
// index generation of the ranges' copied files, and the hints for the next run.
func (h *Handler) plan(ctx context.Context, req Request, opts execinput.Options) (Response, error) {
	if req.Cursor == nil || req.Cursor.Position.Ranges <= 0 {
		return Response{}, &fault.InvalidInput{Msg: "lister plan: needs the split's cursor, with ranges"}
	}
	retries := &s3client.RetryCounter{}
	cur := *req.Cursor
	cur.Totals.Invocations++
	n, examined := cur.Position.Ranges, cur.Position.Examined
	results := make([]RangeResult, n)
	// The results of this pass first: a range that turned out large sends the plan to another
	// pass, which needs none of the earlier passes' results.
	if err := h.readRangeResults(ctx, req.Execution, results, examined, retries); err != nil {
		return Response{}, err
	}
	var spills []Range
	for _, res := range results[examined:] {
		if res.Spill != nil {
			spills = append(spills, *res.Spill)
		}
	}
	if len(spills) > 0 {
		return h.resplit(ctx, req, opts, cur, spills, retries)
	}
	if err := h.readRangeResults(ctx, req.Execution, results[:examined], 0, retries); err != nil {
		return Response{}, err
	}
	// The ranges in key order (a range split while listed is followed by the ranges of its rest,
	// numbered after all others).
	order := make([]int, n)
	for r := range order {
		order[r] = r
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(results[a].Range.After, results[b].Range.After) })
	var early []string
	dests := h.Config.Destinations
	p := planned{destCopies: make([][]string, len(dests)), destDeletions: make([][]string, len(dests))}
	rangeCopies, rangeCarries := make([]int, n), make([]int, n)
	var hints []Hint
	var tail int64
	for _, r := range order {
		res := results[r]
		cur.Totals.Add(res.Totals)
		if res.EarlyCopies > res.CopyBatches {
			return Response{}, fmt.Errorf("lister plan: range %d copied %d batches early of its %d", r, res.EarlyCopies, res.CopyBatches)
		}
		for seq := range res.CopyBatches {
			if seq < res.EarlyCopies {
				early = append(early, batch.RangeKey(req.Execution, r, seq))
			} else {
				p.copies = append(p.copies, batch.RangeKey(req.Execution, r, seq))
			}
		}
		for seq := range res.DeleteBatches {
			p.deletions = append(p.deletions, batch.RangeDeleteKey(req.Execution, r, seq))
		}
		if len(res.Destinations) != len(dests) {
			return Response{}, fmt.Errorf("lister plan: range %d counted batches for %d further destinations; the configuration has %d (DESTINATIONS changed during the run?)", r, len(res.Destinations), len(dests))
		}
		for i, d := range dests {
			for seq := range res.Destinations[i].CopyBatches {
				p.destCopies[i] = append(p.destCopies[i], batch.RangeDestinationKey(req.Execution, d.Name, r, seq))
			}
			for seq := range res.Destinations[i].DeleteBatches {
				p.destDeletions[i] = append(p.destDeletions[i], batch.RangeDestinationDeleteKey(req.Execution, d.Name, r, seq))
			}
		}
		rangeCopies[r], rangeCarries[r] = res.CopyBatches, res.CarryFiles
		for i, hn := range res.Hints {
			if i == 0 {
				hn.Keys += tail
			}
			hints = append(hints, hn)
		}
		if len(res.Hints) > 0 {
			tail = 0
		}
		tail += res.TailKeys
	}
	cur.Position.CopyBatches, cur.Position.DeleteBatches = len(p.copies), len(p.deletions)
	cur.Totals.Ranges = n
	resp := Response{Done: true, DryRun: opts.DryRun}
	deletion, chg := guard.Check(cur.Totals, h.limits(opts))
	resp.Guards = []report.Guard{deletion, chg}
	for _, gd := range resp.Guards {
		if gd.Tripped {
			h.Logger.WarnContext(ctx, "guard tripped", "execution", req.Execution, "guard", gd.Name, "error", gd.Error, "message", gd.Message)
		}
	}
	withheld := h.furtherGuards(ctx, req.Execution, cur.Totals.Destinations, h.limits(opts), &resp.Guards)
	if !opts.DryRun {
		// The ranges' children copied their first batches already; the Copy Map runs the rest,
		// then the deletions unless withheld. The reporter reads both lists.
		if err := batch.WriteEarlyManifest(ctx, h.S3, h.Config.RunBucket, req.Execution, early, retries.Option()); err != nil {
			return Response{}, err
		}
		keys := p.manifest(dests, deletion.Tripped, withheld)
		if err := batch.WriteManifestKeys(ctx, h.S3, h.Config.RunBucket, req.Execution, keys, retries.Option()); err != nil {
			return Response{}, err
		}
		resp.ManifestKey, resp.ManifestBatches = batch.ManifestKey(req.Execution), len(keys)
		gen := etagindex.Generation{Execution: req.Execution, RangeCarryFiles: rangeCarries, RangeCopyBatches: rangeCopies}
		if !slices.IsSorted(order) {
			gen.Order = order
		}
		if err := etagindex.Commit(ctx, h.S3, h.Config.RunBucket, gen, retries.Option()); err != nil {
			return Response{}, err
		}
		if err := h.writeHints(ctx, req.Execution, opts.Prefix, hints, cur.Totals.Listed, retries); err != nil {
			return Response{}, err
		}
		if err := h.writePointer(ctx, SizeKey, req.Execution, opts.Prefix, cur.Totals.Listed, retries); err != nil {
			return Response{}, err
		}
	}
	t := &cur.Totals
	h.Logger.InfoContext(ctx, "planned", "execution", req.Execution, "ranges", n, "resplits", cur.Position.Resplits, "batches", t.Batches,
		"listed", t.Listed, "new", t.New, "changed", t.Changed, "unchanged", t.Unchanged, "toDelete", t.ToDelete)
	t.Retries += retries.Count()
	resp.Cursor = cur
	return resp, nil
}

// readRangeResults reads the results of ranges from … len(results)-1 into results[from:]
// (results[r] is range r's), DefaultRangeReads at a time.
func (h *Handler) readRangeResults(ctx context.Context, execution string, results []RangeResult, from int, retries *s3client.RetryCounter) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(DefaultRangeReads)
	for r := from; r < len(results); r++ {
		g.Go(func() error {
			key := RangeResultKey(execution, r)
			data, found, err := h.get(gctx, key, retries)
			switch {
			case err != nil:
				return err
			case !found:
				return fmt.Errorf("lister plan: range %d has no result s3://%s/%s", r, h.Config.RunBucket, key)
			}
			if err := strictjson.Unmarshal(data, &results[r]); err != nil || results[r].Range.Index != r {
				return fmt.Errorf("lister plan: range result s3://%s/%s: %v", h.Config.RunBucket, key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// resplit cuts the rest of each range that turned out large into new ranges, by probing, for
// another pass of the ListRanges Map: a share of the ranges probing would cut for a whole bucket
// each, numbered after the ranges so far. The ranges of the last pass (DefaultMaxResplits) do
// not split again.
func (h *Handler) resplit(ctx context.Context, req Request, opts execinput.Options, cur Cursor, spills []Range, retries *s3client.RetryCounter) (Response, error) {
	n := cur.Position.Ranges
	per := max(1, min(ProbeRangesPerLister*h.Config.ListConcurrency/len(spills), (DefaultMaxRanges-n)/len(spills)))
	last := cur.Position.Resplits+1 >= DefaultMaxResplits
	var ranges []Range
	for _, sp := range spills {
		bounds, err := h.probeWithin(ctx, opts.Prefix, sp.After, sp.Until, per, retries)
		if err != nil {
			return Response{}, err
		}
		rs := h.cut(cur, sp.After, sp.Until, bounds, n+len(ranges))
		for i := range rs {
			rs[i].NoSpill = last
		}
		ranges = append(ranges, rs...)
	}
	cur.Position.Resplits++
	key := RangesPassKey(req.Execution, cur.Position.Resplits)
	if err := h.writeRanges(ctx, key, ranges, retries); err != nil {
		return Response{}, err
	}
	cur.Position.Examined, cur.Position.Ranges = n, n+len(ranges)
	cur.Totals.Retries += retries.Count()
	h.Logger.InfoContext(ctx, "ranges turned out large: their rest is listed in new ranges", "execution", req.Execution,
		"large", len(spills), "ranges", len(ranges), "pass", cur.Position.Resplits)
	return Response{Cursor: cur, DryRun: opts.DryRun, Guards: []report.Guard{}, CopyBatches: []string{},
		Ranges: len(ranges), RangesKey: key, ListConcurrency: h.Config.ListConcurrency}, nil
}

// writeHints stores a ranged run's hints (at most DefaultMaxHints) and points the next run's
// split at them.
func (h *Handler) writeHints(ctx context.Context, execution, prefix string, hints []Hint, listed int64, retries *s3client.RetryCounter) error {
	if len(hints) > DefaultMaxHints {
		hints = thin(hints, (len(hints)+DefaultMaxHints-1)/DefaultMaxHints)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, hn := range hints {
		if err := enc.Encode(hn); err != nil {
			return err
		}
	}
	if err := h.put(ctx, HintsKey(execution), buf.Bytes(), retries); err != nil {
		return err
	}
	return h.writePointer(ctx, HintsPointerKey, execution, prefix, listed, retries)
}

// writePointer writes a hintsPointer to key (HintsPointerKey or SizeKey).
func (h *Handler) writePointer(ctx context.Context, key, execution, prefix string, listed int64, retries *s3client.RetryCounter) error {
	data, err := json.Marshal(hintsPointer{Execution: execution, Source: h.Config.SourceBucket, Prefix: prefix, Keys: listed})
	if err != nil {
		return err
	}
	return h.put(ctx, key, data, retries)
}

func (h *Handler) put(ctx context.Context, key string, body []byte, retries *s3client.RetryCounter) error {
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key), Body: bytes.NewReader(body)}, retries.Option()); err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", h.Config.RunBucket, key, err)
	}
	return nil
}

// get reads an object of the run bucket; found is false when it does not exist.
func (h *Handler) get(ctx context.Context, key string, retries *s3client.RetryCounter) (data []byte, found bool, err error) {
	out, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)}, retries.Option())
	switch {
	case fault.IsNotFound(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read s3://%s/%s: %w", h.Config.RunBucket, key, err)
	}
	defer out.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(out.Body).WriteTo(&b); err != nil {
		return nil, false, fmt.Errorf("read s3://%s/%s: %w", h.Config.RunBucket, key, err)
	}
	return []byte(b.String()), true, nil
}
