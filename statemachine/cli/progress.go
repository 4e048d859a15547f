package cli

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bucketvault/bucketvault/shared/progress"
	"github.com/bucketvault/bucketvault/shared/units"
)

// progressEvery is how often the progress line is refreshed.
const progressEvery = time.Second

// line renders a snapshot: batches done of total, objects, bytes, rate and ETA.
func line(s progress.Snapshot, elapsed time.Duration) string {
	if !s.ManifestWritten {
		return fmt.Sprintf("listing… %s", elapsed.Round(time.Second))
	}
	rate := float64(s.Bytes) / max(elapsed.Seconds(), 0.001)
	eta := "–"
	if s.Done > 0 && s.Batches > s.Done {
		eta = (time.Duration(float64(elapsed) / float64(s.Done) * float64(s.Batches-s.Done))).Round(time.Second).String()
	}
	return fmt.Sprintf("batches %d/%d, %d objects, %s copied, %s/s, ETA %s", s.Done, s.Batches, s.Objects, units.Bytes(s.Bytes), units.Bytes(int64(rate)), eta)
}

// showProgress refreshes a progress line on stderr while a run runs, when stderr is a terminal
// and the output is not JSON; it reads the run's manifest and outcomes in the run bucket. The
// returned function stops it and clears the line.
func (a *app) showProgress(ctx context.Context, client progress.S3, name string) func() {
	if a.jsonOut || !isTerminal(a.errw) {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	w := progress.NewWatcher(client, a.cfg.Run, name)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if s, err := w.Poll(ctx); err == nil {
					fmt.Fprintf(a.errw, "\r\033[K  %s", line(s, time.Since(start)))
				}
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		fmt.Fprint(a.errw, "\r\033[K")
	}
}
