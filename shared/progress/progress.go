// Package progress reads how far a running backup or restore has got from its files in the run
// bucket: the batch manifest says how many batches there are, each outcome file what one batch
// did and (its time) how fast, a restore's thaw files how many archived versions it waits for.
// It only reads S3, so it works the same locally and on AWS.
package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
)

// S3 is what watching a run needs of an S3 client.
type S3 interface {
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Snapshot is what a run has done so far.
type Snapshot struct {
	// ManifestWritten is false while the run is still listing (or planning): Batches is 0 then.
	ManifestWritten bool  `json:"manifestWritten"`
	Batches         int   `json:"batches"` // batches in the manifest
	Done            int   `json:"done"`    // outcome files written
	Objects         int64 `json:"objects"` // objects copied, deleted, failed or skipped so far
	Bytes           int64 `json:"bytes"`   // bytes copied so far
	Failed          int64 `json:"failed"`  // objects failed so far
	// LastOutcome is when the newest outcome file read was written (the run bucket's clock):
	// the end of the stretch a rate is measured over. Zero before any.
	LastOutcome time.Time `json:"lastOutcome"`
	// Thawing counts the archived versions a restore asked S3 to thaw (its thaw files, read
	// once the manifest is written: the planner writes them all before it), ThawSince when the
	// first thaw file was written. Copying waits until all of them are readable.
	Thawing   int64     `json:"thawing"`
	ThawSince time.Time `json:"thawSince"`
}

// Rate is objects and bytes per second over the stretch from start to end; zero when the
// stretch is empty.
func Rate(objects, bytes int64, start, end time.Time) (objectsPerSecond, bytesPerSecond float64) {
	d := end.Sub(start).Seconds()
	if start.IsZero() || end.IsZero() || d <= 0 {
		return 0, 0
	}
	return float64(objects) / d, float64(bytes) / d
}

// Watcher reads one run's progress. Each outcome file is read once: a Poll reads only the
// outcomes written since the last. It is safe for concurrent use.
type Watcher struct {
	client    S3
	bucket    string
	execution string

	mu       sync.Mutex
	manifest bool
	total    int
	seen     map[string]report.Outcome
	last     time.Time // LastOutcome
	thawRead bool      // the thaw files are read (they are complete once the manifest is)
	thawing  int64
	since    time.Time
}

// NewWatcher watches execution's files in runBucket.
func NewWatcher(client S3, runBucket, execution string) *Watcher {
	return &Watcher{client: client, bucket: runBucket, execution: execution, seen: map[string]report.Outcome{}}
}

// Poll reads the manifest (until it is there) and the outcome files not read yet. An outcome file
// listed but not readable yet is read by a later Poll.
func (w *Watcher) Poll(ctx context.Context) (Snapshot, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.manifest {
		key := batch.ManifestKey(w.execution)
		out, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
		switch {
		case err == nil:
			keys, rerr := batch.ReadManifest(out.Body, w.execution)
			out.Body.Close()
			if rerr != nil {
				return Snapshot{}, fmt.Errorf("read s3://%s/%s: %w", w.bucket, key, rerr)
			}
			w.manifest, w.total = true, len(keys)
		case !fault.IsCode(err, "NoSuchKey", "NotFound"):
			return Snapshot{}, fmt.Errorf("read s3://%s/%s: %w", w.bucket, key, err)
		}
	}
	if w.manifest && !w.thawRead {
		if err := w.readThaw(ctx); err != nil {
			return Snapshot{}, err
		}
	}
	prefix := batch.WorkPrefix(w.execution) + "outcomes/"
	p := s3.NewListObjectsV2Paginator(w.client, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return Snapshot{}, fmt.Errorf("list s3://%s/%s: %w", w.bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if _, ok := w.seen[key]; ok {
				continue
			}
			out, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(key)})
			if err != nil {
				continue // listed but not readable yet: a later Poll reads it
			}
			var oc report.Outcome
			err = json.NewDecoder(out.Body).Decode(&oc)
			out.Body.Close()
			if err == nil {
				w.seen[key] = oc
				if t := aws.ToTime(o.LastModified); t.After(w.last) {
					w.last = t
				}
			}
		}
	}
	s := Snapshot{ManifestWritten: w.manifest, Batches: w.total, LastOutcome: w.last, Thawing: w.thawing, ThawSince: w.since}
	for _, oc := range w.seen {
		s.Done++
		s.Objects += int64(oc.Copied + oc.Deleted + oc.Failed + oc.Skipped)
		s.Bytes += oc.BytesCopied
		s.Failed += int64(oc.Failed)
	}
	return s, nil
}

// readThaw counts the items of the run's thaw files and notes when the first was written. It
// runs once the manifest is there, and reads each file once: a file not readable yet leaves
// the count for a later Poll.
func (w *Watcher) readThaw(ctx context.Context) error {
	prefix := batch.ThawPrefix(w.execution)
	var n int64
	var since time.Time
	p := s3.NewListObjectsV2Paginator(w.client, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", w.bucket, prefix, err)
		}
		for _, o := range page.Contents {
			out, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(w.bucket), Key: o.Key})
			if err != nil {
				return nil // not readable yet: a later Poll counts again
			}
			_, err = batch.Read(out.Body, func(batch.Item) error { n++; return nil })
			out.Body.Close()
			if err != nil {
				return fmt.Errorf("read s3://%s/%s: %w", w.bucket, aws.ToString(o.Key), err)
			}
			if t := aws.ToTime(o.LastModified); since.IsZero() || t.Before(since) {
				since = t
			}
		}
	}
	w.thawRead, w.thawing, w.since = true, n, since
	return nil
}
