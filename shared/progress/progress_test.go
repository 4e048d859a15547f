package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func TestPoll(t *testing.T) {
	ctx := context.Background()
	f := s3fake.New()
	f.AddBucket("run", false)
	w := NewWatcher(f, "run", "restore-x")
	var newest time.Time // LastModified of the newest outcome written
	outcome := func(seq int, o report.Outcome) {
		key, err := batch.OutcomeKey(batch.Key("restore-x", seq))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(o)
		f.Tick(time.Minute)
		f.Put("run", key, b)
		vs := f.Versions("run", key)
		newest = vs[len(vs)-1].LastModified
	}
	steps := []struct {
		name string
		do   func()
		want Snapshot
	}{
		{name: "listing: nothing yet", do: func() {}, want: Snapshot{}},
		{name: "manifest of 3 batches", do: func() {
			if err := batch.WriteManifest(ctx, f, "run", "restore-x", 3); err != nil {
				t.Fatal(err)
			}
		}, want: Snapshot{ManifestWritten: true, Batches: 3}},
		{name: "one batch done", do: func() { outcome(0, report.Outcome{Copied: 2, Failed: 1, BytesCopied: 10}) },
			want: Snapshot{ManifestWritten: true, Batches: 3, Done: 1, Objects: 3, Bytes: 10, Failed: 1}},
		{name: "another run's outcome is not counted", do: func() {
			f.Tick(time.Minute)
			key, _ := batch.OutcomeKey(batch.Key("restore-y", 0))
			f.Put("run", key, []byte(`{"copied":100}`))
		}, want: Snapshot{ManifestWritten: true, Batches: 3, Done: 1, Objects: 3, Bytes: 10, Failed: 1}},
		{name: "all done", do: func() {
			outcome(1, report.Outcome{Copied: 1, BytesCopied: 5})
			outcome(2, report.Outcome{Skipped: 4})
		}, want: Snapshot{ManifestWritten: true, Batches: 3, Done: 3, Objects: 8, Bytes: 15, Failed: 1}},
	}
	for _, st := range steps {
		st.do()
		got, err := w.Poll(ctx)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got.LastOutcome != newest {
			t.Fatalf("%s: LastOutcome %v, want the newest outcome's time %v", st.name, got.LastOutcome, newest)
		}
		got.LastOutcome = time.Time{}
		if got != st.want {
			t.Fatalf("%s: got %+v, want %+v", st.name, got, st.want)
		}
	}
	// Outcomes already read are not read again.
	before := f.Count("GetObject")
	if _, err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.Count("GetObject") - before; n != 0 {
		t.Fatalf("a poll with nothing new read %d objects", n)
	}
}

func TestEmptyManifest(t *testing.T) {
	f := s3fake.New()
	f.AddBucket("run", false)
	if err := batch.WriteManifest(context.Background(), f, "run", "r", 0); err != nil {
		t.Fatal(err)
	}
	got, err := NewWatcher(f, "run", "r").Poll(context.Background())
	if err != nil || got != (Snapshot{ManifestWritten: true}) {
		t.Fatalf("got %+v, %v; want a written manifest of no batches", got, err)
	}
}

// A restore waiting for thaws: its thaw files say how many archived versions it asked for and
// since when; they are read once, after the manifest (the planner writes them all before it).
func TestPollThaw(t *testing.T) {
	ctx := context.Background()
	f := s3fake.New()
	f.AddBucket("run", false)
	w := NewWatcher(f, "run", "restore-x")
	thaw := func(seq, n int) {
		items := make([]batch.Item, n)
		for i := range items {
			items[i] = batch.Item{Op: batch.OpCopy, Key: fmt.Sprintf("k%d-%d", seq, i), VersionID: "v"}
		}
		if err := batch.Write(ctx, f, "run", batch.ThawKey("restore-x", seq), batch.Header{Version: batch.Version, Source: "backup", Destination: "source"}, items); err != nil {
			t.Fatal(err)
		}
	}
	f.Tick(time.Hour)
	thaw(0, 1000)
	vs := f.Versions("run", batch.ThawKey("restore-x", 0))
	since := vs[0].LastModified
	f.Tick(time.Minute)
	thaw(1, 234)
	if got, err := w.Poll(ctx); err != nil || got.Thawing != 0 {
		t.Fatalf("before the manifest: %+v, %v; want no thaws counted (planning)", got, err)
	}
	if err := batch.WriteManifest(ctx, f, "run", "restore-x", 2); err != nil {
		t.Fatal(err)
	}
	want := Snapshot{ManifestWritten: true, Batches: 2, Thawing: 1234, ThawSince: since}
	if got, err := w.Poll(ctx); err != nil || got != want {
		t.Fatalf("after the manifest: %+v, %v; want %+v", got, err, want)
	}
	before := f.Count("GetObject")
	if got, err := w.Poll(ctx); err != nil || got != want {
		t.Fatalf("again: %+v, %v; want %+v", got, err, want)
	}
	if n := f.Count("GetObject") - before; n != 0 {
		t.Fatalf("a second poll read %d files; the thaw files are read once", n)
	}
}

func TestRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		start, end   time.Time
		objs, byts   int64
		wantO, wantB float64
	}{
		{"100 objects in 50 s", t0, t0.Add(50 * time.Second), 100, 1000, 2, 20},
		{"no stretch yet", t0, t0, 5, 5, 0, 0},
		{"no end", t0, time.Time{}, 5, 5, 0, 0},
		{"no start", time.Time{}, t0, 5, 5, 0, 0},
	}
	for _, tt := range tests {
		if o, b := Rate(tt.objs, tt.byts, tt.start, tt.end); o != tt.wantO || b != tt.wantB {
			t.Errorf("%s: Rate = %v, %v; want %v, %v", tt.name, o, b, tt.wantO, tt.wantB)
		}
	}
}
