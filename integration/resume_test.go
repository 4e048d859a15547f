//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/statemachine/local"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// A copy in parts whose copier invocation is cancelled after its first part (as when Lambda ends
// an invocation) is continued by the Map's retry of the batch: the parts already copied are not
// copied again (every UploadPartCopy that reached MinIO is counted), and the backup gets exactly
// one version, byte-identical, with the source's multipart ETag; no upload is left open.
func TestInterruptedMultipartCopyResumes(t *testing.T) {
	var (
		partCopies atomic.Int64                       // UploadPartCopy requests MinIO answered
		interrupt  atomic.Pointer[context.CancelFunc] // cancels the first copier invocation, once
	)
	countParts := func(next s3.HTTPClient) s3.HTTPClient {
		return httpFunc(func(r *http.Request) (*http.Response, error) {
			partCopy := r.Method == http.MethodPut && r.URL.Query().Has("partNumber") && r.Header.Get("X-Amz-Copy-Source") != ""
			resp, err := next.Do(r)
			if !partCopy || err != nil {
				return resp, err
			}
			partCopies.Add(1)
			// Hand the SDK the whole answer before cancelling, so the part is known to be done:
			// the invocation is interrupted between parts, not in one.
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if rerr != nil {
				return nil, rerr
			}
			if cancel := interrupt.Swap(nil); cancel != nil {
				(*cancel)()
			}
			return resp, nil
		})
	}
	// One part at a time, so that the interruption falls after exactly one part.
	e := newEnv(t, envOptions{wrapHTTP: countParts, vars: map[string]string{"PART_CONCURRENCY": "1"}})
	var invocations atomic.Int64
	e.runner.Wrap = func(name string, h local.Function) local.Function {
		if name != localrun.CopierName {
			return h
		}
		return funcHandler(func(ctx context.Context, payload []byte) ([]byte, error) {
			if invocations.Add(1) == 1 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				interrupt.Store(&cancel)
			}
			return h.Invoke(ctx, payload)
		})
	}

	const key = "big/object.bin"
	body := make([]byte, 11<<20) // parts of 5 MiB, 5 MiB and 1 MiB
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	etag := e.uploadInParts(e.source, key, body, 5<<20, map[string]string{"origin": "resume-test"})
	if !strings.HasSuffix(strings.Trim(etag, `"`), "-3") {
		t.Fatalf("source ETag %s, want a 3-part ETag", etag)
	}

	res := e.mustBackup(`{}`)
	// Copied, not found present: the retry's verify mode did not take the open upload for a copy.
	if res.Report.Copied != 1 || res.Report.AlreadyPresent != 0 || res.Report.Failed != 0 {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	if n := invocations.Load(); n != 2 {
		t.Fatalf("%d copier invocations, want 2 (the interrupted one and the Map's retry)", n)
	}
	if n := partCopies.Load(); n != 3 {
		t.Fatalf("%d UploadPartCopy requests for 3 parts: the retry copied finished parts again", n)
	}

	// One version, the source's bytes and ETag, seen by the AWS CLI as an independent client.
	var listing struct {
		Versions []struct {
			Key, ETag string
		}
		DeleteMarkers []any
	}
	e.aws(&listing, "s3api", "list-object-versions", "--bucket", e.backup, "--prefix", key)
	if len(listing.Versions) != 1 || len(listing.DeleteMarkers) != 0 || listing.Versions[0].ETag != etag {
		t.Fatalf("backup versions %+v; want one with ETag %s", listing, etag)
	}
	if got := e.get(e.backup, key); !bytes.Equal(got, body) {
		t.Fatalf("backup holds %d bytes (sha256 %s), want the source's %d (sha256 %s)", len(got), sha(got), len(body), sha(body))
	}
	head, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.backup), Key: aws.String(key)})
	if err != nil || head.Metadata["origin"] != "resume-test" {
		t.Fatalf("backup metadata %v, %v; want the source's", head.Metadata, err)
	}
	uploads, err := e.s3.ListMultipartUploads(e.ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(e.backup)})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Fatalf("open uploads in the backup: %+v, %v", uploads.Uploads, err)
	}
	// The upload was recorded for the retry in the run bucket, under the batch's uploads prefix.
	records, err := e.s3.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e.run), Prefix: aws.String(batch.WorkPrefix(res.Execution.Name) + "uploads/")})
	if err != nil || len(records.Contents) != 1 {
		t.Fatalf("upload records %+v, %v; want one", records.Contents, err)
	}
	t.Logf("3 parts copied in 2 invocations with %d UploadPartCopy requests; record %s", partCopies.Load(), aws.ToString(records.Contents[0].Key))
}
