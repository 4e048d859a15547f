package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/report"
)

func TestFinishDestinations(t *testing.T) {
	tests := []struct {
		name                     string
		ceil, one, two           []time.Duration // seconds, per repetition
		twoOverOne, oneVs, twoVs float64
		met                      bool
	}{
		// Two destinations make twice the copies: twice the time is the ceiling's rate.
		{"at the ceiling", []time.Duration{10, 10, 10}, []time.Duration{10, 10, 10}, []time.Duration{20, 20, 20}, 2, 1, 1, true},
		// Paired within each repetition: the slow second repetition hits all three alike.
		{"paired ratios", []time.Duration{10, 20, 10}, []time.Duration{11, 22, 11}, []time.Duration{22, 44, 22}, 2, 10.0 / 11, 10.0 / 11, true},
		{"over the target", []time.Duration{10, 10, 10}, []time.Duration{10, 10, 10}, []time.Duration{23, 24, 22}, 2.3, 1, 20.0 / 23, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &results{Config: map[string]string{"destinationsConcurrency": "64"}}
			for i := range tt.ceil {
				r.add(destCeilingID, "destinations", 100, 1000, measurement{wall: tt.ceil[i] * time.Second})
				r.add(destOneID, "destinations", 100, 1000, measurement{wall: tt.one[i] * time.Second})
				r.add(destTwoID, "destinations", 100, 1000, measurement{wall: tt.two[i] * time.Second})
			}
			r.finish()
			s := r.Destinations
			if s == nil {
				t.Fatal("no summary")
			}
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"two/one", s.TwoOverOne, tt.twoOverOne}, {"one vs ceiling", s.OneVsCeiling, tt.oneVs}, {"two vs ceiling", s.TwoVsCeiling, tt.twoVs}} {
				if math.Abs(c.got-c.want) > 1e-9 {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if s.Met != tt.met || s.Concurrency != 64 {
				t.Errorf("met %v concurrency %d, want %v 64", s.Met, s.Concurrency, tt.met)
			}
		})
	}
}

func TestFinishScale(t *testing.T) {
	r := &results{}
	add := func(kind string, n, k int, rssKiB, heap int64) {
		r.add(scaleID(kind, n, k), "scale", int64(n), 0, measurement{wall: time.Second, maxRSSKiB: rssKiB, heapPeak: heap})
	}
	add("full", 20000, 1, 60<<10, 10<<20)
	add("full", 200000, 1, 63<<10, 12<<20) // 1.05×: flat
	add("full", 20000, 2, 60<<10, 10<<20)
	add("full", 200000, 2, 90<<10, 30<<20) // 1.5×: grows
	add("idle", 20000, 2, 40<<10, 5<<20)   // no idle run at 200000: no comparison
	r.finish()
	want := []scaleFlat{
		{Destinations: 1, Kind: "full", SmallObjects: 20000, BigObjects: 200000, RSSRatio: 63.0 / 60, HeapRatio: 1.2, Met: true},
		{Destinations: 2, Kind: "full", SmallObjects: 20000, BigObjects: 200000, RSSRatio: 1.5, HeapRatio: 3, Met: false},
	}
	if len(r.Scale) != len(want) {
		t.Fatalf("scale %+v, want %+v", r.Scale, want)
	}
	for i, w := range want {
		g := r.Scale[i]
		if g.Destinations != w.Destinations || g.Kind != w.Kind || g.SmallObjects != w.SmallObjects || g.BigObjects != w.BigObjects ||
			math.Abs(g.RSSRatio-w.RSSRatio) > 1e-9 || math.Abs(g.HeapRatio-w.HeapRatio) > 1e-9 || g.Met != w.Met {
			t.Errorf("scale[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func TestCheckReportDestinations(t *testing.T) {
	w := want{listed: 10, copied: 10, bytes: 100}
	ok := func() *report.Report {
		return &report.Report{Status: "SUCCEEDED", Listed: 10, Copied: 10, BytesCopied: 100, Destinations: []report.Destination{{
			DestinationTotals: report.DestinationTotals{Name: "dr", New: 10}, Copied: 10, BytesCopied: 100,
		}}}
	}
	tests := []struct {
		name   string
		edit   func(*report.Report)
		dests  []string
		errHas string // "" means accepted
	}{
		{"every destination written", func(*report.Report) {}, []string{"dr"}, ""},
		{"a section missing", func(r *report.Report) { r.Destinations = nil }, []string{"dr"}, "0 destination sections, want 1"},
		{"a section not asked for", func(*report.Report) {}, nil, "1 destination sections, want 0"},
		{"the second destination short", func(r *report.Report) { r.Destinations[0].Copied = 9 }, []string{"dr"}, `destination "dr": copied 9`},
		{"the second destination's bytes short", func(r *report.Report) { r.Destinations[0].BytesCopied = 99 }, []string{"dr"}, "(99 bytes)"},
		{"a failure in the second destination", func(r *report.Report) { r.Destinations[0].Failed = 1 }, []string{"dr"}, "failed 1"},
		{"the backup bucket short", func(r *report.Report) { r.Copied = 9 }, []string{"dr"}, "copied 9"},
		{"another name", func(*report.Report) {}, []string{"dr2"}, `want "dr2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := ok()
			tt.edit(rep)
			err := checkReport(rep, w, tt.dests)
			switch {
			case tt.errHas == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)):
				t.Fatalf("error %v, want one containing %q", err, tt.errHas)
			}
		})
	}
}

func TestDestinationsJSON(t *testing.T) {
	got, names, err := destinationsJSON([]string{"bench-b1", "bench-b2"})
	if err != nil {
		t.Fatal(err)
	}
	if got != `[{"name":"dr","bucket":"bench-b1"},{"name":"dr2","bucket":"bench-b2"}]` || strings.Join(names, ",") != "dr,dr2" {
		t.Fatalf("got %s %v", got, names)
	}
	// The functions read it as they would on AWS.
	ds, err := destination.Parse(got, "src", "backup", "runs")
	if err != nil || len(ds) != 2 || ds[1].Name != "dr2" || ds[1].Bucket != "bench-b2" || !ds[1].SameProvider() {
		t.Fatalf("parsed %+v, %v", ds, err)
	}
}
