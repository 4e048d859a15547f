package cli

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// The progress line follows a run through its files in the run bucket: listing until the manifest
// exists, then batches done of total with the objects and bytes of the outcomes written so far.
func TestWatcher(t *testing.T) {
	f := s3fake.New()
	f.AddBucket("run", false)
	w := &watcher{client: f, bucket: "run", name: "backup-x", seen: map[string]report.Outcome{}}
	poll := func() snapshot {
		t.Helper()
		s, err := w.poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := poll(); s.manifestWritten || s.line(3*time.Second) != "listing… 3s" {
		t.Fatalf("before the manifest: %+v %q", s, s.line(3*time.Second))
	}
	f.Put("run", batch.ManifestKey("backup-x"), []byte(`{"key":"a"}`+"\n"+`{"key":"b"}`+"\n"+`{"key":"c"}`+"\n"+`{"key":"d"}`+"\n"))
	outcome := func(n int, copied int, bytes int64) {
		key, _ := batch.OutcomeKey(batch.Key("backup-x", n))
		b, _ := json.Marshal(report.Outcome{Copied: copied, Failed: 1, BytesCopied: bytes})
		f.Put("run", key, b)
	}
	outcome(0, 9, 3<<20)
	s := poll()
	if s.batches != 4 || s.done != 1 || s.objects != 10 || s.bytes != 3<<20 {
		t.Fatalf("one batch done: %+v", s)
	}
	if got, want := s.line(10*time.Second), "batches 1/4, 10 objects, 3.0 MiB copied, 307.2 KiB/s, ETA 30s"; got != want {
		t.Fatalf("line %q, want %q", got, want)
	}
	outcome(1, 4, 1<<20)
	if s := poll(); s.done != 2 || s.objects != 15 || s.bytes != 4<<20 {
		t.Fatalf("two batches done: %+v", s)
	}
	if reads := f.Count("GetObject"); reads != 4 { // the manifest twice (absent, then read), each outcome once
		t.Fatalf("%d GetObject calls: an outcome read twice", reads)
	}
}
