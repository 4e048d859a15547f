package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/runlog"
)

// progressEvery is how often the progress line is refreshed.
const progressEvery = time.Second

// snapshot is what a run has done so far, read from its files in the run bucket.
type snapshot struct {
	batches, done   int // batches in the manifest (0 while listing), outcomes written
	objects         int64
	bytes           int64
	manifestWritten bool
}

// watcher reads a run's progress from the run bucket: the manifest says how many batches there
// are, each outcome file what one batch did. Locally and on AWS alike, it only reads S3.
type watcher struct {
	client runlog.S3
	bucket string
	name   string
	seen   map[string]report.Outcome
	total  int
}

func (w *watcher) poll(ctx context.Context) (snapshot, error) {
	var s snapshot
	if w.total == 0 {
		out, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(batch.ManifestKey(w.name))})
		if err == nil {
			sc := bufio.NewScanner(out.Body)
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) != "" {
					w.total++
				}
			}
			out.Body.Close()
			if w.total == 0 {
				w.total = -1 // an empty manifest: nothing to copy
			}
		}
	}
	s.manifestWritten = w.total != 0
	s.batches = max(w.total, 0)
	p := s3.NewListObjectsV2Paginator(w.client, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(batch.WorkPrefix(w.name) + "outcomes/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s, err
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if _, ok := w.seen[key]; ok {
				continue
			}
			out, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
			if err != nil {
				continue // written but not yet readable: the next poll reads it
			}
			var oc report.Outcome
			err = json.NewDecoder(out.Body).Decode(&oc)
			out.Body.Close()
			if err == nil {
				w.seen[key] = oc
			}
		}
	}
	for _, oc := range w.seen {
		s.done++
		s.objects += int64(oc.Copied + oc.Deleted + oc.Failed + oc.Skipped)
		s.bytes += oc.BytesCopied
	}
	return s, nil
}

// line renders a snapshot: batches done of total, objects, bytes, rate and ETA.
func (s snapshot) line(elapsed time.Duration) string {
	if !s.manifestWritten {
		return fmt.Sprintf("listing… %s", elapsed.Round(time.Second))
	}
	rate := float64(s.bytes) / max(elapsed.Seconds(), 0.001)
	eta := "–"
	if s.done > 0 && s.batches > s.done {
		eta = (time.Duration(float64(elapsed) / float64(s.done) * float64(s.batches-s.done))).Round(time.Second).String()
	}
	return fmt.Sprintf("batches %d/%d, %d objects, %s copied, %s/s, ETA %s", s.done, s.batches, s.objects, humanBytes(s.bytes), humanBytes(int64(rate)), eta)
}

// showProgress refreshes a progress line on stderr while a run runs, when stderr is a terminal
// and the output is not JSON. The returned function stops it and clears the line.
func (a *app) showProgress(ctx context.Context, client *s3.Client, name string) func() {
	if a.jsonOut || !isTerminal(a.errw) {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{client: client, bucket: a.cfg.Run, name: name, seen: map[string]report.Outcome{}}
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
				if s, err := w.poll(ctx); err == nil {
					fmt.Fprintf(a.errw, "\r\033[K  %s", s.line(time.Since(start)))
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
