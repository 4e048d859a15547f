// Package progress reads how far a running backup or restore has got from its files in the run
// bucket: the batch manifest says how many batches there are, each outcome file what one batch
// did. It only reads S3, so it works the same locally and on AWS.
package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

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
			}
		}
	}
	s := Snapshot{ManifestWritten: w.manifest, Batches: w.total}
	for _, oc := range w.seen {
		s.Done++
		s.Objects += int64(oc.Copied + oc.Deleted + oc.Failed + oc.Skipped)
		s.Bytes += oc.BytesCopied
		s.Failed += int64(oc.Failed)
	}
	return s, nil
}
