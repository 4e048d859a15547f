//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/report"
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
func TestVerifyDrill(t *testing.T) {
	const n = 2000
	e := newEnv(t, envOptions{vars: map[string]string{"VERIFY_MAX_KEYS": "700"}})
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
	var got []string
	for _, m := range v.Mismatches {
		got = append(got, m.Key+" "+m.Kind)
	}
	slices.Sort(got)
	want := []string{gone + " " + report.MismatchMissingVersion, corrupt + " " + report.MismatchContent} // sorted
	if res.Execution.Error != "VerifyMismatch" || !slices.Equal(got, want) || v.MissingVersions != 1 {
		t.Fatalf("drill after a deleted version: %s, mismatches %v, want %v", res.Execution.Error, got, want)
	}
}
