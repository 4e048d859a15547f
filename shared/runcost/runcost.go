// Package runcost estimates what one backup or restore run cost at list prices: its S3 requests by
// kind, its Lambda compute and requests, and its Step Functions state transitions.
//
// The functions do not count their requests; the figures are derived from the report's counts,
// on the basis of the README's cost table (infra/README.md, "Cost per million objects backed up"):
//
//   - LIST: one page per 1,000 keys of each side listed (source and backup, or, for a restore, the
//     backup's versions and the target), at least one page per side once listing ran.
//   - PUT (PUT, COPY, POST): one CopyObject per object copied (an object copied in parts costs its
//     parts plus two more: not known from the report, so not counted), plus per batch its batch file
//     and its outcome file, plus the manifest, the Map's result files (2) and report.json.
//   - GET: per batch the copier's read of the batch and the reporter's read of the outcome, plus
//     two reads of the manifest (the Map's ItemReader and the reporter).
//   - HEAD: none (change detection uses the listings, not a HEAD per object).
//   - DELETE: one DeleteObject (a delete marker) per object deleted; S3 does not charge for them.
//   - Lambda seconds: lister or planner DefaultListSecondsPerRequest per LIST page and batch file;
//     copier DefaultCopySecondsPerObject per object copied, deleted or failed; the reporter its own
//     measured duration. Each times its function's memory (the stack's defaults unless the
//     *_MEMORY_MB variables say otherwise).
//   - State transitions: the parent's Start, Copy, Report, Outcome and its end state, List and
//     MoreToList per lister invocation, and two per batch (each Map child's start and its Task).
package runcost

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/report"
)

// Defaults of the estimate.
const (
	// DefaultRegion is the Region whose list prices apply when the environment names none.
	DefaultRegion = "us-east-1"
	// DefaultKeysPerListPage is ListObjectsV2's and ListObjectVersions' page size.
	DefaultKeysPerListPage = 1000
	// DefaultListSecondsPerRequest is the lister's (planner's) time per LIST page or batch file
	// written: ≈ 200 s for 1,000 pages and 1,000 batch files.
	DefaultListSecondsPerRequest = 0.1
	// DefaultCopySecondsPerObject is the copier's time per object: 32 copies at a time at
	// ≈ 100 ms each, with reading the batch and writing the outcome, ≈ 5 s per 1,000 objects.
	DefaultCopySecondsPerObject = 0.005
	// Memory of the functions in MB, as the stack deploys them by default.
	DefaultListerMemoryMB   = 256
	DefaultPlannerMemoryMB  = 512
	DefaultCopierMemoryMB   = 1024
	DefaultReporterMemoryMB = 512
	// parentStates are the backup and restore state machines' states run once per execution:
	// Start, Copy, Report, Outcome and Done or Failed.
	parentStates = 5
	// fixedPuts are the PUTs made once per run: the manifest, the Map's result files, report.json.
	fixedPuts = 4
	// fixedGets are the manifest's reads by the Map's ItemReader and by the reporter.
	fixedGets = 2
)

// Prices are list prices per Region in US dollars, from the public price pages (us-east-1: see
// /work/shared/reference/field-notes.md and infra/README.md). A Region not listed uses
// us-east-1's; PRICE_* variables override any entry.
var Prices = map[string]report.PriceTable{
	"us-east-1": {
		PutPer1000: 0.005, ListPer1000: 0.005, GetPer1000: 0.0004, DeletePer1000: 0,
		LambdaGBSecond: 0.0000133334, LambdaPerMillion: 0.20, TransitionPer1000: 0.025,
	},
}

// Config is what the estimate reads from the reporter's environment.
type Config struct {
	Region string
	Prices report.PriceTable
	// Memory of the functions in MB.
	ListerMemoryMB, PlannerMemoryMB, CopierMemoryMB, ReporterMemoryMB int64
	// Notes says which settings were not usable (the estimate then uses the default).
	Notes []string
}

// priceVariables are the PRICE_* variables, each overriding one price.
var priceVariables = map[string]func(*report.PriceTable) *float64{
	"PRICE_S3_PUT_PER_1000":      func(p *report.PriceTable) *float64 { return &p.PutPer1000 },
	"PRICE_S3_LIST_PER_1000":     func(p *report.PriceTable) *float64 { return &p.ListPer1000 },
	"PRICE_S3_GET_PER_1000":      func(p *report.PriceTable) *float64 { return &p.GetPer1000 },
	"PRICE_S3_DELETE_PER_1000":   func(p *report.PriceTable) *float64 { return &p.DeletePer1000 },
	"PRICE_LAMBDA_GB_SECOND":     func(p *report.PriceTable) *float64 { return &p.LambdaGBSecond },
	"PRICE_LAMBDA_PER_MILLION":   func(p *report.PriceTable) *float64 { return &p.LambdaPerMillion },
	"PRICE_TRANSITIONS_PER_1000": func(p *report.PriceTable) *float64 { return &p.TransitionPer1000 },
}

// Variables are the environment variables ConfigFromEnv reads.
var Variables = func() []string {
	v := []string{"PRICE_REGION", "LISTER_MEMORY_MB", "PLANNER_MEMORY_MB", "COPIER_MEMORY_MB", "REPORTER_MEMORY_MB"}
	for name := range priceVariables {
		v = append(v, name)
	}
	return v
}()

// ConfigFromEnv reads PRICE_REGION (else AWS_REGION, else DefaultRegion), the PRICE_* overrides
// and the *_MEMORY_MB sizes (REPORTER_MEMORY_MB else Lambda's AWS_LAMBDA_FUNCTION_MEMORY_SIZE). A
// value that does not parse is noted and its default used: a cost estimate never fails a run.
func ConfigFromEnv(lookup envconf.Lookup) Config {
	c := Config{Region: DefaultRegion}
	for _, name := range []string{"PRICE_REGION", "AWS_REGION"} {
		if v, _ := lookup(name); strings.TrimSpace(v) != "" {
			c.Region = strings.TrimSpace(v)
			break
		}
	}
	table, ok := Prices[c.Region]
	if !ok {
		table = Prices[DefaultRegion]
		c.Notes = append(c.Notes, fmt.Sprintf("no price table for %s: %s list prices", c.Region, DefaultRegion))
	}
	for name, field := range priceVariables {
		v, set := lookup(name)
		if !set || strings.TrimSpace(v) == "" {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			c.Notes = append(c.Notes, fmt.Sprintf("%s=%q is not a price: default used", name, v))
			continue
		}
		*field(&table) = f
	}
	c.Prices = table
	memory := func(def int64, names ...string) int64 {
		for _, name := range names {
			v, set := lookup(name)
			if !set || strings.TrimSpace(v) == "" {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 128 || n > 10240 {
				c.Notes = append(c.Notes, fmt.Sprintf("%s=%q is not a memory size in MB: default used", name, v))
				continue
			}
			return n
		}
		return def
	}
	c.ListerMemoryMB = memory(DefaultListerMemoryMB, "LISTER_MEMORY_MB")
	c.PlannerMemoryMB = memory(DefaultPlannerMemoryMB, "PLANNER_MEMORY_MB")
	c.CopierMemoryMB = memory(DefaultCopierMemoryMB, "COPIER_MEMORY_MB")
	c.ReporterMemoryMB = memory(DefaultReporterMemoryMB, "REPORTER_MEMORY_MB", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
	return c
}

// Estimate returns r's cost; reporter is the reporter's own time on the run so far.
func Estimate(r report.Report, c Config, reporter time.Duration) report.Cost {
	if c.Prices == (report.PriceTable{}) {
		c.Prices = Prices[DefaultRegion]
	}
	restore := r.RestoredAt != ""
	pages := func(n int64) int64 { return max(1, (n+DefaultKeysPerListPage-1)/DefaultKeysPerListPage) }
	var req report.Requests
	if r.ListInvocations > 0 {
		other := r.BackupObjects // the backup's side of a backup's listing
		if restore {
			other = r.Listed // the target's side: about as many objects as the moment held
		}
		req.List = pages(r.Listed) + pages(other)
	}
	copyPhase := r.Batches > 0
	req.Put = r.Copied + 2*r.Batches + 1 // batches, outcomes, report.json
	req.Get = 2*r.Batches + r.TagReads   // batches and outcomes read; GetObjectTagging of filters (a GET)
	if copyPhase {
		req.Put += fixedPuts - 1
		req.Get += fixedGets
	}
	req.Delete = r.Deleted

	listerMB := c.ListerMemoryMB
	if restore {
		listerMB = c.PlannerMemoryMB
	}
	listSeconds := DefaultListSecondsPerRequest * float64(req.List+r.Batches)
	copySeconds := DefaultCopySecondsPerObject * float64(r.Copied+r.Deleted+r.Failed)
	gbs := listSeconds*gb(listerMB) + copySeconds*gb(c.CopierMemoryMB) + reporter.Seconds()*gb(c.ReporterMemoryMB)

	cost := report.Cost{
		Region:           c.Region,
		Requests:         req,
		LambdaGBSeconds:  round(gbs, 3),
		LambdaRequests:   int64(r.ListInvocations) + r.Batches + 1,
		StateTransitions: parentStates + 2*int64(r.ListInvocations) + 2*r.Batches,
		Prices:           c.Prices,
	}
	p := c.Prices
	cost.Breakdown = report.CostItems{
		S3Requests: round(float64(req.Put)/1000*p.PutPer1000+float64(req.List)/1000*p.ListPer1000+
			float64(req.Get+req.Head)/1000*p.GetPer1000+float64(req.Delete)/1000*p.DeletePer1000, 6),
		LambdaCompute:    round(gbs*p.LambdaGBSecond, 6),
		LambdaRequests:   round(float64(cost.LambdaRequests)/1e6*p.LambdaPerMillion, 6),
		StateTransitions: round(float64(cost.StateTransitions)/1000*p.TransitionPer1000, 6),
	}
	b := cost.Breakdown
	cost.USD = round(b.S3Requests+b.LambdaCompute+b.LambdaRequests+b.StateTransitions, 6)
	cost.Basis = "estimated from the report's counts at " + c.Region + " list prices (package shared/runcost); objects copied in parts count as one request"
	for _, n := range c.Notes {
		cost.Basis += "; " + n
	}
	return cost
}

func gb(mb int64) float64 { return float64(mb) / 1024 }

func round(f float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(f*p) / p
}
