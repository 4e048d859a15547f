package lister

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/etagindex"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/runlock"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// Pieces random keys are made of: ASCII, two- and three-byte UTF-8, characters above U+FFFF
// (four bytes), a folder separator and a long shared prefix.
var keyPieces = []string{"a", "b", "z", "0", "~", "/", "é", "日", "\U0001D11E", "😀", "\U0010FFFD", "common/prefix/that/many/keys/share/" + strings.Repeat("x", 200) + "/"}

// randomBucket fills src and bak: a skewed share of the keys under one folder, keys only in
// the source (new), only in the backup (deleted), in both with the same or different content.
func randomBucket(f *s3fake.S3, rng *rand.Rand, n int) {
	for range n {
		key := randomKey(rng)
		body := []byte(fmt.Sprintf("v%d", rng.IntN(3)))
		switch rng.IntN(4) {
		case 0:
			f.Put("src", key, body)
		case 1:
			f.Put("bak", key, body)
		case 2:
			f.Put("src", key, body)
			f.Put("bak", key, body)
		default:
			f.Put("src", key, body)
			f.Put("bak", key, append(body, '!'))
		}
	}
}

// randomKey makes a key of keyPieces, most of them under one prefix.
func randomKey(rng *rand.Rand) string {
	var b strings.Builder
	if rng.IntN(10) < 6 {
		b.WriteString("logs/2026/") // the skew: most keys under one prefix
	}
	for range 1 + rng.IntN(6) {
		b.WriteString(keyPieces[rng.IntN(len(keyPieces))])
	}
	return b.String()
}

// randomDestinations adds the further destinations dr and far (versioned buckets dr-bucket and
// far-bucket), each holding n random keys: some the source's with the same or other content,
// some only theirs.
func randomDestinations(f *s3fake.S3, h *Handler, rng *rand.Rand, n int) {
	h.Config.Destinations = []destination.Destination{{Name: "dr", Bucket: "dr-bucket"}, {Name: "far", Bucket: "far-bucket"}}
	h.Destinations = map[string]S3{"dr": f, "far": f}
	for _, b := range []string{"dr-bucket", "far-bucket"} {
		f.AddBucket(b, true)
		for range n {
			f.Put(b, randomKey(rng), []byte(fmt.Sprintf("v%d", rng.IntN(3))))
		}
	}
}

// outcome is what a listing decided: each key's work item (op and change), and the totals that
// must not depend on how the key space was cut.
type outcome struct {
	items        map[string]string // by destination name ("" for the backup bucket) and key
	counts       [7]int64
	destinations []report.DestinationTotals
	guards       []string
}

// collect reads the batches a manifest lists; a key in two batches is an error.
func collect(t *testing.T, f *s3fake.S3, exec string, resp Response) outcome {
	t.Helper()
	o := outcome{items: map[string]string{}}
	tt := resp.Cursor.Totals
	o.counts = [7]int64{tt.Listed, tt.New, tt.Changed, tt.Unchanged, tt.ToDelete, tt.BackupObjects, tt.BytesToCopy}
	o.destinations = tt.Destinations
	for _, g := range resp.Guards {
		o.guards = append(o.guards, fmt.Sprintf("%s:%s:%v", g.Destination, g.Name, g.Tripped))
	}
	if resp.ManifestKey == "" {
		return o
	}
	keys, err := batch.ReadManifest(bytes.NewReader(read(t, f, resp.ManifestKey)), exec)
	if err != nil {
		t.Fatal(err)
	}
	if early, err := f.GetObject(context.Background(), getInput("run", batch.EarlyManifestKey(exec))); err == nil {
		// A ranged run: the ranges' children copied these already.
		earlyKeys, err := batch.ReadManifest(early.Body, exec)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(earlyKeys, keys...)
	}
	for _, k := range keys {
		var dest string
		if _, err := batch.ReadWithHeader(bytes.NewReader(read(t, f, k)), func(h batch.Header) error { dest = h.DestinationName; return nil }, func(it batch.Item) error {
			id := dest + "|" + it.Key
			if prev, dup := o.items[id]; dup {
				return fmt.Errorf("key %q of destination %q in two batches (%s, then %s %s)", it.Key, dest, prev, it.Op, it.Change)
			}
			o.items[id] = string(it.Op) + " " + it.Change
			return nil
		}); err != nil {
			t.Fatalf("batch %s: %v", k, err)
		}
	}
	return o
}

// unlock removes the backup lock, as the reporter does at the end of a run.
func unlock(t *testing.T, f *s3fake.S3) {
	t.Helper()
	if _, err := f.DeleteObject(context.Background(), deleteInput("run", runlock.Key("src", "bak"))); err != nil {
		t.Fatal(err)
	}
}

// listSequential runs the lister loop as the List state does.
func listSequential(t *testing.T, h *Handler, exec, input string, cur *Cursor) Response {
	t.Helper()
	for n := 0; n < 10000; n++ {
		resp, err := h.Handle(context.Background(), Request{Execution: exec, Input: json.RawMessage(input), Cursor: cur})
		if err != nil {
			t.Fatalf("invocation %d: %v", n, err)
		}
		if resp.Done {
			return resp
		}
		cur = &resp.Cursor
	}
	t.Fatal("lister never finished")
	return Response{}
}

// listRanged runs the backup definition's Split, ListRanges and Plan states, and ListRanges
// again for each pass of ranges the plan adds (the rest of ranges that turned out large). With
// die, the first invocation of every range dies after writing (its response is lost, having gone
// further than the retry will) and is retried with the same cursor. It returns the final response
// and the number of ranges (0: the split chose one sequence).
func listRanged(t *testing.T, h *Handler, f *s3fake.S3, exec, input string, die bool) (Response, int) {
	t.Helper()
	ctx := context.Background()
	split, err := h.Handle(ctx, Request{Execution: exec, Input: json.RawMessage(input), Phase: PhaseSplit})
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	if split.Ranges == 0 {
		return listSequential(t, h, exec, input, &split.Cursor), 0
	}
	if split.RangesKey != RangesKey(exec) {
		t.Fatalf("ranges key %q", split.RangesKey)
	}
	var early []string
	cur, key, count, total := split.Cursor, split.RangesKey, split.Ranges, 0
	for pass := 0; ; pass++ {
		if key != RangesPassKey(exec, pass) || pass > DefaultMaxResplits {
			t.Fatalf("pass %d: ranges key %q", pass, key)
		}
		var ranges []Range
		sc := bufio.NewScanner(bytes.NewReader(read(t, f, key)))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r Range
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			ranges = append(ranges, r)
		}
		if len(ranges) != count {
			t.Fatalf("pass %d: %d ranges in the file, the response says %d", pass, len(ranges), count)
		}
		for i, r := range ranges {
			// The split's ranges cut the whole key space; a later pass's, the rests of ranges.
			if r.Index != total+i || pass == 0 && (i > 0 && r.After != ranges[i-1].Until || (r.Until == "") != (i == len(ranges)-1)) ||
				r.Until != "" && r.Until <= r.After || !utf8.ValidString(r.After) || !utf8.ValidString(r.Until) || r.NoSpill != (pass == DefaultMaxResplits) {
				t.Fatalf("pass %d, range %d of %d: %+v (after %+v)", pass, i, len(ranges), r, ranges[max(i-1, 0)])
			}
		}
		total += len(ranges)
		for _, r := range ranges {
			var cur *Cursor
			for n := 0; ; n++ {
				if n > 10000 {
					t.Fatalf("range %d never finished", r.Index)
				}
				req := Request{Execution: exec, Input: json.RawMessage(input), Phase: PhaseRange, Range: &r, Cursor: cur}
				if die && n == 0 {
					further := &Handler{S3: h.S3, Config: h.Config, Logger: h.Logger, Now: h.Now}
					further.Config.MaxKeysPerInvocation *= 3
					if _, err := further.Handle(ctx, req); err != nil {
						t.Fatalf("range %d, the attempt that dies: %v", r.Index, err)
					}
				}
				resp, err := h.Handle(ctx, req)
				if err != nil {
					t.Fatalf("range %d: %v", r.Index, err)
				}
				if resp.CopyBatches == nil || !resp.Done && len(resp.CopyBatches) > 0 {
					t.Fatalf("range %d: copy batches %v before the range is listed", r.Index, resp.CopyBatches)
				}
				if resp.Done {
					early = append(early, resp.CopyBatches...)
					break
				}
				cur = &resp.Cursor
			}
		}
		resp, err := h.Handle(ctx, Request{Execution: exec, Input: json.RawMessage(input), Phase: PhasePlan, Cursor: &cur})
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if resp.Ranges > 0 {
			if resp.Done || resp.ManifestKey != "" {
				t.Fatalf("plan of pass %d adds %d ranges but is done (%v) or wrote a manifest %q", pass, resp.Ranges, resp.Done, resp.ManifestKey)
			}
			cur, key, count = resp.Cursor, resp.RangesKey, resp.Ranges
			continue
		}
		if !resp.Done || resp.Cursor.Position.Ranges != total || resp.Cursor.Totals.Ranges != total {
			t.Fatalf("plan not done, or %d ranges (totals %d) of %d", resp.Cursor.Position.Ranges, resp.Cursor.Totals.Ranges, total)
		}
		// The plan's early manifest lists exactly the batches the ranges handed to their copiers.
		if out, err := h.S3.GetObject(ctx, getInput("run", batch.EarlyManifestKey(exec))); err == nil {
			got, err := batch.ReadManifest(out.Body, exec)
			slices.Sort(got)
			slices.Sort(early)
			if err != nil || !slices.Equal(got, early) && len(got)+len(early) > 0 {
				t.Fatalf("early manifest %v (%v), the ranges copied %v", got, err, early)
			}
		} else if len(early) > 0 {
			t.Fatalf("no early manifest, the ranges copied %v: %v", early, err)
		}
		return resp, total
	}
}

// The union of the range listers' work equals the sequential lister's, key by key, with the
// same totals and guard verdicts: random buckets with a skewed prefix, UTF-8 keys above U+FFFF,
// keys sharing long prefixes, an empty and a one-key bucket; whether ranges come from probing
// (first run) or from the first run's hints (second run); with range lister invocations that die
// after writing and are retried.
func TestRangesEqualSequential(t *testing.T) {
	tests := []struct {
		name       string
		keys       int
		seed       uint64
		wantRanges bool
		input      string
		// destinations: keys in each of two further destinations (0: none)
		destinations int
		// spill: LISTER_SPILL_KEYS (0: ranges never split while listed)
		spill int64
	}{
		{name: "empty", keys: 0},
		{name: "one key", keys: 1, seed: 3},
		{name: "small", keys: 40, seed: 1, wantRanges: true},
		{name: "random 1", keys: 400, seed: 7, wantRanges: true},
		{name: "random 2", keys: 700, seed: 11, wantRanges: true},
		{name: "random with a prefix", keys: 500, seed: 5, wantRanges: true, input: `{"prefix":"logs/2026/"}`},
		{name: "random with filters", keys: 400, seed: 13, wantRanges: true, input: `{"filters":{"exclude":["glob:**/*b*"]}}`},
		{name: "random with further destinations", keys: 400, seed: 17, wantRanges: true, destinations: 150},
		{name: "further destinations and filters", keys: 300, seed: 19, wantRanges: true, destinations: 100, input: `{"filters":{"exclude":["glob:**/*b*"],"deleteExcluded":true}}`},
		{name: "ranges that split while listed", keys: 700, seed: 31, wantRanges: true, spill: 25},
		{name: "ranges that split, with destinations and a prefix", keys: 600, seed: 37, wantRanges: true, destinations: 100, spill: 15, input: `{"prefix":"logs/2026/"}`},
	}
	for _, tt := range tests {
		for _, die := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s die=%v", tt.name, die), func(t *testing.T) {
				f, h := setup(true)
				f.PageSize = 5
				h.Config.BatchSize = 3
				h.Config.MaxKeysPerInvocation = 7
				rng := rand.New(rand.NewPCG(tt.seed, 1))
				randomBucket(f, rng, tt.keys)
				if tt.destinations > 0 {
					randomDestinations(f, h, rng, tt.destinations)
				}
				input := tt.input
				if input == "" {
					input = `{}`
				}
				want := collect(t, f, "seq", listSequential(t, h, "seq", input, nil))
				unlock(t, f)
				h.Config.Ranges = 8
				h.Config.SpillKeys, h.Config.ListConcurrency = tt.spill, 2
				for run := 1; run <= 2; run++ { // 1: probing; 2: the first run's hints, when it recorded any
					exec := fmt.Sprintf("ranged-%d", run)
					resp, ranges := listRanged(t, h, f, exec, input, die)
					unlock(t, f)
					if (ranges > 1) != tt.wantRanges {
						t.Fatalf("run %d: %d ranges, want ranges %v", run, ranges, tt.wantRanges)
					}
					if split := resp.Cursor.Position.Resplits > 0; run == 1 && split != (tt.spill > 0) {
						t.Fatalf("run %d: %d passes of ranges split from ranges that turned out large; want some %v", run, resp.Cursor.Position.Resplits, tt.spill > 0)
					}
					got := collect(t, f, exec, resp)
					if !reflect.DeepEqual(got.items, want.items) {
						t.Fatalf("run %d (%d ranges): work items differ from the sequential lister's\n got %v\nwant %v", run, ranges, got.items, want.items)
					}
					if got.counts != want.counts || !slices.Equal(got.guards, want.guards) || !reflect.DeepEqual(got.destinations, want.destinations) {
						t.Fatalf("run %d: totals %v %+v guards %v, sequential %v %+v %v", run, got.counts, got.destinations, got.guards, want.counts, want.destinations, want.guards)
					}
					if tt.destinations > 0 && (len(got.destinations) != 2 || got.destinations[0].New == 0 || got.destinations[1].ToDelete == 0) {
						t.Fatalf("run %d: destinations %+v: the test should copy to and delete from both", run, got.destinations)
					}
				}
			})
		}
	}
}

// The deletion guard judges the sum of every range: a run where each range alone deletes little
// but together too much withholds every range's deletion batches, and copies the rest. A further
// destination's guard judges its own sum: dr, which lost 80 more keys, withholds its deletions
// in every range whatever the backup bucket's guard says.
func TestRangesDeletionGuard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		deleted int
		tripped bool
	}{
		{name: "under the limit", deleted: 20, tripped: false},
		{name: "over the limit", deleted: 60, tripped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := setup(true)
			f.PageSize = 5
			h.Config.BatchSize = 3
			h.Config.Ranges = 8
			h.Config.Guards = guard.Limits{Delete: guard.Limit{MaxPercent: 25, Floor: 1}, Change: guard.Limit{MaxPercent: 100, Floor: 1}}
			for i := range 200 {
				key := fmt.Sprintf("k%03d", i)
				f.Put("bak", key, []byte("x"))
				if i%(200/tc.deleted) != 0 || i/(200/tc.deleted) >= tc.deleted {
					f.Put("src", key, []byte("x"))
				}
			}
			f.Put("src", "new", []byte("y"))
			f.AddBucket("dr-bucket", true)
			h.Config.Destinations = []destination.Destination{{Name: "dr", Bucket: "dr-bucket"}}
			h.Destinations = map[string]S3{"dr": f}
			for i := range 200 {
				f.Put("dr-bucket", fmt.Sprintf("k%03d", i), []byte("x"))
			}
			for i := range 80 {
				f.Put("dr-bucket", fmt.Sprintf("z%03d", i), []byte("x")) // only in dr: deleted there
			}
			resp, ranges := listRanged(t, h, f, "g", `{}`, false)
			if ranges < 2 {
				t.Fatalf("%d ranges", ranges)
			}
			if tot := resp.Cursor.Totals; tot.ToDelete != int64(tc.deleted) || tot.New != 1 {
				t.Fatalf("toDelete %d new %d, want %d and 1", tot.ToDelete, tot.New, tc.deleted)
			}
			if resp.Guards[0].Name != "deletion" || resp.Guards[0].Tripped != tc.tripped {
				t.Fatalf("guards %+v, want the deletion guard tripped %v", resp.Guards, tc.tripped)
			}
			if dt := resp.Cursor.Totals.Destinations; len(dt) != 1 || dt[0].ToDelete != int64(tc.deleted+80) || dt[0].New != 1 {
				t.Fatalf("dr's totals %+v, want %d to delete and 1 new", dt, tc.deleted+80)
			}
			if g := resp.Guards[2]; g.Destination != "dr" || g.Name != "deletion" || !g.Tripped {
				t.Fatalf("guards %+v, want dr's deletion guard tripped", resp.Guards)
			}
			o := collect(t, f, "g", resp)
			deletes := map[string]int{}
			for id, v := range o.items {
				if strings.HasPrefix(v, "delete") {
					deletes[strings.Split(id, "|")[0]]++
				}
			}
			if want := map[bool]int{false: tc.deleted, true: 0}[tc.tripped]; deletes[""] != want || deletes["dr"] != 0 || o.items["|new"] != "copy new" || o.items["dr|new"] != "copy new" {
				t.Fatalf("manifest holds deletions %v (want %d of the backup's, none of dr's) and new=%q, dr's new=%q", deletes, want, o.items["|new"], o.items["dr|new"])
			}
		})
	}
}

// Midpoints are valid UTF-8 and lie in [a, b): on random strings of any plane.
func TestMidpoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	runes := []rune{1, 'a', 'z', 0x7e, 0x7f, 0x80, 0xe9, 0x65e5, 0xd7ff, 0xe000, 0xffff, 0x10000, 0x1d11e, 0x10fffe, 0x10ffff}
	random := func() string {
		var b []rune
		for range rng.IntN(5) {
			b = append(b, runes[rng.IntN(len(runes))])
		}
		return string(b)
	}
	for range 20000 {
		a, b := random(), random()
		if a > b {
			a, b = b, a
		}
		open := rng.IntN(4) == 0
		if a == b && !open {
			continue
		}
		m := midpoint(a, b, open)
		if !utf8.ValidString(m) || m < a || !open && m >= b {
			t.Fatalf("midpoint(%q, %q, open %v) = %q", a, b, open, m)
		}
	}
	if m := midpoint("a", "", true); m <= "a" || m > "\x7f" {
		t.Errorf("midpoint towards the open end from ASCII = %q, want ASCII above a", m)
	}
	if m := midpoint("a", "c", false); m != "b" {
		t.Errorf("midpoint(a, c) = %q", m)
	}
	if m := midpoint("\U0001D11E", "\U0010FFFF", false); m <= "\U0001D11E" || m >= "\U0010FFFF" {
		t.Errorf("midpoint above U+FFFF = %q", m)
	}
}

// LISTER_RANGES=auto lists a source in ranges once an earlier run of the same source and prefix
// recorded DefaultAutoRangeKeys keys or more, and in one sequence otherwise; every run that
// finishes a listing records its size for the next one.
func TestRangesAuto(t *testing.T) {
	pointer := func(source, prefix string, keys int64) string {
		b, _ := json.Marshal(hintsPointer{Execution: "before", Source: source, Prefix: prefix, Keys: keys})
		return string(b)
	}
	for _, tc := range []struct {
		name       string
		ranges     int
		size       string // SizeKey's content; "": none
		hints      bool   // a ranged run's hints: 30 over the 300 keys
		input      string
		autoKeys   int64 // AutoRangeKeys, when not the default
		wantRanges bool
		wantWhy    string
	}{
		{name: "first run of a small bucket: counted", ranges: RangesAuto, wantWhy: "188 probed ranges held 300 source keys in all, fewer than 100000"},
		// 28 probed ranges, a page of 5 keys each at a time: 200 keys take more than one page of
		// some ranges to count.
		{name: "first run of a big bucket: counted, probing", ranges: RangesAuto, autoKeys: 200, wantRanges: true},
		{name: "first run of a bucket just too small", ranges: RangesAuto, autoKeys: 301, wantWhy: "28 probed ranges held 300 source keys in all, fewer than 301"},
		{name: "last run small", ranges: RangesAuto, size: pointer("src", "", DefaultAutoRangeKeys-1), wantWhy: "fewer than 100000"},
		{name: "last run big: probing, 4 ranges a lister", ranges: RangesAuto, size: pointer("src", "", DefaultAutoRangeKeys), wantRanges: true},
		{name: "last run big: its hints, a range a lister", ranges: RangesAuto, size: pointer("src", "", DefaultAutoRangeKeys), hints: true, wantRanges: true},
		{name: "another source's size", ranges: RangesAuto, size: pointer("other", "", 5*DefaultAutoRangeKeys), wantWhy: "no earlier run"},
		{name: "another prefix's size", ranges: RangesAuto, size: pointer("src", "", 5*DefaultAutoRangeKeys), input: `{"prefix":"logs/"}`, wantWhy: "no earlier run"},
		{name: "off whatever the size", ranges: 0, size: pointer("src", "", 5*DefaultAutoRangeKeys), wantWhy: "LISTER_RANGES is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, h := setup(true)
			f.PageSize = 5
			h.Config.Ranges, h.Config.ListConcurrency = tc.ranges, 7
			if tc.autoKeys > 0 {
				h.Config.AutoRangeKeys = tc.autoKeys
			}
			var logs bytes.Buffer
			h.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			for i := range 300 {
				f.Put("src", fmt.Sprintf("logs/%03d", i), []byte("x"))
			}
			if tc.size != "" {
				f.Put("run", SizeKey, []byte(tc.size))
			}
			if tc.hints {
				f.Put("run", HintsPointerKey, []byte(pointer("src", "", 300)))
				var b bytes.Buffer
				for i := 9; i < 300; i += 10 {
					fmt.Fprintf(&b, `{"k":"logs/%03d","n":10}`+"\n", i)
				}
				f.Put("run", HintsKey("before"), b.Bytes())
			}
			input := tc.input
			if input == "" {
				input = `{}`
			}
			split, err := h.Handle(context.Background(), Request{Execution: "auto", Input: json.RawMessage(input), Phase: PhaseSplit})
			if err != nil {
				t.Fatal(err)
			}
			if (split.Ranges > 1) != tc.wantRanges || split.ListConcurrency != 7 {
				t.Fatalf("%d ranges, list concurrency %d; want ranges %v and 7\n%s", split.Ranges, split.ListConcurrency, tc.wantRanges, logs.String())
			}
			if !tc.wantRanges && !strings.Contains(logs.String(), tc.wantWhy) {
				t.Fatalf("the split's log does not say %q:\n%s", tc.wantWhy, logs.String())
			}
			if tc.wantRanges {
				// A range per lister where hints balance them; more where probing cuts them.
				if tc.hints && split.Ranges != 7 || !tc.hints && (split.Ranges <= 7 || split.Ranges > 4*7) {
					t.Fatalf("%d ranges for 7 listers, hints %v", split.Ranges, tc.hints)
				}
				return
			}
			// The run lists in one sequence and records its size for the next run.
			listSequential(t, h, "auto", input, &split.Cursor)
			var p hintsPointer
			if err := json.Unmarshal(read(t, f, SizeKey), &p); err != nil {
				t.Fatal(err)
			}
			prefix := map[string]string{"": "", `{"prefix":"logs/"}`: "logs/"}[tc.input]
			if want := (hintsPointer{Execution: "auto", Source: "src", Prefix: prefix, Keys: 300}); p != want {
				t.Fatalf("pointer %+v, want %+v", p, want)
			}
		})
	}
}

// A further destination whose listing fails in one range is marked failed in the run's totals
// (the reporter fails the run naming it); the backup bucket's work is that of a run without it.
func TestRangesDestinationFails(t *testing.T) {
	f, h := rangedSetup(23, 300)
	want := collect(t, f, "plain", listSequential(t, h, "plain", `{}`, nil))
	unlock(t, f)
	f.AddBucket("dr-bucket", true)
	h.Config.Destinations = []destination.Destination{{Name: "dr", Bucket: "dr-bucket"}}
	h.Destinations = map[string]S3{"dr": &unlistable{S3: f, okPages: 6}}
	for _, k := range []string{"0-gone", "1-gone", "logs/2026/0-gone"} {
		f.Put("dr-bucket", k, []byte("x")) // only in dr: deletions decided before it fails
	}
	resp, ranges := listRanged(t, h, f, "g", `{}`, false)
	if ranges < 2 {
		t.Fatalf("%d ranges", ranges)
	}
	got := collect(t, f, "g", resp)
	if dt := got.destinations; len(dt) != 1 || !strings.Contains(dt[0].Error, "listing it failed") || dt[0].ToDelete == 0 {
		t.Fatalf("dr's totals %+v, want its listing failed after it found deletions", dt)
	}
	for id, v := range got.items {
		// No guard can judge the deletions of a destination whose counts stop where it failed.
		if strings.HasPrefix(id, "dr|") && strings.HasPrefix(v, "delete") {
			t.Fatalf("dr's deletion %s %q is in the manifest: its listing failed", id, v)
		}
	}
	backup := map[string]string{}
	for id, v := range got.items {
		if name, key, _ := strings.Cut(id, "|"); name == "" {
			backup["|"+key] = v
		}
	}
	if !reflect.DeepEqual(backup, want.items) || got.counts != want.counts {
		t.Fatalf("the backup bucket's work differs from a run without dr: %v %v, want %v %v", backup, got.counts, want.items, want.counts)
	}
}

// apply acts as the copier for a finished backup into the backup bucket: each copy item is copied
// (under SSE-KMS a fresh ETag) and recorded in its batch's copied file of the ETag index, each
// deletion gets a delete marker. It returns how many items it applied.
func apply(t *testing.T, f *s3fake.S3, exec string, resp Response) int {
	t.Helper()
	ctx := context.Background()
	keys, err := batch.ReadManifest(bytes.NewReader(read(t, f, resp.ManifestKey)), exec)
	if err != nil {
		t.Fatal(err)
	}
	if early, err := f.GetObject(ctx, getInput("run", batch.EarlyManifestKey(exec))); err == nil {
		earlyKeys, err := batch.ReadManifest(early.Body, exec)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(earlyKeys, keys...)
	}
	n := 0
	for _, k := range keys {
		var entries []etagindex.Entry
		if _, err := batch.Read(bytes.NewReader(read(t, f, k)), func(it batch.Item) error {
			n++
			switch it.Op {
			case batch.OpCopy:
				out, err := f.GetObject(ctx, getInput("src", it.Key))
				if err != nil {
					return err
				}
				body, _ := io.ReadAll(out.Body)
				etag := f.Put("bak", it.Key, body)
				entries = append(entries, etagindex.Entry{Key: it.Key, Source: it.ETag, Backup: etag, Size: it.Size})
			case batch.OpDelete:
				_, err := f.DeleteObject(ctx, deleteInput("bak", it.Key))
				return err
			}
			return nil
		}); err != nil {
			t.Fatalf("batch %s: %v", k, err)
		}
		if len(entries) == 0 {
			continue // a deletion batch
		}
		if err := etagindex.WriteCopied(ctx, f, "run", exec, k, entries); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// Into an SSE-KMS backup, whose ETags never equal the source's, key-space ranges read the ETag
// index each from its own start (etagindex.Seek) and write their carry files by range, also
// ranges that split while listed (their rest's ranges numbered after all others): idle runs
// copy nothing whether the generation they read was written in ranges or in one sequence, and a
// run after changes finds exactly the work the sequential lister finds on the same index.
func TestRangesETagIndex(t *testing.T) {
	for _, die := range []bool{false, true} {
		t.Run(fmt.Sprintf("die=%v", die), func(t *testing.T) {
			f, h := setup(true)
			f.SetEncryption("bak", types.ServerSideEncryptionAwsKms)
			f.PageSize = 5
			h.Config.BatchSize = 3
			h.Config.MaxKeysPerInvocation = 7 // many small carry files
			rng := rand.New(rand.NewPCG(29, 1))
			randomBucket(f, rng, 400)
			input := `{}`
			ranged := func(exec string) (Response, int) {
				t.Helper()
				h.Config.Ranges = 8
				// Ranges split while listed: the generation's ranges are not in key order.
				h.Config.SpillKeys, h.Config.ListConcurrency = 30, 2
				resp, ranges := listRanged(t, h, f, exec, input, die)
				if resp.Cursor.Position.Resplits == 0 {
					t.Fatalf("%s: no range split", exec)
				}
				if ranges < 2 {
					t.Fatalf("%s: %d ranges", exec, ranges)
				}
				return resp, ranges
			}
			sequential := func(exec string) Response {
				t.Helper()
				h.Config.Ranges = 0
				return listSequential(t, h, exec, `{}`, nil)
			}
			first, _ := ranged("first")
			if n := apply(t, f, "first", first); n == 0 || first.Cursor.Totals.Changed == 0 {
				t.Fatalf("first run applied %d items, %d changed", n, first.Cursor.Totals.Changed)
			}
			unlock(t, f)
			idle := func(exec string, resp Response) {
				t.Helper()
				tt := resp.Cursor.Totals
				if tt.New+tt.Changed+tt.ToDelete != 0 || tt.Unchanged != tt.Listed || tt.Listed == 0 {
					t.Fatalf("%s: new %d changed %d toDelete %d unchanged %d of %d listed; want an idle run", exec, tt.New, tt.Changed, tt.ToDelete, tt.Unchanged, tt.Listed)
				}
				apply(t, f, exec, resp)
				unlock(t, f)
			}
			r1, _ := ranged("idle-after-ranged")
			idle("idle-after-ranged", r1)
			idle("sequential-after-ranged", sequential("sequential-after-ranged"))
			r2, _ := ranged("idle-after-sequential")
			idle("idle-after-sequential", r2)
			// A run of one prefix carries the other keys' entries as they are (each range the
			// entries within it): the next run of the whole bucket is idle.
			input = `{"prefix":"logs/2026/"}`
			r4, _ := ranged("idle-prefix")
			idle("idle-prefix", r4)
			input = `{}`
			r5, _ := ranged("idle-after-prefix")
			idle("idle-after-prefix", r5)

			// Changes: the sequential lister and the ranges, on the same index, find the same work.
			var srcKeys []string
			for after := ""; ; {
				out, err := f.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("src"), StartAfter: aws.String(after)})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range out.Contents {
					srcKeys = append(srcKeys, aws.ToString(o.Key))
				}
				if !aws.ToBool(out.IsTruncated) {
					break
				}
				after = srcKeys[len(srcKeys)-1]
			}
			for i, k := range srcKeys {
				switch i % 13 {
				case 0:
					f.Put("src", k, []byte("changed "+k))
				case 1:
					f.DeleteObject(context.Background(), deleteInput("src", k))
				}
			}
			f.Put("src", "brand new", []byte("n"))
			want := collect(t, f, "seq-changes", sequential("seq-changes"))
			unlock(t, f)
			resp, _ := ranged("changes")
			got := collect(t, f, "changes", resp)
			if !reflect.DeepEqual(got.items, want.items) || got.counts != want.counts {
				t.Fatalf("ranged run after changes: %v %v; the sequential lister's %v %v", got.items, got.counts, want.items, want.counts)
			}
			if want.counts[2] == 0 || want.counts[4] == 0 || want.counts[1] != 1 {
				t.Fatalf("counts %v: the changes were not found", want.counts)
			}
			apply(t, f, "changes", resp)
			unlock(t, f)
			r3, _ := ranged("idle-again")
			idle("idle-again", r3)
		})
	}
}

// Without SSE-KMS the ETag index names a copied file for every copy batch and holds none: the
// next run reads it as empty (one LIST) instead of a GET per batch and per range.
func TestRangesReadNoIndexWithoutKMS(t *testing.T) {
	f, h := rangedSetup(41, 300)
	first, _ := listRanged(t, h, f, "first", `{}`, false)
	apply(t, f, "first", first)
	unlock(t, f)
	g, err := etagindex.Current(context.Background(), f, "run")
	if err != nil || g.Ranges == 0 || first.Cursor.Totals.New == 0 {
		t.Fatalf("the first run's generation %+v (%v): want a ranged one naming copy batches", g, err)
	}
	before := len(f.Calls())
	second, _ := listRanged(t, h, f, "second", `{}`, false)
	if tt := second.Cursor.Totals; tt.New+tt.Changed+tt.ToDelete != 0 {
		t.Fatalf("the second run is not idle: %+v", tt)
	}
	for _, c := range f.Calls()[before:] {
		if strings.HasPrefix(c, "GetObject run/"+etagindex.CopiedPrefix("first")) {
			t.Fatalf("the second run read the first run's copied files (%s): none exists without SSE-KMS", c)
		}
	}
}

func TestLocalListConcurrency(t *testing.T) {
	for _, tt := range []struct{ cpus, want int }{{0, 1}, {1, 2}, {2, 4}, {8, 16}, {16, 32}, {64, DefaultListConcurrency}} {
		if got := LocalListConcurrency(tt.cpus); got != tt.want {
			t.Errorf("LocalListConcurrency(%d) = %d, want %d", tt.cpus, got, tt.want)
		}
	}
}

// rangedSetup is setup with keys random keys (randomBucket of seed), pages of 5 keys, batches
// of 3 items and LISTER_RANGES=8.
func rangedSetup(seed uint64, keys int) (*s3fake.S3, *Handler) {
	f, h := setup(true)
	f.PageSize = 5
	h.Config.BatchSize = 3
	h.Config.Ranges = 8
	randomBucket(f, rand.New(rand.NewPCG(seed, 1)), keys)
	return f, h
}

// countingLister counts the keys ListObjectsV2 answers.
type countingLister struct {
	*s3fake.S3
	keys int
}

func (c *countingLister) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	out, err := c.S3.ListObjectsV2(ctx, in, opts...)
	if err == nil {
		c.keys += len(out.Contents)
	}
	return out, err
}

// A first run's count of a small bucket lists a few times its keys, not a page of 1,000 keys a
// probed range (a LIST cannot stop at a range's end: a small range's page holds the next ranges'
// keys).
func TestRangesCountListsLittle(t *testing.T) {
	for _, n := range []int{5000, 20000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f, h := setup(true)
			f.PageSize = 1000
			for i := range n {
				f.Put("src", fmt.Sprintf("data/%05d", i), []byte("x"))
			}
			c := &countingLister{S3: f}
			h.S3, h.Config.Ranges, h.Config.ListConcurrency = c, RangesAuto, 4
			var logs bytes.Buffer
			h.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			split, err := h.Handle(context.Background(), Request{Execution: "count", Input: json.RawMessage(`{}`), Phase: PhaseSplit})
			if err != nil || split.Ranges != 0 || !strings.Contains(logs.String(), fmt.Sprintf("held %d source keys in all", n)) {
				t.Fatalf("split: %d ranges, %v\n%s", split.Ranges, err, logs.String())
			}
			// Measured: 5,000 keys 10,285 listed, 20,000 keys 35,577 (pages of 1,000 from the
			// start: 194,460 at 5,000).
			if c.keys > 3*n {
				t.Fatalf("the split listed %d keys to count a bucket of %d", c.keys, n)
			}
		})
	}
}
