//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/verify"
	"github.com/bucketvault/bucketvault/statemachine/local"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// verifyRun runs one verify execution (a restore drill) and returns it with its report.
func (e *env) verifyRun(input string) *localrun.Result {
	e.t.Helper()
	name := localrun.NewVerifyName(time.Now())
	res, err := e.runner.Verify(e.ctx, name, []byte(input))
	if err != nil {
		e.t.Fatalf("verify %s: %v", name, err)
	}
	if res.Report == nil || res.Report.Verify == nil {
		e.t.Fatalf("verify %s: %s %s: %s, no report", name, res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	return res
}

// A drill over a 2,000-object backup passes, checking every object the backup copied, across
// several verifier invocations; after one backup version is overwritten out of band (same size,
// other bytes) a drill of the whole backup fails VerifyMismatch naming exactly that object with
// both SHA-256 hashes; after the version the backup wrote of another key is deleted, that key is
// named as a missing version too.
//
// Every drill also restores a sample (20 by default) through the restore state machine into the
// drill bucket's scratch prefix: the first drill's restore sample is identical to the source,
// timed, and the drill bucket is empty afterwards. A drill whose restored copies are tampered
// with between the restore and the comparison (a tag added to one, the metadata of another
// replaced, the bytes of a third) ends FAILED naming exactly those three objects, each with
// both values.
func TestVerifyDrill(t *testing.T) {
	const n = 2000
	e := newEnv(t, envOptions{vars: map[string]string{"VERIFY_MAX_KEYS": "700"}})
	drillBucket := "drl-" + strings.ToLower(randomHex(4))
	if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(drillBucket)}); err != nil {
		t.Fatal(err)
	}
	e.runner.Env["DRILL_BUCKET"], e.runner.Env["RESTORE_TARGETS"] = drillBucket, drillBucket
	key := func(i int) string { return fmt.Sprintf("data/%04d.bin", i) }
	body := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("object %04d;", i)), 40) }
	e.putMany(e.source, n, key, body)
	backup := e.mustBackup(`{}`)

	start := time.Now()
	res := e.verifyRun(`{"seed": 7}`)
	took := time.Since(start)
	v := res.Report.Verify
	if !res.Succeeded() || res.Report.Status != report.Succeeded {
		t.Fatalf("drill: %s %s: %s\n%s", res.Execution.Status, res.Execution.Error, res.Execution.Cause, res.ReportJSON)
	}
	if v.AgainstBackup != backup.Execution.Name || v.BackupObjects != n || v.LastCopied != n || v.Checked != n ||
		v.Verified != n || v.VersionsByETag != n || v.MissingVersions != 0 || v.ByChecksum+v.ByHash != n || v.Invocations < 3 {
		t.Fatalf("drill counts: %+v", *v)
	}
	t.Logf("drill over %d objects: %s, %d invocations, %d by checksum %v, %d by SHA-256 (%d bytes read)", n, took.Round(time.Millisecond), v.Invocations, v.ByChecksum, v.ChecksumAlgorithms, v.ByHash, v.BytesHashed)
	rs := v.Restore
	if rs == nil || rs.Requested != verify.DefaultRestoreSample || rs.Sampled != verify.DefaultRestoreSample || rs.Restored != rs.Sampled ||
		rs.Compared != rs.Restored || rs.Identical != rs.Restored || rs.Mismatches != 0 || rs.Status != report.Succeeded ||
		rs.Bytes != rs.Restored*int64(len(body(0))) || rs.Seconds <= 0 || rs.SecondsPerObject <= 0 || rs.SecondsPerGB <= 0 ||
		rs.ScratchDeleted != rs.Restored || rs.ScratchLeft != 0 || rs.Target != "s3://"+drillBucket+"/"+verify.ScratchPrefixOf(res.Execution.Name) {
		t.Fatalf("restore sample: %+v", rs)
	}
	if left := e.countAll(drillBucket); left != 0 {
		t.Fatalf("the drill bucket holds %d versions after the drill", left)
	}
	restoreReport := e.getJSON(e.run, batch.ReportKey(rs.Execution))
	if restoreReport.Status != report.Succeeded || restoreReport.TargetBucket != drillBucket || restoreReport.Copied != rs.Restored {
		t.Fatalf("the restore %s: %+v", rs.Execution, restoreReport)
	}
	t.Logf("restore sample: %d objects restored in %.3f s (%.3f s per object, %.1f s per GB) by %s", rs.Restored, rs.Seconds, rs.SecondsPerObject, rs.SecondsPerGB, rs.Execution)

	// Between the restore and the comparison, three restored copies are tampered with.
	var tampered atomic.Bool
	var want []string
	e.runner.Wrap = func(name string, h local.Function) local.Function {
		if name != localrun.VerifierName {
			return h
		}
		return funcHandler(func(ctx context.Context, payload []byte) ([]byte, error) {
			var req verify.Request
			if err := json.Unmarshal(payload, &req); err != nil {
				return nil, err
			}
			if req.Restored != nil && tampered.CompareAndSwap(false, true) {
				want = e.tamperScratch(drillBucket, verify.ScratchPrefixOf(req.Execution))
			}
			return h.Invoke(ctx, payload)
		})
	}
	res = e.verifyRun(`{"seed": 7, "sample": 50, "restoreSample": 5}`)
	e.runner.Wrap = nil
	v = res.Report.Verify
	var got []string
	for _, m := range v.Mismatches {
		got = append(got, m.Key+" "+m.Kind+" "+m.Field+" "+m.SourceValue+"|"+m.RestoredValue)
	}
	slices.Sort(got)
	if res.Succeeded() || res.Report.Error != "VerifyMismatch" || !slices.Equal(got, want) || v.Restore.Mismatches != 3 || v.Restore.Identical != 2 ||
		v.Restore.ScratchLeft != 0 || e.countAll(drillBucket) != 0 {
		t.Fatalf("drill with tampered restored copies: %s %s: %s\nmismatches %q\nwant       %q\nrestore %+v", res.Execution.Status, res.Execution.Error, res.Execution.Cause, got, want, v.Restore)
	}
	for _, m := range v.Mismatches {
		if m.Kind == report.MismatchRestoredContent && (m.SourceSHA256 == "" || m.RestoredSHA256 != sha([]byte("tampered bytes"))) {
			t.Fatalf("content mismatch without both hashes: %+v", m)
		}
	}
	if !tampered.Load() {
		t.Fatal("the verifier never got the restore's outcome")
	}

	// Out of band: the backup's current object of one key gets other bytes of the same size.
	corrupt := key(1234)
	bad := bytes.Repeat([]byte("X"), len(body(1234)))
	e.putBytes(e.backup, corrupt, bad)
	res = e.verifyRun(`{"sample": "all"}`)
	v = res.Report.Verify
	if res.Succeeded() || res.Execution.Error != "VerifyMismatch" || res.Report.Error != "VerifyMismatch" {
		t.Fatalf("drill after corruption: %s %s", res.Execution.Status, res.Execution.Error)
	}
	if len(v.Mismatches) != 1 {
		t.Fatalf("mismatches: %+v", v.Mismatches)
	}
	m := v.Mismatches[0]
	if m.Key != corrupt || m.Kind != report.MismatchContent || m.SourceSHA256 != sha(body(1234)) || m.BackupSHA256 != sha(bad) {
		t.Fatalf("mismatch: %+v, want %s with source %s, backup %s", m, corrupt, sha(body(1234)), sha(bad))
	}
	if len(res.Report.Failures) != 1 || res.Report.Failures[0].Key != corrupt {
		t.Fatalf("failures: %+v", res.Report.Failures)
	}

	// Out of band: the version the backup wrote of another key is deleted.
	gone := key(42)
	vs, err := e.s3.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.backup), Prefix: aws.String(gone)})
	if err != nil || len(vs.Versions) != 1 {
		t.Fatalf("versions of %s: %v, %v", gone, vs, err)
	}
	if _, err := e.s3.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.backup), Key: aws.String(gone), VersionId: vs.Versions[0].VersionId}); err != nil {
		t.Fatal(err)
	}
	res = e.verifyRun(`{"sample": 10}`)
	v = res.Report.Verify
	got = nil
	for _, m := range v.Mismatches {
		got = append(got, m.Key+" "+m.Kind)
	}
	slices.Sort(got)
	want = []string{gone + " " + report.MismatchMissingVersion, corrupt + " " + report.MismatchContent} // sorted
	if res.Execution.Error != "VerifyMismatch" || !slices.Equal(got, want) || v.MissingVersions != 1 {
		t.Fatalf("drill after a deleted version: %s, mismatches %v, want %v", res.Execution.Error, got, want)
	}
}

// tamperScratch changes three restored copies under prefix, in key order: a tag added to the
// first, the user metadata of the second replaced, the bytes of the third overwritten (its
// metadata kept). It returns the mismatches a drill must report, as TestVerifyDrill renders them.
func (e *env) tamperScratch(bucket, prefix string) []string {
	e.t.Helper()
	out, err := e.s3.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil || len(out.Contents) < 3 {
		e.t.Fatalf("scratch copies under %s: %v, %v", prefix, out, err)
	}
	k := func(i int) string { return aws.ToString(out.Contents[i].Key) }
	if _, err := e.s3.PutObjectTagging(e.ctx, &s3.PutObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(k(0)),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("tampered"), Value: aws.String("yes")}}}}); err != nil {
		e.t.Fatal(err)
	}
	h1, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(k(1))})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s3.CopyObject(e.ctx, &s3.CopyObjectInput{Bucket: aws.String(bucket), Key: aws.String(k(1)), CopySource: aws.String(bucket + "/" + k(1)),
		MetadataDirective: types.MetadataDirectiveReplace, ContentType: h1.ContentType, Metadata: map[string]string{"owner": "mallory"}}); err != nil {
		e.t.Fatal(err)
	}
	head, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(k(2))})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k(2)), Body: strings.NewReader("tampered bytes"),
		ContentType: head.ContentType, Metadata: head.Metadata}); err != nil {
		e.t.Fatal(err)
	}
	key := func(i int) string { return strings.TrimPrefix(k(i), prefix) }
	want := []string{
		key(0) + " " + report.MismatchRestoredTags + " tag tampered |yes",
		key(1) + " " + report.MismatchRestoredMetadata + " x-amz-meta-owner |mallory",
		key(2) + " " + report.MismatchRestoredContent + "  |",
	}
	slices.Sort(want)
	return want
}

// countAll counts every version and delete marker in bucket.
func (e *env) countAll(bucket string) int {
	e.t.Helper()
	n := 0
	p := s3.NewListObjectVersionsPaginator(e.s3, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		out, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(out.Versions) + len(out.DeleteMarkers)
	}
	return n
}

// getJSON reads a report.
func (e *env) getJSON(bucket, key string) report.Report {
	e.t.Helper()
	out, err := e.s3.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		e.t.Fatalf("read s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	var r report.Report
	if err := json.NewDecoder(out.Body).Decode(&r); err != nil {
		e.t.Fatal(err)
	}
	return r
}
