//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/statemachine/local"
)

func ioNopCloser(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }

// A bucket where most objects were deleted trips the deletion guard: the run copies its changed
// and new objects all the same, adds no delete marker, ends FAILED (DeletionGuardTripped) naming
// the counts, and accounts for every withheld deletion; an explicit override then accepts them.
func TestDeletionGuard(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := range 20 {
		e.put(e.source, object{key: fmt.Sprintf("doc-%02d.txt", i), body: "v1"})
	}
	e.mustBackup(`{}`)
	for i := range 14 {
		e.del(e.source, fmt.Sprintf("doc-%02d.txt", i))
	}
	e.put(e.source, object{key: "doc-19.txt", body: "v2, changed"})
	e.put(e.source, object{key: "new.txt", body: "new"})
	res := e.backupRun(`{}`)
	if res.Execution.Status != "FAILED" || res.Execution.Error != "DeletionGuardTripped" ||
		!strings.Contains(res.Execution.Cause, "mark 14 of the backup's 20") || !strings.Contains(res.Execution.Cause, `{"maxDeletePercent": 100}`) {
		t.Fatalf("execution %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	r := res.Report
	if r == nil || r.Status != "FAILED" || r.Copied != 2 || r.Deleted != 0 || r.Withheld != 14 || r.ToDelete != 14 || r.Failed != 0 ||
		len(r.Guards) != 2 || !r.Guards[0].Tripped || r.Guards[0].Name != "deletion" || r.Guards[1].Tripped {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	// The change and the new object are in the backup; nothing was marked deleted.
	if got := string(e.get(e.backup, "doc-19.txt")); got != "v2, changed" {
		t.Errorf("doc-19.txt in the backup holds %q", got)
	}
	if got := string(e.get(e.backup, "new.txt")); got != "new" {
		t.Errorf("new.txt in the backup holds %q", got)
	}
	for k, v := range e.versions(e.backup) {
		if v.markers != 0 {
			t.Errorf("guard tripped but %s got a delete marker", k)
		}
		if want := map[string]int{"doc-19.txt": 2}[k]; want != 0 && v.data != want {
			t.Errorf("%s has %d versions, want %d", k, v.data, want)
		}
	}
	ok := e.mustBackup(`{"maxDeletePercent": 100}`)
	if ok.Report.Deleted != 14 || ok.Report.Copied != 0 || ok.Report.Withheld != 0 {
		t.Fatalf("override: %s", ok.ReportJSON)
	}
	for i := range 14 {
		if v := e.versions(e.backup)[fmt.Sprintf("doc-%02d.txt", i)]; v == nil || !v.latestMarker || v.data != 1 {
			t.Errorf("doc-%02d.txt after accepted deletion: %+v", i, v)
		}
	}
}

// A mass rewrite in place, as ransomware does, trips the change guard after the copies: every
// rewritten object has its new version in the backup and keeps its old one, and the run ends
// FAILED (MassChangeDetected). The next run finds nothing changed and succeeds.
func TestMassChangeGuard(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := range 20 {
		e.put(e.source, object{key: fmt.Sprintf("file-%02d.txt", i), body: "plain text"})
	}
	e.mustBackup(`{}`)
	for i := range 15 {
		e.put(e.source, object{key: fmt.Sprintf("file-%02d.txt", i), body: "ENCRYPTED!" + fmt.Sprint(i)})
	}
	res := e.backupRun(`{}`)
	if res.Execution.Status != "FAILED" || res.Execution.Error != "MassChangeDetected" || !strings.Contains(res.Execution.Cause, "15 of the backup's 20") {
		t.Fatalf("execution %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	if r := res.Report; r == nil || r.Copied != 15 || r.Changed != 15 || r.Failed != 0 || !r.Guards[1].Tripped || r.Guards[1].Name != "change" {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	versions := e.versions(e.backup)
	for i := range 20 {
		key := fmt.Sprintf("file-%02d.txt", i)
		want, body := 1, "plain text"
		if i < 15 {
			want, body = 2, "ENCRYPTED!"+fmt.Sprint(i)
		}
		if v := versions[key]; v == nil || v.data != want || v.markers != 0 {
			t.Errorf("%s: %+v, want %d versions", key, v, want)
		}
		if got := string(e.get(e.backup, key)); got != body {
			t.Errorf("%s in the backup holds %q, want %q", key, got, body)
		}
	}
	if idle := e.mustBackup(`{}`); idle.Report.Copied != 0 || idle.Report.Unchanged != 20 {
		t.Fatalf("run after the mass change: %s", idle.ReportJSON)
	}
}

// Bad input fails with a clear, named error in the execution history and writes nothing to the backup.
func TestBadInputChangesNothing(t *testing.T) {
	cases := []struct {
		name, input string
		vars        map[string]string
		unversioned bool
		wantError   string
		wantCause   string
	}{
		{name: "unknown field", input: `{"prefx": "data/"}`, wantError: "InvalidInput", wantCause: `unknown field "prefx"`},
		{name: "wrong type", input: `{"dryRun": "yes"}`, wantError: "InvalidInput", wantCause: "dryRun"},
		{name: "not an object", input: `["a"]`, wantError: "InvalidInput", wantCause: "must be a JSON object"},
		{name: "guard out of range", input: `{"maxDeletePercent": 250}`, wantError: "InvalidInput", wantCause: "maxDeletePercent"},
		{name: "change guard out of range", input: `{"maxChangePercent": -1}`, wantError: "InvalidInput", wantCause: "maxChangePercent"},
		{name: "unknown archived mode", input: `{}`, vars: map[string]string{"ARCHIVED_SOURCES": "thaw"}, wantError: "ConfigError", wantCause: "ARCHIVED_SOURCES"},
		{name: "missing source bucket", input: `{}`, vars: map[string]string{"SOURCE_BUCKET": "no-such-bucket-bv"}, wantError: "BucketNotFound", wantCause: "no-such-bucket-bv"},
		{name: "missing env var", input: `{}`, vars: map[string]string{"BACKUP_BUCKET": ""}, wantError: "ConfigError", wantCause: "BACKUP_BUCKET"},
		{name: "backup not versioned", input: `{}`, unversioned: true, wantError: "BackupNotVersioned", wantCause: "versioning"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{vars: tc.vars})
			if tc.unversioned {
				other := e.backup + "-plain"
				if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(other)}); err != nil {
					t.Fatal(err)
				}
				e.runner.Env["BACKUP_BUCKET"] = other
				e.backup = other
			}
			e.put(e.source, object{key: "a.txt", body: "a"})
			res := e.backupRun(tc.input)
			if res.Execution.Status != "FAILED" || res.Execution.Error != tc.wantError || !strings.Contains(res.Execution.Cause, tc.wantCause) {
				t.Fatalf("execution %s %q: %s; want %s containing %q", res.Execution.Status, res.Execution.Error, res.Execution.Cause, tc.wantError, tc.wantCause)
			}
			history, _ := res.Execution.HistoryJSON()
			if !strings.Contains(string(history), `"error":"`+tc.wantError+`"`) {
				t.Errorf("history does not record %s: %.400s", tc.wantError, history)
			}
			if v := e.versions(e.backup); len(v) != 0 {
				t.Errorf("backup was written to: %v", v)
			}
		})
	}
	t.Run("input that is not JSON is refused at start", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		if _, err := e.runner.Backup(e.ctx, "bad-json", []byte(`{not json`)); err == nil {
			t.Fatal("execution started with input that is not JSON")
		}
	})
}

func TestDryRunCopiesNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := range 5 {
		e.put(e.source, object{key: fmt.Sprintf("data/%d.txt", i), body: "x"})
	}
	e.put(e.source, object{key: "other/skip.txt", body: "x"})
	res := e.mustBackup(`{"dryRun": true, "prefix": "data/"}`)
	if r := res.Report; !r.DryRun || r.New != 5 || r.Listed != 5 || r.Copied != 0 || r.Prefix != "data/" {
		t.Fatalf("dry run: %s", res.ReportJSON)
	}
	if v := e.versions(e.backup); len(v) != 0 {
		t.Fatalf("dry run wrote to the backup: %v", v)
	}
	real := e.mustBackup(`{"prefix": "data/"}`)
	if real.Report.Copied != 5 || len(e.keys(e.backup)) != 5 {
		t.Fatalf("prefix run: %s", real.ReportJSON)
	}
}

// A Map retry of a batch that had already been copied (the copier crashed after its work)
// completes without a second version of any object.
func TestBatchRetryAddsNoVersion(t *testing.T) {
	e := newEnv(t, envOptions{vars: map[string]string{"BATCH_SIZE": "10"}})
	for i := range 25 {
		e.put(e.source, object{key: fmt.Sprintf("f-%02d", i), body: fmt.Sprint(i)})
	}
	crashed := map[string]bool{}
	e.runner.Wrap = func(name string, h local.Function) local.Function {
		if !strings.Contains(name, "copier") {
			return h
		}
		return crashAfterWork{next: h, crashed: crashed}
	}
	res := e.mustBackup(`{}`)
	if r := res.Report; r.Copied != 25 || r.AlreadyPresent != 25 || r.Failed != 0 {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	for k, v := range e.versions(e.backup) {
		if v.data != 1 {
			t.Errorf("%s has %d versions after a retried batch", k, v.data)
		}
	}
}

// crashAfterWork runs each batch fully once, then fails as if the function died before answering.
type crashAfterWork struct {
	next    local.Function
	crashed map[string]bool
}

var crashMu = make(chan struct{}, 1)

func (c crashAfterWork) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := c.next.Invoke(ctx, payload)
	var req struct {
		BatchKey string `json:"batchKey"`
	}
	_ = json.Unmarshal(payload, &req)
	crashMu <- struct{}{}
	first := !c.crashed[req.BatchKey]
	c.crashed[req.BatchKey] = true
	<-crashMu
	if err == nil && first {
		return nil, &fault.TransientError{Msg: "simulated crash after the batch was copied"}
	}
	return out, err
}
