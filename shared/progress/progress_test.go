package progress

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func TestPoll(t *testing.T) {
	ctx := context.Background()
	f := s3fake.New()
	f.AddBucket("run", false)
	w := NewWatcher(f, "run", "restore-x")
	outcome := func(seq int, o report.Outcome) {
		key, err := batch.OutcomeKey(batch.Key("restore-x", seq))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(o)
		f.Put("run", key, b)
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
