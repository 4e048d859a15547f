package copier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/s3copy"
)

// A batch whose invocation is interrupted in the middle of a copy in parts — cancelled (Lambda
// ending it), or at its deadline (no new part after lambdafn.StopAt) — fails with a
// BatchInProgress, so the Map retries it; the retry continues the recorded upload without copying
// its finished part again, and the backup gets one version, byte-identical, with the source's
// ETag. The retry's verify mode neither takes the object as done nor starts a second upload.
func TestInterruptedMultipartResumesOnRetry(t *testing.T) {
	for _, deadline := range []bool{false, true} {
		name := map[bool]string{false: "invocation cancelled", true: "deadline reached"}[deadline]
		t.Run(name, func(t *testing.T) {
			f, h := setup()
			h.Config.PartConcurrency = 1 // one part at a time, so that the parts can be counted
			parts := [][]byte{[]byte("part one.."), []byte("part two.."), []byte("three")}
			etag := f.PutMultipart("src", "big", parts...)
			key := writeBatch(t, f, []string{"big"}, nil)

			// The first invocation: interrupted once its first part is copied.
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
			defer cancel()
			var late atomic.Bool
			f.Lose = func(op, _, _ string) error {
				if op == "UploadPartCopy" {
					late.Store(true)
					if !deadline {
						cancel()
					}
				}
				return nil
			}
			h.Now = func() time.Time {
				if late.Load() {
					d, _ := ctx.Deadline()
					return d
				}
				return time.Now()
			}
			payload, _ := json.Marshal(Request{Execution: "exec", BatchKey: key})
			_, err := lambdafn.Handler(h.Handle, nil).Invoke(ctx, payload)
			var inProgress *fault.BatchInProgress
			if !errors.As(err, &inProgress) {
				t.Fatalf("interrupted batch: err = %T %v, want a BatchInProgress", err, err)
			}
			if n, a, open := f.Count("UploadPartCopy"), f.Count("AbortMultipartUpload"), f.OpenUploads(); n != 1 || a != 0 || len(open) != 1 {
				t.Fatalf("after the interruption: %d part copies, %d aborts, open uploads %v; want 1, 0, one", n, a, open)
			}
			store := &s3copy.S3Uploads{S3: f, Bucket: "run", Prefix: UploadsPrefix("exec", key)}
			if rec, err := store.Load(context.Background(), "bak", "big"); err != nil || rec == nil || rec.UploadID != f.OpenUploads()[0] {
				t.Fatalf("upload record %+v, %v; want the open upload", rec, err)
			}
			f.Lose, h.Now = nil, nil

			// The Map's retry.
			resp, err := invoke(t, h, Request{Execution: "exec", BatchKey: key, RetryCount: 1})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Copied != 1 || resp.Failed != 0 || outcome(t, f, resp.OutcomeKey).AlreadyPresent != 0 {
				t.Fatalf("retry response %+v; want the object copied, not found present", resp)
			}
			if n, c := f.Count("UploadPartCopy"), f.Count("CreateMultipartUpload"); n != 3 || c != 1 {
				t.Errorf("%d part copies and %d uploads in all; want 3 and 1 (the finished part not copied again)", n, c)
			}
			vs := f.Versions("bak", "big")
			if len(vs) != 1 || !bytes.Equal(vs[0].Body, bytes.Join(parts, nil)) || vs[0].ETag != etag {
				t.Fatalf("%d versions in the backup; want one, byte-identical, with ETag %s", len(vs), etag)
			}
			if open := f.OpenUploads(); len(open) != 0 {
				t.Errorf("uploads left open: %v", open)
			}
		})
	}
}

func TestUploadsPrefix(t *testing.T) {
	for _, tc := range []struct{ execution, batchKey, want string }{
		{"exec", "work/exec/batches/000007.jsonl", "work/exec/uploads/000007/"},
		{"backup-20261124T020000Z-1a2b3c4d", "work/backup-20261124T020000Z-1a2b3c4d/batches/000123.jsonl", "work/backup-20261124T020000Z-1a2b3c4d/uploads/000123/"},
	} {
		if got := UploadsPrefix(tc.execution, tc.batchKey); got != tc.want {
			t.Errorf("UploadsPrefix(%s) = %s, want %s", tc.batchKey, got, tc.want)
		}
	}
}
