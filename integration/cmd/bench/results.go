package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Targets of issue #4.
const (
	targetFullRatio = 0.90 // full run throughput ≥ 90% of the ceiling
	targetIdleRatio = 1.5  // idle run ≤ 1.5 × the time to list both buckets
	targetRSSRatio  = 1.25 // peak RSS at the big count ≤ 1.25 × at the small count ("flat")
)

// Target of issue 13: a full run to two destinations on the same server takes at most this many
// times the full run to one, in the same benchmark.
const targetTwoDestRatio = 2.2

// results is everything one benchmark run measured; it is written as JSON and printed as tables.
type results struct {
	Command   string            `json:"command"`
	Started   string            `json:"started"`
	Finished  string            `json:"finished"`
	Machine   machine           `json:"machine"`
	Config    map[string]string `json:"config"`
	Peers     []string          `json:"peers"`
	Sets      []setInfo         `json:"sets"`
	Scenarios []*series         `json:"scenarios"`
	Ceiling   []*ceilSeries     `json:"ceilingByConcurrency"`
	Memory    *memory           `json:"memory,omitempty"`
	// PerRepBest is, per set, bucketvault's full-run ratio against the fastest concurrency of
	// each repetition (see finish).
	PerRepBest map[string]float64 `json:"fullRatioAgainstPerRepetitionBest,omitempty"`
	// Destinations and Scale summarise those scenarios (destinations.go).
	Destinations *destSummary `json:"destinations,omitempty"`
	Scale        []scaleFlat  `json:"scale,omitempty"`
}

// destSummary is the two-destination scenario's outcome; every ratio is the median over the
// repetitions of the ratio within each.
type destSummary struct {
	Concurrency int `json:"ceilingConcurrency"`
	// OneVsCeiling and TwoVsCeiling are each run's copies per second over the ceiling's.
	OneVsCeiling float64 `json:"oneVsCeiling"`
	TwoVsCeiling float64 `json:"twoVsCeiling"`
	// TwoOverOne is the two-destination run's time over the one-destination run's.
	TwoOverOne float64 `json:"twoOverOne"`
	Target     float64 `json:"target"`
	Met        bool    `json:"met"`
}

// scaleFlat is, for one number of destinations and one kind of run, the peaks at the smallest
// and the largest count of the scale scenario.
type scaleFlat struct {
	Destinations int     `json:"destinations"`
	Kind         string  `json:"kind"` // full or idle
	SmallObjects int     `json:"smallObjects"`
	BigObjects   int     `json:"bigObjects"`
	RSSRatio     float64 `json:"rssRatio"`
	HeapRatio    float64 `json:"heapRatio"`
	Met          bool    `json:"met"` // RSSRatio ≤ targetRSSRatio
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpuModel"`
	Memory    string `json:"memory"`
	GoVersion string `json:"goVersion"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	MinIO     string `json:"minio"`
	DataDir   string `json:"minioDataDir"`
	// Scanner is MinIO's background scanner speed (MINIO_SCANNER_SPEED).
	Scanner    string `json:"minioScanner,omitempty"`
	LoadBefore string `json:"loadBefore"`
	LoadAfter  string `json:"loadAfter"`
}

type setInfo struct {
	Name    string `json:"name"`
	Bucket  string `json:"bucket"`
	Objects int64  `json:"objects"`
	Bytes   int64  `json:"bytes"`
}

// series is one scenario's repetitions and what they add up to.
type series struct {
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	Set       string    `json:"set"`
	Objects   int64     `json:"objects"`
	Bytes     int64     `json:"bytes"`
	Seconds   []float64 `json:"seconds"`
	MaxRSSKiB []int64   `json:"maxRssKiB,omitempty"`
	HeapPeak  []int64   `json:"heapPeakBytes,omitempty"`
	// CPU seconds (user+system) of the client (bucketvault, a peer, or the benchmark's own
	// minimal client) and of MinIO during each repetition.
	ClientCPU []float64 `json:"clientCpuSeconds"`
	ServerCPU []float64 `json:"serverCpuSeconds"`
	Detail    string    `json:"detail,omitempty"`
	Median    float64   `json:"medianSeconds"`
	Min       float64   `json:"minSeconds"`
	Max       float64   `json:"maxSeconds"`
	ObjPerSec float64   `json:"objectsPerSecond"`
	MBPerSec  float64   `json:"mbPerSecond"`
	Ratio     *float64  `json:"ratio,omitempty"`
	RatioTo   string    `json:"ratioTo,omitempty"`
	Target    string    `json:"target,omitempty"`
	Met       *bool     `json:"met,omitempty"`
}

type ceilSeries struct {
	Set         string    `json:"set"`
	Concurrency int       `json:"concurrency"`
	Seconds     []float64 `json:"seconds"`
	ClientCPU   []float64 `json:"clientCpuSeconds"`
	ServerCPU   []float64 `json:"serverCpuSeconds"`
	Median      float64   `json:"medianSeconds"`
	ObjPerSec   float64   `json:"objectsPerSecond"`
	MBPerSec    float64   `json:"mbPerSecond"`
}

type memory struct {
	SmallObjects int64   `json:"smallObjects"`
	SmallKiB     int64   `json:"smallMaxRssKiB"` // median over the small full runs
	BigObjects   int64   `json:"bigObjects"`
	BigKiB       int64   `json:"bigMaxRssKiB"`
	Ratio        float64 `json:"ratio"`
	Met          bool    `json:"met"`
}

func (r *results) addSet(d *dataset) {
	r.Sets = append(r.Sets, setInfo{Name: d.name, Bucket: d.bucket, Objects: d.count(), Bytes: d.bytes})
}

func (r *results) find(id string) *series {
	for _, s := range r.Scenarios {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// add records one repetition of a scenario.
func (r *results) add(id, set string, objects, bytes int64, m measurement) {
	s := r.find(id)
	if s == nil {
		s = &series{ID: id, Label: label(id), Set: set, Objects: objects, Bytes: bytes}
		r.Scenarios = append(r.Scenarios, s)
	}
	s.Seconds = append(s.Seconds, m.wall.Seconds())
	s.ClientCPU = append(s.ClientCPU, m.clientCPU.Seconds())
	s.ServerCPU = append(s.ServerCPU, m.serverCPU.Seconds())
	if m.maxRSSKiB > 0 {
		s.MaxRSSKiB = append(s.MaxRSSKiB, m.maxRSSKiB)
	}
	if m.heapPeak > 0 {
		s.HeapPeak = append(s.HeapPeak, m.heapPeak)
	}
}

func (r *results) detail(id, d string) {
	if s := r.find(id); s != nil {
		s.Detail = d
	}
}

func (r *results) addCeiling(set string, conc int, m measurement) {
	var c *ceilSeries
	for _, cs := range r.Ceiling {
		if cs.Set == set && cs.Concurrency == conc {
			c = cs
		}
	}
	if c == nil {
		c = &ceilSeries{Set: set, Concurrency: conc}
		r.Ceiling = append(r.Ceiling, c)
	}
	c.Seconds = append(c.Seconds, m.wall.Seconds())
	c.ClientCPU = append(c.ClientCPU, m.clientCPU.Seconds())
	c.ServerCPU = append(c.ServerCPU, m.serverCPU.Seconds())
}

// finish derives the ceilings, medians, ratios and whether each target was met.
//
// The ceiling of a set is the concurrency with the best median over the repetitions: which
// concurrency suits the server is a property of the server, chosen from all the evidence. Taking
// the fastest concurrency of each repetition instead would make the ceiling the minimum of several
// noisy samples, biased toward the ceiling by about one sample's noise; that figure is kept as
// perRepBest and printed beside the ratios, not used for the targets.
func (r *results) finish() {
	var ceilings []*series
	r.PerRepBest = map[string]float64{}
	for _, set := range r.Sets {
		var cs []*ceilSeries
		for _, c := range r.Ceiling {
			if c.Set == set.Name {
				cs = append(cs, c)
				c.Median = median(c.Seconds)
				c.ObjPerSec = float64(set.Objects) / c.Median
				c.MBPerSec = float64(set.Bytes) / 1e6 / c.Median
			}
		}
		if len(cs) == 0 {
			continue
		}
		bi := 0
		for j, c := range cs {
			if c.Median < cs[bi].Median {
				bi = j
			}
		}
		b := cs[bi]
		s := &series{ID: "ceiling-" + set.Name, Label: label("ceiling-" + set.Name), Set: set.Name, Objects: set.Objects, Bytes: set.Bytes,
			Seconds: b.Seconds, ClientCPU: b.ClientCPU, ServerCPU: b.ServerCPU}
		s.Detail = fmt.Sprintf("concurrency %d, the best median over %d repetitions", b.Concurrency, len(b.Seconds))
		fast := &series{Seconds: slices.Clone(b.Seconds)}
		for i := range fast.Seconds {
			for _, c := range cs {
				if i < len(c.Seconds) && c.Seconds[i] < fast.Seconds[i] {
					fast.Seconds[i] = c.Seconds[i]
				}
			}
		}
		if full := r.find("bv-full-" + set.Name); full != nil {
			r.PerRepBest[set.Name] = *paired(fast, full)
		}
		ceilings = append(ceilings, s)
	}
	r.Scenarios = append(ceilings, r.Scenarios...)
	for _, s := range r.Scenarios {
		s.Median, s.Min, s.Max = median(s.Seconds), slices.Min(s.Seconds), slices.Max(s.Seconds)
		s.ObjPerSec = float64(s.Objects) / s.Median
		s.MBPerSec = float64(s.Bytes) / 1e6 / s.Median
	}
	for _, s := range r.Scenarios {
		ceil := r.find("ceiling-" + s.Set)
		if s.Set == "big" {
			ceil = r.find("ceiling-small")
		}
		list := r.find("list-" + s.Set)
		full := r.find("bv-full-" + s.Set)
		switch {
		case strings.HasPrefix(s.ID, "ceiling-"):
			s.Ratio, s.RatioTo = ptr(1.0), "ceiling"
		case strings.HasPrefix(s.ID, "sweep "):
			def := r.find("sweep defaults")
			if s.Set == "large" {
				def = r.find("sweep large defaults")
			}
			if def != nil {
				s.Ratio, s.RatioTo = paired(def, s), "throughput of the defaults in the same repetitions"
			}
		case strings.HasPrefix(s.ID, "bv-full-"):
			if ceil != nil {
				s.Ratio, s.RatioTo = paired(ceil, s), "ceiling throughput"
				if s.ID == "bv-full-small" || s.ID == "bv-full-large" {
					s.Target, s.Met = fmt.Sprintf("≥ %.2f", targetFullRatio), ptr(*s.Ratio >= targetFullRatio)
				}
			}
		case strings.HasPrefix(s.ID, "bv-idle-"):
			if list != nil {
				s.Ratio, s.RatioTo = paired(s, list), "list time"
				// A handful of large objects lists in milliseconds: the ratio then measures process
				// start-up, not listing, and the target applies to the small set only.
				if s.Set == "small" {
					s.Target, s.Met = fmt.Sprintf("≤ %.1f × list", targetIdleRatio), ptr(*s.Ratio <= targetIdleRatio)
				}
			}
		case strings.HasPrefix(s.ID, "bv-changed-"):
			if list != nil && ceil != nil {
				ideal := list.Median + float64(s.Objects)/ceil.ObjPerSec
				s.Ratio, s.RatioTo = ptr(s.Median/ideal), "time of list both + copy changed at ceiling"
			}
		case strings.HasPrefix(s.ID, "peer-"):
			if ceil != nil {
				s.Ratio, s.RatioTo = paired(ceil, s), "ceiling throughput"
			}
			if full != nil {
				s.Target, s.Met = "bucketvault faster", ptr(full.Median < s.Median)
			}
		}
	}
	r.finishDestinations()
	r.finishScale()
	small, big := r.find("bv-full-small"), r.find("bv-full-big")
	if small != nil && big != nil && len(small.MaxRSSKiB) > 0 && len(big.MaxRSSKiB) > 0 {
		m := &memory{SmallObjects: small.Objects, SmallKiB: medianInt(small.MaxRSSKiB), BigObjects: big.Objects, BigKiB: medianInt(big.MaxRSSKiB)}
		m.Ratio = float64(m.BigKiB) / float64(m.SmallKiB)
		m.Met = m.Ratio <= targetRSSRatio
		r.Memory = m
	}
}

func label(id string) string {
	kind, set, _ := strings.Cut(id, "-")
	switch {
	case strings.HasPrefix(id, "sweep "):
		return "bucketvault full, " + strings.TrimPrefix(id, "sweep ")
	case id == destCeilingID:
		return "ceiling: CopyObject, minimal client (two-destination scenario)"
	case id == destOneID:
		return "bucketvault full, one destination"
	case id == destTwoID:
		return "bucketvault full, two destinations"
	case strings.HasPrefix(id, "scale "):
		f := strings.Fields(id)
		return fmt.Sprintf("bucketvault %s, %s objects, %s destination(s)", f[1], f[2], f[3])
	case strings.HasPrefix(id, "peer-"):
		tool, set, _ := strings.Cut(set, "-")
		return map[string]string{"rclone": "rclone copy", "aws": "aws s3 sync"}[tool] + " (" + set + ")"
	}
	switch kind {
	case "listing":
		return "bucketvault idle, " + strings.ReplaceAll(set, "-", " ") + " per LIST (listing set)"
	case "ceiling":
		return "ceiling: CopyObject, minimal client (" + set + ")"
	case "list":
		if warm, ok := strings.CutPrefix(set, "cold-"); ok {
			return "list source + backup, first after the full run (" + warm + ")"
		}
		return "list source + backup (" + set + ")"
	}
	what, set, _ := strings.Cut(set, "-")
	return "bucketvault " + map[string]string{"full": "full", "idle": "idle", "changed": "changed"}[what] + " (" + set + ")"
}

func (c *config) describe() map[string]string {
	join := func(v []int) string {
		s := make([]string, len(v))
		for i, n := range v {
			s[i] = strconv.Itoa(n)
		}
		return strings.Join(s, ",")
	}
	large := make([]string, len(c.large))
	for i, n := range c.large {
		large[i] = sizeString(n)
	}
	return map[string]string{
		"reps": strconv.Itoa(c.reps), "small": strconv.Itoa(c.small),
		"smallSizes": fmt.Sprintf("%d–%d bytes", c.smallMin, c.smallMax), "big": strconv.Itoa(c.big),
		"large": strings.Join(large, ","), "uploadPart": sizeString(c.uploadPart),
		"concurrency": join(c.concurrencies), "largeConcurrency": join(c.largeConc),
		"changedPercent": strconv.FormatFloat(c.changedPct, 'g', -1, 64),
		"rclone":         fmt.Sprintf("--transfers %d --checkers %d --fast-list", c.rcloneXfers, c.rcloneChecks),
		"aws":            fmt.Sprintf("s3.max_concurrent_requests %d", c.awsRequests),
		"sweepCopier":    join(c.sweepCopier), "sweepBatch": join(c.sweepBatch), "sweepMap": join(c.sweepMap), "sweepPart": join(c.sweepPart), "sweepReps": strconv.Itoa(c.sweepReps),
		"env": strings.Join(c.env, ","), "dataDir": c.dataDir,
		"destinations": strconv.FormatBool(c.destinations), "destinationsConcurrency": strconv.Itoa(c.destConc),
		"scale": join(c.scale), "only": strings.Join(slices.Sorted(maps.Keys(c.only)), ","),
	}
}

// readResults loads a results file written by an earlier run and derives its figures again from
// the raw timings (bench -report).
func readResults(path string) (*results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Scenarios = slices.DeleteFunc(r.Scenarios, func(s *series) bool { return strings.HasPrefix(s.ID, "ceiling-") })
	r.finish()
	return &r, nil
}

func writeResults(path string, r *results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(logw, "raw timings:", path)
	return nil
}

// printTable prints the results as Markdown.
func printTable(w io.Writer, r *results) {
	m := r.Machine
	fmt.Fprintf(w, "Command: `%s` (started %s, finished %s)\n\n", r.Command, r.Started, r.Finished)
	scanner := ""
	if m.Scanner != "" {
		scanner = " and its background scanner at speed " + m.Scanner
	}
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s RAM, %s %s/%s, MinIO `%s` with its data in %s%s, load average before %s, after %s\n\n",
		m.CPUs, m.CPUModel, m.Memory, m.GoVersion, m.GOOS, m.GOARCH, m.MinIO, m.DataDir, scanner, m.LoadBefore, m.LoadAfter)
	for _, s := range r.Sets {
		fmt.Fprintf(w, "- set %s: %d objects, %.1f MB (bucket %s)\n", s.Name, s.Objects, mb(s.Bytes), s.Bucket)
	}
	if len(r.Peers) > 0 {
		fmt.Fprintf(w, "- peers: %s\n", strings.Join(r.Peers, "; "))
	}
	var main []*series
	for _, s := range r.Scenarios {
		if !strings.HasPrefix(s.ID, "sweep ") && s.ID != "bv-full-big" && s.Set != "destinations" && !strings.HasPrefix(s.ID, "scale ") {
			main = append(main, s)
		}
	}
	if len(main) > 0 {
		fmt.Fprintf(w, "\n| scenario | objects | median s (min–max) | objects/s | MB/s | CPU s: client / MinIO | ratio | target | met? |\n|---|---:|---:|---:|---:|---:|---:|---|---|\n")
		for _, s := range main {
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", s.Label, s.Objects, spread(s), rate(s.ObjPerSec, s.ID), mbRate(s), cpu(s.ClientCPU, s.ServerCPU), ratio(s), s.Target, met(s.Met))
		}
		fmt.Fprintln(w, "\nRatios (median over repetitions of the ratio within each repetition): full runs and peers to the ceiling's throughput; idle to the time to list both buckets; changed to listing both + copying the changed objects at the ceiling's rate. Peak RSS is VmHWM of the bucketvault process. CPU: medians of user+system seconds of the client process (the benchmark itself for the ceiling and the listings) and of MinIO. Every timed scenario starts after sync(2).")
	}
	for _, set := range r.Sets {
		if v, ok := r.PerRepBest[set.Name]; ok {
			fmt.Fprintf(w, "\nCeiling (%s): %s. Against the fastest concurrency of each repetition instead (the minimum of several noisy samples), bucketvault's full run would be %.2f×.\n", set.Name, r.find("ceiling-"+set.Name).Detail, v)
		}
	}
	if len(r.Ceiling) > 0 {
		fmt.Fprintf(w, "\nCeiling by concurrency (median of %d):\n\n| set | concurrency | median s | objects/s | MB/s | CPU s: client / MinIO |\n|---|---:|---:|---:|---:|---:|\n", len(r.Ceiling[0].Seconds))
	}
	for _, c := range r.Ceiling {
		fmt.Fprintf(w, "| %s | %d | %.2f | %.0f | %.1f | %s |\n", c.Set, c.Concurrency, c.Median, c.ObjPerSec, c.MBPerSec, cpu(c.ClientCPU, c.ServerCPU))
	}
	if r.find("sweep defaults") != nil || r.find("sweep large defaults") != nil {
		fmt.Fprintf(w, "\nTuning (full runs; one variable at a time, others default; points interleaved per repetition):\n\n| configuration | reps | median s (min–max) | objects/s | throughput vs defaults | CPU s: client / MinIO | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|\n")
	}
	for _, s := range r.Scenarios {
		if strings.HasPrefix(s.ID, "sweep ") {
			name := strings.TrimPrefix(s.ID, "sweep ")
			if name == "defaults" {
				name = "defaults (COPIER_CONCURRENCY=32, BATCH_SIZE=1000, Map MaxConcurrency=8)"
			} else if name == "large defaults" {
				name = "large set: defaults (PART_CONCURRENCY=8)"
			} else if p, ok := strings.CutPrefix(name, "large "); ok {
				name = "large set: " + p
			}
			fmt.Fprintf(w, "| %s | %d | %s | %.0f | %s | %s | %.1f |\n", name, len(s.Seconds), spread(s), s.ObjPerSec, ratio(s), cpu(s.ClientCPU, s.ServerCPU), float64(medianInt(s.MaxRSSKiB))/1024)
		}
	}
	printDestinations(w, r)
	printScale(w, r)
	if mem := r.Memory; mem != nil {
		big := r.find("bv-full-big")
		fmt.Fprintf(w, "\nPeak memory (RSS of the bucketvault process, full run):\n\n| objects | peak RSS MiB | wall s | objects/s |\n|---:|---:|---:|---:|\n")
		fmt.Fprintf(w, "| %d | %.1f | %.2f | %.0f |\n", mem.SmallObjects, float64(mem.SmallKiB)/1024, r.find("bv-full-small").Median, r.find("bv-full-small").ObjPerSec)
		fmt.Fprintf(w, "| %d | %.1f | %.2f | %.0f |\n", mem.BigObjects, float64(mem.BigKiB)/1024, big.Median, big.ObjPerSec)
		fmt.Fprintf(w, "\nRatio %d/%d objects: %.2f× (target ≤ %.2f×, flat): %s\n", mem.BigObjects, mem.SmallObjects, mem.Ratio, targetRSSRatio, met(&mem.Met))
	}
}

func spread(s *series) string {
	if len(s.Seconds) == 1 {
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

func rate(v float64, id string) string {
	if strings.HasPrefix(id, "list") || strings.HasPrefix(id, "bv-idle-") {
		return fmt.Sprintf("%.0f listed", v)
	}
	return fmt.Sprintf("%.0f", v)
}

func mbRate(s *series) string {
	if s.Bytes == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", s.MBPerSec)
}

func cpu(client, server []float64) string {
	if len(client) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f / %.1f", median(client), median(server))
}

func ratio(s *series) string {
	if s.Ratio == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f", *s.Ratio)
}

func met(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "yes"
	default:
		return "**no**"
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianInt(v []int64) int64 {
	f := make([]float64, len(v))
	for i, n := range v {
		f[i] = float64(n)
	}
	if len(f) == 0 {
		return 0
	}
	return int64(median(f))
}

func ptr[T any](v T) *T { return &v }

// paired is the median over repetitions of num[i]/den[i] seconds: with the same objects, the
// throughput of den relative to num. Pairing each repetition with the reference measured next to
// it cancels most of a noisy machine's drift; without as many repetitions it is the ratio of the
// medians.
func paired(num, den *series) *float64 {
	if len(num.Seconds) != len(den.Seconds) {
		return ptr(median(num.Seconds) / median(den.Seconds))
	}
	q := make([]float64, len(num.Seconds))
	for i := range q {
		q[i] = num.Seconds[i] / den.Seconds[i]
	}
	return ptr(median(q))
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

func sizeString(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGi", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMi", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKi", n>>10)
	}
	return strconv.FormatInt(n, 10)
}
