package runcost

import (
	"strings"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/report"
)

// Each want is worked out by hand in the comments, from the package's basis and the us-east-1
// list prices (PUT/COPY/LIST $0.005 per 1,000, GET $0.0004 per 1,000, Lambda $0.0000133334 per
// GB-s and $0.20 per million requests, $0.025 per 1,000 state transitions).
func TestEstimate(t *testing.T) {
	cfg := ConfigFromEnv(envconf.Map(nil))
	cases := []struct {
		name     string
		r        report.Report
		reporter time.Duration
		want     report.Cost
	}{{
		// 20,000 new objects into an empty backup, 20 batches of 1,000, one lister invocation,
		// the reporter 2 s.
		// LIST 20 source pages + 1 backup page = 21; PUT 20,000 copies + 20 batch files + 20
		// outcomes + 4 = 20,044; GET 20 + 20 + 2 = 42.
		// S3 $ = 20,044 × 0.000005 + 21 × 0.000005 + 42 × 0.0000004 = 0.10022 + 0.000105 + 0.0000168 = 0.1003418.
		// GB-s = 0.1 s × (21 + 20) × 0.25 GB + 0.005 s × 20,000 × 1 GB + 2 s × 0.5 GB = 1.025 + 100 + 1 = 102.025;
		// × 0.0000133334 = 0.00136034.
		// Lambda requests 1 + 20 + 1 = 22 → $0.0000044; transitions 5 + 2 + 40 = 47 → $0.001175.
		// USD = 0.100342 + 0.00136 + 0.000004 + 0.001175 = 0.102881.
		name: "20,000 new objects",
		r: report.Report{Listed: 20000, New: 20000, Copied: 20000, BytesCopied: 20000 << 10,
			Batches: 20, ListInvocations: 1},
		reporter: 2 * time.Second,
		want: report.Cost{Region: "us-east-1",
			Requests:        report.Requests{List: 21, Put: 20044, Get: 42},
			LambdaGBSeconds: 102.025, LambdaRequests: 22, StateTransitions: 47, USD: 0.102881,
			Breakdown: report.CostItems{S3Requests: 0.100342, LambdaCompute: 0.00136, LambdaRequests: 0.000004, StateTransitions: 0.001175}},
	}, {
		// The README's cost table: 1,000,000 new objects, 1,000 batches, the reporter 30 s.
		// PUT 1,000,000 + 2,000 + 4 = 1,002,004 → $5.01002; LIST 1,000 + 1 = 1,001 → $0.005005;
		// GET 2,002 → $0.0008008; S3 $5.015826. GB-s 0.1 × 2,001 × 0.25 + 5,000 + 15 = 5,065.025
		// → $0.067534. Requests 1,002 → $0.0002. Transitions 2,007 → $0.050175. USD 5.133735
		// (the README: ≈ $5.15, each item rounded up).
		name: "README table, one million",
		r: report.Report{Listed: 1000000, New: 1000000, Copied: 1000000,
			Batches: 1000, ListInvocations: 1},
		reporter: 30 * time.Second,
		want: report.Cost{Region: "us-east-1",
			Requests:        report.Requests{List: 1001, Put: 1002004, Get: 2002},
			LambdaGBSeconds: 5065.025, LambdaRequests: 1002, StateTransitions: 2007, USD: 5.133735,
			Breakdown: report.CostItems{S3Requests: 5.015826, LambdaCompute: 0.067534, LambdaRequests: 0.0002, StateTransitions: 0.050175}},
	}, {
		// Nothing changed in 10,000 objects, 1 deletion: LIST 10 + 10 = 20 → $0.0001; PUT 1
		// batch + 1 outcome + 4 = 6 → $0.00003; GET 2 + 2 = 4 → $0.0000016; DELETE 1 → $0.
		// S3 $0.0001316 → 0.000132. GB-s 0.1 × 21 × 0.25 + 0.005 × 1 + 1 × 0.5 = 1.03 →
		// $0.0000137334 → 0.000014. Requests 3 → $0.0000006 → 0.000001. Transitions 5 + 2 + 2 =
		// 9 → $0.000225. USD 0.000372.
		name: "one deletion",
		r: report.Report{Listed: 9999, BackupObjects: 10000, Unchanged: 9999, ToDelete: 1, Deleted: 1,
			Batches: 1, ListInvocations: 1},
		reporter: time.Second,
		want: report.Cost{Region: "us-east-1",
			Requests:        report.Requests{List: 20, Put: 6, Get: 4, Delete: 1},
			LambdaGBSeconds: 1.03, LambdaRequests: 3, StateTransitions: 9, USD: 0.000372,
			Breakdown: report.CostItems{S3Requests: 0.000132, LambdaCompute: 0.000014, LambdaRequests: 0.000001, StateTransitions: 0.000225}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Estimate(tc.r, cfg, tc.reporter)
			tc.want.Prices = Prices["us-east-1"]
			tc.want.Basis = got.Basis
			if got != tc.want {
				t.Errorf("cost\n got %+v\nwant %+v", got, tc.want)
			}
			if !strings.Contains(got.Basis, "us-east-1") {
				t.Errorf("basis %q does not name the prices' Region", got.Basis)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	cases := []struct {
		name      string
		env       map[string]string
		region    string
		put       float64
		copierMB  int64
		noteAbout string
	}{
		{name: "defaults", env: nil, region: "us-east-1", put: 0.005, copierMB: 1024},
		{name: "overrides", env: map[string]string{"PRICE_REGION": "eu-west-1", "PRICE_S3_PUT_PER_1000": "0.0054", "COPIER_MEMORY_MB": "2048"},
			region: "eu-west-1", put: 0.0054, copierMB: 2048, noteAbout: "no price table for eu-west-1"},
		{name: "bad values fall back", env: map[string]string{"PRICE_S3_PUT_PER_1000": "cheap", "COPIER_MEMORY_MB": "1"},
			region: "us-east-1", put: 0.005, copierMB: 1024, noteAbout: "PRICE_S3_PUT_PER_1000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ConfigFromEnv(envconf.Map(tc.env))
			if c.Region != tc.region || c.Prices.PutPer1000 != tc.put || c.CopierMemoryMB != tc.copierMB {
				t.Errorf("config %+v", c)
			}
			if notes := strings.Join(c.Notes, "; "); tc.noteAbout != "" && !strings.Contains(notes, tc.noteAbout) {
				t.Errorf("notes %q do not mention %q", notes, tc.noteAbout)
			}
		})
	}
}
