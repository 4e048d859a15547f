package main

import (
	"math"
	"os"
	"testing"
	"time"
)

func TestFinishCeilingIsBestMedianConcurrency(t *testing.T) {
	r := &results{Sets: []setInfo{{Name: "small", Objects: 100, Bytes: 1000}}}
	// Concurrency 16 is fastest once by luck; 32 has the best median.
	r.addCeiling("small", 16, measurement{wall: 10 * time.Second})
	r.addCeiling("small", 16, measurement{wall: 14 * time.Second})
	r.addCeiling("small", 16, measurement{wall: 14 * time.Second})
	r.addCeiling("small", 32, measurement{wall: 12 * time.Second})
	r.addCeiling("small", 32, measurement{wall: 12 * time.Second})
	r.addCeiling("small", 32, measurement{wall: 12 * time.Second})
	for _, s := range []time.Duration{12, 12, 12} {
		r.add("bv-full-small", "small", 100, 1000, measurement{wall: s * time.Second})
	}
	r.finish()
	tests := []struct {
		name      string
		got, want float64
	}{
		{"ceiling median", r.find("ceiling-small").Median, 12},
		{"full-run ratio against the best-median concurrency", *r.find("bv-full-small").Ratio, 1},
		{"full-run ratio against the per-repetition best", r.PerRepBest["small"], 1}, // median of 10/12, 12/12, 12/12
	}
	for _, tt := range tests {
		if math.Abs(tt.got-tt.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if met := r.find("bv-full-small").Met; met == nil || !*met {
		t.Errorf("target not met at ratio 1")
	}
}

func TestProcCPUOfThisProcess(t *testing.T) {
	// Burn 200 ms of CPU as getrusage counts it (not of wall-clock time, which a loaded machine
	// stretches), then /proc must say at least most of it (it counts in clock ticks).
	start := selfCPU()
	for selfCPU()-start < 200*time.Millisecond {
	}
	got, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if got < start+150*time.Millisecond || got > selfCPU()+time.Second {
		t.Fatalf("procCPU = %v after spinning from %v of CPU; getrusage now says %v", got, start, selfCPU())
	}
	if _, err := procCPU(-1); err == nil {
		t.Fatal("procCPU of a process that does not exist: want an error")
	}
}
