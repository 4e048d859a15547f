package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/integration/minio"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/statemachine"
)

// logw receives progress lines; stdout carries only the results table.
var logw = os.Stderr

const runBucket = "bench-runs"

// bench is one benchmark run: a private MinIO, its client, the data sets and the results so far.
type bench struct {
	cfg       *config
	srv       *minio.Server
	serverEnv []string
	s3        *s3.Client
	tmp       string
	localBin  string
	peers     []peer
	res       *results
	// logDir keeps the JSON log of every bucketvault run, numbered in run order, next to
	// the results file.
	logDir string
	runs   int
}

func newBench(ctx context.Context, cfg *config) (*bench, error) {
	tmp, err := os.MkdirTemp("", "bucketvault-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, tmp: tmp, logDir: strings.TrimSuffix(cfg.out, filepath.Ext(cfg.out)) + "-logs"}
	if err := os.RemoveAll(b.logDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(b.logDir, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintln(logw, "== building bucketvault")
	if b.localBin, err = buildLocal(ctx, tmp); err != nil {
		b.close()
		return nil, err
	}
	// MinIO's background scanner walks every bucket after writes and keeps one core busy for a
	// tenth of the time for minutes, landing on whichever scenario comes next. The benchmark
	// measures the client, so it runs the scanner at its slowest unless told otherwise.
	if os.Getenv("MINIO_SCANNER_SPEED") == "" {
		if err := os.Setenv("MINIO_SCANNER_SPEED", "slowest"); err != nil {
			b.close()
			return nil, err
		}
	}
	fmt.Fprintln(logw, "== starting MinIO on loopback")
	if b.srv, err = minio.StartIn(ctx, cfg.dataDir); err != nil {
		b.close()
		return nil, err
	}
	for k, v := range b.srv.Env() {
		b.serverEnv = append(b.serverEnv, k+"="+v)
		// The minimal client, the uploader and the AWS CLI read the same standard variables.
		if err := os.Setenv(k, v); err != nil {
			b.close()
			return nil, err
		}
	}
	if b.s3, err = s3client.New(ctx, s3client.Options{MaxConns: 256}); err != nil {
		b.close()
		return nil, err
	}
	b.res = &results{Command: cfg.command, Started: time.Now().UTC().Format(time.RFC3339), Machine: machineFacts(ctx, b.srv.Dir), Config: cfg.describe()}
	b.res.Machine.Scanner = os.Getenv("MINIO_SCANNER_SPEED")
	return b, nil
}

// close stops MinIO (removing its data) and removes the temporary directory.
func (b *bench) close() {
	if b.srv != nil {
		b.srv.Stop()
	}
	_ = os.RemoveAll(b.tmp)
}

// runAll runs every scenario. On an error it returns what was measured so far with the error.
func (b *bench) runAll(ctx context.Context) (*results, error) {
	err := b.scenarios(ctx)
	b.res.Finished = time.Now().UTC().Format(time.RFC3339)
	b.res.Machine.LoadAfter = loadavg()
	b.res.finish()
	return b.res, err
}

func (b *bench) scenarios(ctx context.Context) error {
	c := b.cfg
	if c.peers {
		var missing []string
		b.peers, missing = b.findPeers(ctx)
		for _, p := range b.peers {
			b.res.Peers = append(b.res.Peers, p.name+": "+p.version)
		}
		for _, m := range missing {
			b.res.Peers = append(b.res.Peers, m+": not present")
		}
	}
	if err := createBucket(ctx, b.s3, runBucket, false); err != nil {
		return err
	}
	if len(c.only) > 0 {
		return b.selected(ctx)
	}
	fmt.Fprintln(logw, "== uploading data sets (not measured)")
	small, err := b.uploadSmallSet(ctx)
	if err != nil {
		return err
	}
	var large *dataset
	if len(c.large) > 0 {
		if err := createBucket(ctx, b.s3, "src-large", false); err != nil {
			return err
		}
		if large, err = uploadLarge(ctx, b.s3, "src-large", c.large, c.uploadPart, 2); err != nil {
			return err
		}
		large.name = "large"
		b.res.addSet(large)
	}
	for rep := 1; rep <= c.reps; rep++ {
		fmt.Fprintf(logw, "== repetition %d of %d\n", rep, c.reps)
		if err := b.smallRep(ctx, small, rep); err != nil {
			return err
		}
		if large != nil {
			if err := b.largeRep(ctx, large, rep); err != nil {
				return err
			}
		}
	}
	if err := b.sweep(ctx, small, large); err != nil {
		return err
	}
	if err := b.memory(ctx, small); err != nil {
		return err
	}
	if c.destinations {
		if err := b.destinations(ctx, small); err != nil {
			return err
		}
	}
	if len(c.scale) > 0 {
		if err := b.scale(ctx); err != nil {
			return err
		}
	}
	if c.listing > 0 {
		return b.listing(ctx)
	}
	return nil
}

// selected runs only the scenarios -only names, in the order destinations, scale, listing.
func (b *bench) selected(ctx context.Context) error {
	c := b.cfg
	if c.only[onlyDestinations] {
		small, err := b.uploadSmallSet(ctx)
		if err != nil {
			return err
		}
		if err := b.destinations(ctx, small); err != nil {
			return err
		}
	}
	if c.only[onlyScale] {
		if err := b.scale(ctx); err != nil {
			return err
		}
	}
	if c.only[onlyListing] {
		return b.listing(ctx)
	}
	return nil
}

// uploadSmallSet uploads the small set (not measured).
func (b *bench) uploadSmallSet(ctx context.Context) (*dataset, error) {
	c := b.cfg
	if err := createBucket(ctx, b.s3, "src-small", false); err != nil {
		return nil, err
	}
	small, err := uploadSmall(ctx, b.s3, "src-small", c.small, c.smallMin, c.smallMax, 1)
	if err != nil {
		return nil, err
	}
	small.name = "small"
	b.res.addSet(small)
	return small, nil
}

// smallRep is one repetition over the small set: ceiling, bucketvault full, list time, idle,
// changed, peers.
func (b *bench) smallRep(ctx context.Context, d *dataset, rep int) error {
	bk := fmt.Sprintf("bv-small-r%d", rep)
	if err := b.ceilingAndFull(ctx, d, bk, rep, b.cfg.concurrencies, false); err != nil {
		return err
	}
	n, changedBytes, err := changeSmall(ctx, b.s3, d, b.cfg.changedPct, rep, uint64(100+rep), b.cfg.smallMin, b.cfg.smallMax)
	if err != nil {
		return err
	}
	r, err := b.runLocal(ctx, d.bucket, bk, nil, nil, want{listed: d.count(), copied: n, unchanged: d.count() - n, bytes: changedBytes})
	if err != nil {
		return err
	}
	b.res.add("bv-changed-"+d.name, d.name, n, changedBytes, r.measurement)
	fmt.Fprintf(logw, "   bucketvault %g%% changed (%d objects): %s\n", b.cfg.changedPct, n, r.wall.Round(time.Millisecond))
	return b.runPeers(ctx, d, rep, false)
}

// largeRep is one repetition over the large set: ceiling, bucketvault full, list time, idle, peers.
// Destination buckets are removed afterwards to free disk.
func (b *bench) largeRep(ctx context.Context, d *dataset, rep int) error {
	bk := fmt.Sprintf("bv-large-r%d", rep)
	if err := b.ceilingAndFull(ctx, d, bk, rep, b.cfg.largeConc, true); err != nil {
		return err
	}
	if err := removeBucket(ctx, b.s3, bk); err != nil {
		return err
	}
	return b.runPeers(ctx, d, rep, true)
}

// ceilingAndFull runs the ceiling and bucketvault's full and idle runs, the ceiling first in odd
// repetitions and last in even ones, so that neither always follows the other's writes.
func (b *bench) ceilingAndFull(ctx context.Context, d *dataset, bk string, rep int, concs []int, remove bool) error {
	steps := []func() error{
		func() error { return b.ceiling(ctx, d, rep, concs, remove) },
		func() error { return b.fullIdle(ctx, d, bk, rep) },
	}
	if rep%2 == 0 {
		steps[0], steps[1] = steps[1], steps[0]
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// ceiling copies the set with the minimal client at each concurrency into a fresh versioned bucket.
func (b *bench) ceiling(ctx context.Context, d *dataset, rep int, concs []int, remove bool) error {
	for _, conc := range concs {
		dst := fmt.Sprintf("ceil-%s-c%d-r%d", d.name, conc, rep)
		if err := createBucket(ctx, b.s3, dst, true); err != nil {
			return err
		}
		sp := b.begin()
		if err := copyAll(ctx, b.s3, d, dst, conc); err != nil {
			return err
		}
		m := sp.end(nil)
		if err := verifyCopy(ctx, b.s3, d, dst); err != nil {
			return err
		}
		b.res.addCeiling(d.name, conc, m)
		fmt.Fprintf(logw, "   ceiling %s, concurrency %d: %s (%.0f objects/s, CPU s client %.1f, MinIO %.1f)\n", d.name, conc, m.wall.Round(time.Millisecond), float64(d.count())/m.wall.Seconds(), m.clientCPU.Seconds(), m.serverCPU.Seconds())
		if remove {
			if err := removeBucket(ctx, b.s3, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// fullIdle runs bucketvault's full backup into a fresh versioned bucket, times listing both
// buckets, and runs the idle backup.
func (b *bench) fullIdle(ctx context.Context, d *dataset, bk string, rep int) error {
	if err := createBucket(ctx, b.s3, bk, true); err != nil {
		return err
	}
	r, err := b.runLocal(ctx, d.bucket, bk, nil, nil, want{listed: d.count(), copied: d.count(), bytes: d.bytes})
	if err != nil {
		return err
	}
	b.res.add("bv-full-"+d.name, d.name, d.count(), d.bytes, r.measurement)
	fmt.Fprintf(logw, "   bucketvault full %s: %s (%.0f objects/s, %d batches, peak RSS %d MiB, CPU s client %.1f, MinIO %.1f)\n", d.name, r.wall.Round(time.Millisecond), float64(d.count())/r.wall.Seconds(), r.report.Batches, r.maxRSSKiB>>10, r.clientCPU.Seconds(), r.serverCPU.Seconds())
	if err := verifyCopy(ctx, b.s3, d, bk); err != nil {
		return err
	}
	sp := b.begin()
	seen, err := listBoth(ctx, b.s3, d.bucket, bk)
	if err != nil {
		return err
	}
	lt := sp.end(nil)
	if seen != 2*d.count() {
		return fmt.Errorf("listing %s and %s saw %d objects, want %d", d.bucket, bk, seen, 2*d.count())
	}
	// MinIO caches listings: the first listing after the writes is slower than later ones. The
	// idle run is compared with the warm listing taken after it (the harder target).
	b.res.add("list-cold-"+d.name, d.name, seen, 0, lt)
	fmt.Fprintf(logw, "   list both %s (first after the full run): %s\n", d.name, lt.wall.Round(time.Millisecond))
	r, err = b.runLocal(ctx, d.bucket, bk, nil, nil, want{listed: d.count(), unchanged: d.count()})
	if err != nil {
		return err
	}
	b.res.add("bv-idle-"+d.name, d.name, d.count(), 0, r.measurement)
	fmt.Fprintf(logw, "   bucketvault idle %s: %s\n", d.name, r.wall.Round(time.Millisecond))
	sp = b.begin()
	if _, err = listBoth(ctx, b.s3, d.bucket, bk); err != nil {
		return err
	}
	lt = sp.end(nil)
	b.res.add("list-"+d.name, d.name, seen, 0, lt)
	fmt.Fprintf(logw, "   list both %s (after the idle run): %s\n", d.name, lt.wall.Round(time.Millisecond))
	return nil
}

func (b *bench) runPeers(ctx context.Context, d *dataset, rep int, remove bool) error {
	for _, p := range b.peers {
		dst := fmt.Sprintf("%s-%s-r%d", strings.Fields(p.name)[0], d.name, rep)
		if err := createBucket(ctx, b.s3, dst, true); err != nil {
			return err
		}
		m, detail, err := p.run(ctx, d, dst)
		if err != nil {
			return err
		}
		if err := verifyCopy(ctx, b.s3, d, dst); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		b.res.add("peer-"+strings.Fields(p.name)[0]+"-"+d.name, d.name, d.count(), d.bytes, m)
		b.res.detail("peer-"+strings.Fields(p.name)[0]+"-"+d.name, p.name+" ("+detail+")")
		fmt.Fprintf(logw, "   %s %s: %s (%s; CPU s client %.1f, MinIO %.1f)\n", p.name, d.name, m.wall.Round(time.Millisecond), detail, m.clientCPU.Seconds(), m.serverCPU.Seconds())
		if remove {
			if err := removeBucket(ctx, b.s3, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweep tries other COPIER_CONCURRENCY, BATCH_SIZE and Map MaxConcurrency values on the small
// full run, and other PART_CONCURRENCY values on the large full run, one at a time, against the
// defaults. A MaxConcurrency point runs an edited copy of the backup definition
// (bucketvault backup --definition).
func (b *bench) sweep(ctx context.Context, small, large *dataset) error {
	points := []sweepPoint{{id: "sweep defaults"}}
	for _, v := range b.cfg.sweepCopier {
		kv := "COPIER_CONCURRENCY=" + strconv.Itoa(v)
		points = append(points, sweepPoint{id: "sweep " + kv, env: []string{kv}})
	}
	for _, v := range b.cfg.sweepBatch {
		kv := "BATCH_SIZE=" + strconv.Itoa(v)
		points = append(points, sweepPoint{id: "sweep " + kv, env: []string{kv}})
	}
	for _, v := range b.cfg.sweepMap {
		path, err := b.definitionWithMapConcurrency(v)
		if err != nil {
			return err
		}
		points = append(points, sweepPoint{id: "sweep Map MaxConcurrency=" + strconv.Itoa(v), args: []string{"--definition", path}})
	}
	if err := b.sweepSet(ctx, small, points, false); err != nil {
		return err
	}
	if large == nil {
		return nil
	}
	points = []sweepPoint{{id: "sweep large defaults"}}
	for _, v := range b.cfg.sweepPart {
		kv := "PART_CONCURRENCY=" + strconv.Itoa(v)
		points = append(points, sweepPoint{id: "sweep large " + kv, env: []string{kv}})
	}
	return b.sweepSet(ctx, large, points, true)
}

// sweepPoint is one configuration of a sweep.
type sweepPoint struct {
	id        string
	env, args []string
}

// sweepSet runs the full backup of d at every point, sweepReps times; the points are interleaved
// within each repetition so that a noisy moment hits them all alike. A single point (the
// defaults alone) is skipped.
func (b *bench) sweepSet(ctx context.Context, d *dataset, points []sweepPoint, remove bool) error {
	if len(points) < 2 {
		return nil
	}
	for rep := 1; rep <= b.cfg.sweepReps; rep++ {
		for i, p := range points {
			bk := fmt.Sprintf("sweep-%s-%d-r%d", d.name, i, rep)
			if err := createBucket(ctx, b.s3, bk, true); err != nil {
				return err
			}
			r, err := b.runLocal(ctx, d.bucket, bk, p.env, p.args, want{listed: d.count(), copied: d.count(), bytes: d.bytes})
			if err != nil {
				return err
			}
			b.res.add(p.id, d.name, d.count(), d.bytes, r.measurement)
			fmt.Fprintf(logw, "   bucketvault full %s, %s: %s (%.0f objects/s, %.0f MB/s, %d batches)\n", d.name, strings.TrimPrefix(strings.TrimPrefix(p.id, "sweep "), d.name+" "), r.wall.Round(time.Millisecond), float64(d.count())/r.wall.Seconds(), mb(d.bytes)/r.wall.Seconds(), r.report.Batches)
			if remove {
				if err := removeBucket(ctx, b.s3, bk); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// definitionWithMapConcurrency writes a copy of the backup definition whose Map states run n
// child executions at a time, and returns its path.
func (b *bench) definitionWithMapConcurrency(n int) (string, error) {
	var doc map[string]any
	if err := json.Unmarshal(statemachine.Backup, &doc); err != nil {
		return "", err
	}
	states, _ := doc["States"].(map[string]any)
	changed := 0
	for _, st := range states {
		if m, ok := st.(map[string]any); ok && m["Type"] == "Map" {
			m["MaxConcurrency"] = n
			changed++
		}
	}
	if changed == 0 {
		return "", fmt.Errorf("the backup definition has no Map state to tune")
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.tmp, fmt.Sprintf("backup-map%d.asl.json", n))
	return path, os.WriteFile(path, out, 0o644)
}

// memory runs one full backup of a set of cfg.big small objects, for its peak RSS.
func (b *bench) memory(ctx context.Context, small *dataset) error {
	if b.cfg.big == 0 {
		return nil
	}
	fmt.Fprintf(logw, "== memory: uploading %d objects (not measured)\n", b.cfg.big)
	if err := createBucket(ctx, b.s3, "src-big", false); err != nil {
		return err
	}
	d, err := uploadSmall(ctx, b.s3, "src-big", b.cfg.big, b.cfg.smallMin, b.cfg.smallMax, 3)
	if err != nil {
		return err
	}
	d.name = "big"
	b.res.addSet(d)
	if err := createBucket(ctx, b.s3, "bv-big", true); err != nil {
		return err
	}
	r, err := b.runLocal(ctx, d.bucket, "bv-big", nil, nil, want{listed: d.count(), copied: d.count(), bytes: d.bytes})
	if err != nil {
		return err
	}
	b.res.add("bv-full-big", d.name, d.count(), d.bytes, r.measurement)
	fmt.Fprintf(logw, "   bucketvault full %d objects: %s (%.0f objects/s), peak RSS %d MiB\n", d.count(), r.wall.Round(time.Millisecond), float64(d.count())/r.wall.Seconds(), r.maxRSSKiB>>10)
	return nil
}

// machineFacts records what the figures depend on.
func machineFacts(ctx context.Context, dataDir string) machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, LoadBefore: loadavg(),
		DataDir: dataDir + " (" + fsType(dataDir) + ")"}
	if bin, err := minio.Binary(); err == nil {
		m.MinIO = bin
		if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
			line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			m.MinIO = line
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		m.Memory = strings.Join(strings.Fields(line)[1:], " ")
	}
	return m
}

// fsType names the file system a directory is on: MinIO on tmpfs is bound by CPU, on a disk by
// the disk.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	names := map[int64]string{0x01021994: "tmpfs", 0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x794C7630: "overlayfs"}
	if n, ok := names[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("type %#x", st.Type)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
