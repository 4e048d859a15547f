package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// config is the benchmark's configuration, from its flags.
type config struct {
	reps          int
	small         int   // objects in the small set
	smallMin      int64 // bytes
	smallMax      int64
	big           int     // objects in the memory-scaling set; 0 skips it
	large         []int64 // sizes of the large set; empty skips it
	uploadPart    int64   // part size of the large uploads (they are uploaded in parts)
	concurrencies []int   // ceiling concurrencies, small set
	largeConc     []int   // ceiling concurrencies, large set
	changedPct    float64
	peers         bool
	rcloneXfers   int
	rcloneChecks  int
	awsRequests   int
	sweepCopier   []int
	sweepBatch    []int
	sweepMap      []int
	sweepPart     []int
	sweepReps     int
	env           []string // extra KEY=VALUE for every bucketvault run
	out           string
	dataDir       string
	command       string        // the exact command line, for the report
	listing       int           // keys of the listing-at-scale scenario; 0 skips it
	listingDelay  time.Duration // added to every LIST request of that scenario
	destinations  bool          // run the two-destination scenario (issue 13)
	destConc      int           // the ceiling's concurrency in that scenario
	scale         []int         // object counts of the memory-at-scale scenario; empty skips it
	only          map[string]bool
}

// Scenarios -only may select.
const (
	onlyListing      = "listing"
	onlyDestinations = "destinations"
	onlyScale        = "scale"
)

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	c := &config{}
	fs.IntVar(&c.reps, "reps", 3, "repetitions of each measured scenario (the median is reported)")
	fs.IntVar(&c.small, "small", 20000, "objects in the small set (1–8 KB each)")
	fs.Int64Var(&c.smallMin, "small-min", 1024, "smallest small object, bytes")
	fs.Int64Var(&c.smallMax, "small-max", 8192, "largest small object, bytes")
	fs.IntVar(&c.big, "big", 200000, "objects in the memory-scaling set (one full run, peak RSS); 0 skips it")
	large := fs.String("large", "64Mi,64Mi,64Mi,64Mi,256Mi,1Gi", "sizes of the large set (uploaded in parts); empty skips it")
	part := fs.String("upload-part", "16Mi", "part size of the large uploads")
	conc := fs.String("concurrency", "8,16,32,64,128", "ceiling concurrencies for the small set (best is the ceiling)")
	lconc := fs.String("large-concurrency", "2,6", "ceiling concurrencies for the large set")
	fs.Float64Var(&c.changedPct, "changed", 1, "percent of the small set changed before the changed run")
	fs.BoolVar(&c.peers, "peers", true, "run rclone and aws s3 sync when present")
	fs.IntVar(&c.rcloneXfers, "rclone-transfers", 64, "rclone --transfers")
	fs.IntVar(&c.rcloneChecks, "rclone-checkers", 32, "rclone --checkers")
	fs.IntVar(&c.awsRequests, "aws-requests", 64, "aws s3 max_concurrent_requests")
	sc := fs.String("sweep-copier", "16,64", "COPIER_CONCURRENCY values tried on the small full run besides the default; empty skips")
	sb := fs.String("sweep-batch", "250,2500", "BATCH_SIZE values tried on the small full run besides the default; empty skips")
	sm := fs.String("sweep-map", "4,16", "Map MaxConcurrency values tried on the small full run besides the definition's; empty skips")
	sp := fs.String("sweep-part", "2,4", "PART_CONCURRENCY values tried on the large full run besides the default; empty skips")
	fs.IntVar(&c.sweepReps, "sweep-reps", 2, "repetitions of each sweep point")
	env := fs.String("env", "", "extra environment for every bucketvault run, comma-separated KEY=VALUE")
	fs.StringVar(&c.out, "out", ".cache/bench/bench-results.json", "raw timings (JSON)")
	fs.IntVar(&c.listing, "listing", 0, "keys in source and backup of the listing-at-scale scenario (idle runs, ranged against sequential; the issue's size is 200000); 0 skips it")
	fs.DurationVar(&c.listingDelay, "listing-delay", 80*time.Millisecond, "delay added to every LIST request in the listing-at-scale scenario (AWS's page time)")
	onlyL := fs.Bool("only-listing", false, "run only the listing-at-scale scenario (the same as -only listing)")
	only := fs.String("only", "", "run only these scenarios, comma-separated: listing, destinations, scale (default: the whole benchmark, with -listing and -scale if set)")
	fs.BoolVar(&c.destinations, "destinations", true, "run the two-destination scenario: full runs of the small set to one and to two destinations on the same server, and the ceiling, interleaved")
	fs.IntVar(&c.destConc, "destinations-concurrency", 64, "the ceiling's concurrency in the two-destination scenario")
	scale := fs.String("scale", "", "object counts of the memory-at-scale scenario (full and idle runs, one and two destinations, peak RSS and Go heap), e.g. 20000,200000; empty skips it")
	fs.StringVar(&c.dataDir, "data-dir", "", "parent directory of MinIO's data (default: the system's temporary directory); /dev/shm makes the server CPU-bound instead of disk-bound")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if c.large, err = sizes(*large); err != nil {
		return nil, fmt.Errorf("-large: %w", err)
	}
	ps, err := sizes(*part)
	if err != nil || len(ps) != 1 || ps[0] < 5<<20 {
		return nil, fmt.Errorf("-upload-part %q: want one size of at least 5Mi", *part)
	}
	c.uploadPart = ps[0]
	for _, l := range []struct {
		name string
		s    string
		dst  *[]int
	}{{"concurrency", *conc, &c.concurrencies}, {"large-concurrency", *lconc, &c.largeConc},
		{"sweep-copier", *sc, &c.sweepCopier}, {"sweep-batch", *sb, &c.sweepBatch}, {"sweep-map", *sm, &c.sweepMap}, {"sweep-part", *sp, &c.sweepPart}} {
		if *l.dst, err = ints(l.s); err != nil {
			return nil, fmt.Errorf("-%s: %w", l.name, err)
		}
	}
	if c.scale, err = ints(*scale); err != nil {
		return nil, fmt.Errorf("-scale: %w", err)
	}
	c.only = map[string]bool{}
	for _, o := range strings.Split(*only, ",") {
		switch o = strings.TrimSpace(o); o {
		case "":
		case onlyListing, onlyDestinations, onlyScale:
			c.only[o] = true
		default:
			return nil, fmt.Errorf("-only %q: want listing, destinations or scale", o)
		}
	}
	if *onlyL {
		c.only[onlyListing] = true
	}
	if *env != "" {
		for _, kv := range strings.Split(*env, ",") {
			if !strings.Contains(kv, "=") {
				return nil, fmt.Errorf("-env %q: want KEY=VALUE", kv)
			}
			c.env = append(c.env, kv)
		}
	}
	switch {
	case c.reps < 1 || c.sweepReps < 1:
		return nil, fmt.Errorf("-reps and -sweep-reps must be at least 1")
	case c.small < 100:
		return nil, fmt.Errorf("-small must be at least 100")
	case c.smallMin < 1 || c.smallMax < c.smallMin:
		return nil, fmt.Errorf("-small-min/-small-max: want 1 <= min <= max")
	case c.destConc < 1:
		return nil, fmt.Errorf("-destinations-concurrency must be at least 1")
	case c.only[onlyListing] && c.listing == 0:
		return nil, fmt.Errorf("-only listing needs -listing N")
	case c.only[onlyScale] && len(c.scale) == 0:
		return nil, fmt.Errorf("-only scale needs -scale N,M")
	case len(c.concurrencies) == 0 || (len(c.large) > 0 && len(c.largeConc) == 0):
		return nil, fmt.Errorf("-concurrency and -large-concurrency need at least one value")
	}
	c.command = "go run ./integration/cmd/bench"
	if len(args) > 0 {
		c.command += " " + strings.Join(args, " ")
	}
	return c, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// sizes parses a comma-separated list of sizes: a number with an optional Ki, Mi or Gi suffix.
func sizes(s string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		mult := int64(1)
		for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
			if strings.HasSuffix(f, suffix) {
				mult, f = m, strings.TrimSuffix(f, suffix)
			}
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a size (e.g. 64Mi)", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}
