package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/destination"
)

// Further destinations (issue 13) and memory at scale (issues 13 and 15), both run through the
// child runner (child.go):
//
//   - destinations: per repetition, the ceiling at one concurrency, a full run of the small set to
//     the backup bucket alone and a full run to the backup bucket and a second bucket on the same
//     server (DESTINATIONS), each into fresh buckets, in an order that rotates with the
//     repetition; reported as the two-destination run's time over the one-destination run's
//     (target ≤ targetTwoDestRatio) and each run's copies per second against the ceiling's.
//   - scale: for each count, a full and then an idle run with one destination and with two, their
//     peak RSS and peak Go heap; flat means the largest count's peak within targetRSSRatio of the
//     smallest's.

// Scenario ids.
const (
	destCeilingID = "destinations ceiling"
	destOneID     = "destinations one"
	destTwoID     = "destinations two"
)

// scaleID names one run of the scale scenario: kind full or idle, n objects, k destinations.
func scaleID(kind string, n, k int) string { return fmt.Sprintf("scale %s %d %d", kind, n, k) }

// destinationsJSON is the DESTINATIONS setting for the further buckets given, named dr, dr2, …
func destinationsJSON(buckets []string) (string, []string, error) {
	type dest struct {
		Name   string `json:"name"`
		Bucket string `json:"bucket"`
	}
	var ds []dest
	var names []string
	for i, b := range buckets {
		name := "dr"
		if i > 0 {
			name = fmt.Sprintf("dr%d", i+1)
		}
		ds = append(ds, dest{Name: name, Bucket: b})
		names = append(names, name)
	}
	out, err := json.Marshal(ds)
	return string(out), names, err
}

// runChild runs one backup of source into backup and the further buckets with the child runner,
// checks its report against w for every destination, and returns it with its peak Go heap.
func (b *bench) runChild(ctx context.Context, source, backup string, further []string, w want) (*localRun, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var extra, names []string
	if len(further) > 0 {
		var setting string
		if setting, names, err = destinationsJSON(further); err != nil {
			return nil, err
		}
		extra = append(extra, destination.Variable+"="+setting)
	}
	stdout, r, err := b.process(exec.CommandContext(ctx, self, childFlag), source, backup, extra)
	if err != nil {
		return nil, err
	}
	what := fmt.Sprintf("backup %s → %s", source, strings.Join(append([]string{backup}, further...), ", "))
	var out childOutput
	if err := json.Unmarshal(stdout, &out); err != nil {
		return nil, fmt.Errorf("%s: output is not JSON: %w: %.500s", what, err, stdout)
	}
	if err := json.Unmarshal(out.Report, &r.report); err != nil {
		return nil, fmt.Errorf("%s: %s %s, report is not JSON: %w", what, out.Status, out.Error, err)
	}
	if err := checkReport(&r.report, w, names); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	r.heapPeak = int64(out.HeapPeakBytes)
	return r, nil
}

// destinations runs the two-destination scenario on the small set.
func (b *bench) destinations(ctx context.Context, d *dataset) error {
	c := b.cfg
	fmt.Fprintf(logw, "== two destinations on the same server: %d objects, %d repetitions\n", d.count(), c.reps)
	full := want{listed: d.count(), copied: d.count(), bytes: d.bytes}
	for rep := 1; rep <= c.reps; rep++ {
		steps := []func() error{
			func() error {
				dst := fmt.Sprintf("dest-ceil-r%d", rep)
				if err := createBucket(ctx, b.s3, dst, true); err != nil {
					return err
				}
				sp := b.begin()
				if err := copyAll(ctx, b.s3, d, dst, c.destConc); err != nil {
					return err
				}
				m := sp.end(nil)
				if err := verifyCopy(ctx, b.s3, d, dst); err != nil {
					return err
				}
				b.res.add(destCeilingID, "destinations", d.count(), d.bytes, m)
				fmt.Fprintf(logw, "   rep %d ceiling, concurrency %d: %s (%.0f copies/s)\n", rep, c.destConc, m.wall.Round(time.Millisecond), float64(d.count())/m.wall.Seconds())
				return nil
			},
			func() error { return b.destRun(ctx, d, rep, 1, full) },
			func() error { return b.destRun(ctx, d, rep, 2, full) },
		}
		// Rotate the order, so that no run always follows the same one's writes.
		k := (rep - 1) % len(steps)
		for _, step := range append(steps[k:], steps[:k]...) {
			if err := step(); err != nil {
				return err
			}
		}
	}
	return nil
}

// destRun is one full run of the destinations scenario to k destinations (the backup bucket and
// k-1 further ones), each fresh; every destination's count and bytes are checked after.
func (b *bench) destRun(ctx context.Context, d *dataset, rep, k int, w want) error {
	bk, further := b.freshBuckets(fmt.Sprintf("dest%d-r%d", k, rep), k)
	for _, name := range append([]string{bk}, further...) {
		if err := createBucket(ctx, b.s3, name, true); err != nil {
			return err
		}
	}
	r, err := b.runChild(ctx, d.bucket, bk, further, w)
	if err != nil {
		return err
	}
	for _, name := range append([]string{bk}, further...) {
		if err := verifyCopy(ctx, b.s3, d, name); err != nil {
			return err
		}
	}
	id := destOneID
	if k == 2 {
		id = destTwoID
	}
	b.res.add(id, "destinations", d.count(), d.bytes, r.measurement)
	fmt.Fprintf(logw, "   rep %d bucketvault full, %d destination(s): %s (%.0f copies/s, peak RSS %d MiB, heap %.1f MiB, CPU s client %.1f, MinIO %.1f)\n",
		rep, k, r.wall.Round(time.Millisecond), float64(int64(k)*d.count())/r.wall.Seconds(), r.maxRSSKiB>>10, float64(r.heapPeak)/(1<<20), r.clientCPU.Seconds(), r.serverCPU.Seconds())
	return nil
}

// freshBuckets names a backup bucket and k-1 further ones for one run.
func (b *bench) freshBuckets(prefix string, k int) (string, []string) {
	var further []string
	for i := 2; i <= k; i++ {
		further = append(further, fmt.Sprintf("%s-d%d", prefix, i))
	}
	return prefix + "-d1", further
}

// scale runs the memory-at-scale scenario: for each count of cfg.scale, its own source set, then
// with one and with two destinations a full run into fresh buckets and an idle run after it.
func (b *bench) scale(ctx context.Context) error {
	for _, n := range b.cfg.scale {
		fmt.Fprintf(logw, "== memory at scale: uploading %d objects (not measured)\n", n)
		src := fmt.Sprintf("src-scale-%d", n)
		if err := createBucket(ctx, b.s3, src, false); err != nil {
			return err
		}
		d, err := uploadSmall(ctx, b.s3, src, n, b.cfg.smallMin, b.cfg.smallMax, 4)
		if err != nil {
			return err
		}
		d.name = fmt.Sprintf("scale%d", n)
		b.res.addSet(d)
		for k := 1; k <= 2; k++ {
			bk, further := b.freshBuckets(fmt.Sprintf("scale-%d-k%d", n, k), k)
			for _, name := range append([]string{bk}, further...) {
				if err := createBucket(ctx, b.s3, name, true); err != nil {
					return err
				}
			}
			for _, kind := range []string{"full", "idle"} {
				w := want{listed: d.count(), copied: d.count(), bytes: d.bytes}
				if kind == "idle" {
					w = want{listed: d.count(), unchanged: d.count()}
				}
				r, err := b.runChild(ctx, d.bucket, bk, further, w)
				if err != nil {
					return err
				}
				if kind == "full" {
					for _, name := range append([]string{bk}, further...) {
						if err := verifyCopy(ctx, b.s3, d, name); err != nil {
							return err
						}
					}
				}
				b.res.add(scaleID(kind, n, k), d.name, d.count(), w.bytes, r.measurement)
				fmt.Fprintf(logw, "   %s run, %d objects, %d destination(s): %s (%.0f objects/s), peak RSS %.1f MiB, peak heap %.1f MiB\n",
					kind, n, k, r.wall.Round(time.Millisecond), float64(n)/r.wall.Seconds(), float64(r.maxRSSKiB)/1024, float64(r.heapPeak)/(1<<20))
			}
		}
	}
	return nil
}
