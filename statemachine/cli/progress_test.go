package cli

import (
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/progress"
)

func TestProgressLine(t *testing.T) {
	tests := []struct {
		s       progress.Snapshot
		elapsed time.Duration
		want    string
	}{
		{progress.Snapshot{}, 3 * time.Second, "listing… 3s"},
		{progress.Snapshot{ManifestWritten: true, Batches: 4, Done: 1, Objects: 10, Bytes: 3 << 20}, 10 * time.Second,
			"batches 1/4, 10 objects, 3.0 MiB copied, 307.2 KiB/s, ETA 30s"},
		{progress.Snapshot{ManifestWritten: true, Batches: 2, Done: 2, Objects: 5, Bytes: 0}, time.Second,
			"batches 2/2, 5 objects, 0 B copied, 0 B/s, ETA –"},
	}
	for _, tt := range tests {
		if got := line(tt.s, tt.elapsed); got != tt.want {
			t.Errorf("line(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}
