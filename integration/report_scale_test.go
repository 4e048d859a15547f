//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/report"
)

// A source the copier may not read: every object fails, with keys near S3's 1 KiB limit. The
// execution ends BackupIncomplete (not States.DataLimitExceeded), report.json on MinIO names every
// object with its error in batch order, and the Report state's output carries the first failures
// within report.DefaultOutputListBytes and counts the rest. (The reporter's memory at 100,000
// failures is measured on a generated run: shared/reporter TestReportScaleBoundedMemory.)
func TestReportOfUnreadableSource(t *testing.T) {
	const n = 1500
	deny := func(next s3.HTTPClient) s3.HTTPClient {
		return denyCopies{next: next, match: func(path string) bool { return strings.Contains(path, "/locked/") }}
	}
	e := newEnv(t, envOptions{wrapHTTP: deny, vars: map[string]string{"BATCH_SIZE": "500"}})
	// MinIO keeps a key's segments as file names (at most 255 bytes each): four of 240.
	seg := strings.Repeat("k", 240)
	key := func(i int) string {
		return fmt.Sprintf("locked/%05d/", i) + strings.Join([]string{seg, seg, seg, seg}, "/")
	}
	e.putMany(e.source, n, key, func(int) []byte { return []byte("cannot be copied") })
	res := e.backupRun(`{}`)
	if res.Execution.Status != "FAILED" || res.Execution.Error != "BackupIncomplete" {
		t.Fatalf("execution %s %s: %.300s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	r := res.Report
	if r == nil || r.Failed != n || len(r.Failures) != n || r.FailuresOmitted != 0 || r.Copied != 0 || r.Batches != 3 {
		t.Fatalf("report.json: %.2000s", res.ReportJSON)
	}
	for i, f := range r.Failures {
		if f.Key != key(i) || !strings.Contains(f.Error, "AccessDenied") {
			t.Fatalf("report.json failure %d: %.200s: %.200s", i, f.Key, f.Error)
		}
	}
	var out string
	for _, ev := range res.Execution.Events {
		if ev.Type == "TaskStateExited" && ev.Details["name"] == "Report" {
			out, _ = ev.Details["output"].(string)
		}
	}
	var sum report.Report
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("Report state output: %v", err)
	}
	lists, _ := json.Marshal([]any{sum.Failures, sum.Skips, sum.Notes})
	if len(lists) > report.DefaultOutputListBytes+8 || int64(len(sum.Failures))+sum.FailuresOmitted != n || sum.Failures[0].Key != key(0) {
		t.Fatalf("Report state output: %d bytes, lists %d bytes, %d failures + %d omitted", len(out), len(lists), len(sum.Failures), sum.FailuresOmitted)
	}
	t.Logf("report.json %d bytes; execution output %d bytes with %d failures named and %d omitted", len(res.ReportJSON), len(out), len(sum.Failures), sum.FailuresOmitted)
}
