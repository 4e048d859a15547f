package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// finishDestinations derives the two-destination scenario's ratios, each paired within a
// repetition: the two runs' copies per second against the ceiling's, and the time of the run to
// two destinations over the run to one.
func (r *results) finishDestinations() {
	ceil, one, two := r.find(destCeilingID), r.find(destOneID), r.find(destTwoID)
	if ceil == nil || one == nil || two == nil {
		return
	}
	conc, _ := strconv.Atoi(r.Config["destinationsConcurrency"])
	// The run to two destinations makes twice the ceiling's copies: against the ceiling it is
	// judged as if the ceiling had copied the set twice.
	twice := &series{Seconds: make([]float64, len(ceil.Seconds))}
	for i, v := range ceil.Seconds {
		twice.Seconds[i] = 2 * v
	}
	s := &destSummary{Concurrency: conc, OneVsCeiling: *paired(ceil, one), TwoVsCeiling: *paired(twice, two), TwoOverOne: *paired(two, one), Target: targetTwoDestRatio}
	s.Met = s.TwoOverOne <= s.Target
	r.Destinations = s
	one.Ratio, one.RatioTo = ptr(s.OneVsCeiling), "ceiling throughput"
	two.Ratio, two.RatioTo = ptr(s.TwoOverOne), "time of the run to one destination"
	two.Target, two.Met = fmt.Sprintf("≤ %.1f × one", s.Target), ptr(s.Met)
}

// finishScale compares, for each number of destinations and kind of run, the peaks at the
// largest count with those at the smallest.
func (r *results) finishScale() {
	counts := map[int]bool{}
	for _, s := range r.Scenarios {
		if f := strings.Fields(s.ID); len(f) == 4 && f[0] == "scale" {
			n, _ := strconv.Atoi(f[2])
			counts[n] = true
		}
	}
	if len(counts) < 2 {
		return
	}
	ns := slices.Sorted(maps.Keys(counts))
	lo, hi := ns[0], ns[len(ns)-1]
	r.Scale = nil
	for k := 1; k <= 2; k++ {
		for _, kind := range []string{"full", "idle"} {
			a, b := r.find(scaleID(kind, lo, k)), r.find(scaleID(kind, hi, k))
			if a == nil || b == nil || len(a.MaxRSSKiB) == 0 || len(b.MaxRSSKiB) == 0 {
				continue
			}
			f := scaleFlat{Destinations: k, Kind: kind, SmallObjects: lo, BigObjects: hi,
				RSSRatio: float64(medianInt(b.MaxRSSKiB)) / float64(medianInt(a.MaxRSSKiB))}
			if len(a.HeapPeak) > 0 && len(b.HeapPeak) > 0 {
				f.HeapRatio = float64(medianInt(b.HeapPeak)) / float64(medianInt(a.HeapPeak))
			}
			f.Met = f.RSSRatio <= targetRSSRatio
			r.Scale = append(r.Scale, f)
		}
	}
}

// printDestinations prints the two-destination scenario.
func printDestinations(w io.Writer, r *results) {
	s := r.Destinations
	if s == nil {
		return
	}
	ceil, one, two := r.find(destCeilingID), r.find(destOneID), r.find(destTwoID)
	fmt.Fprintf(w, "\nTwo destinations on the same server (full runs of %d objects into fresh versioned buckets, the ceiling at concurrency %d; %d repetitions, order rotated each repetition; every destination's report section and listing checked):\n\n",
		one.Objects, s.Concurrency, len(one.Seconds))
	fmt.Fprintf(w, "| run | copies | median s (min–max) | copies/s | vs ceiling | CPU s: client / MinIO | peak RSS MiB | peak heap MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		s      *series
		copies int64
		vs     string
	}{{ceil, ceil.Objects, "1.00"}, {one, one.Objects, fmt.Sprintf("%.2f", s.OneVsCeiling)}, {two, 2 * two.Objects, fmt.Sprintf("%.2f", s.TwoVsCeiling)}} {
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %s | %s | %s | %s |\n", row.s.Label, row.copies, spread(row.s), float64(row.copies)/row.s.Median, row.vs,
			cpu(row.s.ClientCPU, row.s.ServerCPU), mib(medianInt(row.s.MaxRSSKiB)<<10), mib(medianInt(row.s.HeapPeak)))
	}
	fmt.Fprintf(w, "\nTwo destinations / one: **%.2f×** the time (median of the ratios within each repetition; target ≤ %.1f×): %s\n", s.TwoOverOne, s.Target, met(&s.Met))
}

// printScale prints the memory-at-scale scenario.
func printScale(w io.Writer, r *results) {
	var rows []*series
	for _, s := range r.Scenarios {
		if strings.HasPrefix(s.ID, "scale ") {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nMemory at scale (one process running every function in-process; peak RSS = VmHWM sampled every 10 ms, peak heap = Go heap objects sampled every 50 ms in the process):\n\n| run | objects | destinations | wall s | objects/s | peak RSS MiB | peak heap MiB |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range rows {
		f := strings.Fields(s.ID)
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %.0f | %s | %s |\n", f[1], f[2], f[3], s.Median, float64(s.Objects)/s.Median, mib(medianInt(s.MaxRSSKiB)<<10), mib(medianInt(s.HeapPeak)))
	}
	for _, f := range r.Scale {
		fmt.Fprintf(w, "\n%s runs, %d destination(s): peak RSS %d / %d objects %.2f× (target ≤ %.2f×, flat): %s; peak heap %.2f×", f.Kind, f.Destinations, f.BigObjects, f.SmallObjects, f.RSSRatio, targetRSSRatio, met(&f.Met), f.HeapRatio)
	}
	if len(r.Scale) > 0 {
		fmt.Fprintln(w)
	}
}

func mib(bytes int64) string {
	if bytes == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(bytes)/(1<<20))
}
