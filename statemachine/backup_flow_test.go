package statemachine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithy "github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/copier"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/lister"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/reporter"
	"github.com/bucketvault/bucketvault/shared/s3fake"
	"github.com/bucketvault/bucketvault/statemachine"
	"github.com/bucketvault/bucketvault/statemachine/local"
)

// backupOn runs backup.asl.json through the local executor with the real lister, copier and
// reporter on the recording fake (MinIO cannot archive objects), and returns the execution and
// its report.
func backupOn(t *testing.T, f *s3fake.S3, cfg lister.Config, name string) (*local.Execution, report.Report) {
	t.Helper()
	return backupOnInput(t, f, cfg, name, `{}`)
}

// backupOnInput is backupOn with an execution input.
func backupOnInput(t *testing.T, f *s3fake.S3, cfg lister.Config, name, input string) (*local.Execution, report.Report) {
	t.Helper()
	return backupWith(t, f, cfg, name, input, statemachine.Backup)
}

// backupWith is backupOnInput with a definition of its own (an edited copy of the backup's).
func backupWith(t *testing.T, f *s3fake.S3, cfg lister.Config, name, input string, definition []byte) (*local.Execution, report.Report) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	arn := func(fn string) string { return "arn:aws:lambda:us-east-1:123456789012:function:" + fn }
	def, err := statemachine.Render(definition, map[string]string{
		"ListerFunctionArn": arn("lister"), "CopierFunctionArn": arn("copier"), "ReporterFunctionArn": arn("reporter"), "RunBucket": "run",
	})
	if err != nil {
		t.Fatal(err)
	}
	ls := &lister.Handler{S3: f, Logger: logger, Config: cfg}
	cp := &copier.Handler{S3: f, Logger: logger, Config: copier.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run",
		Concurrency: 4, MultipartThreshold: 5 << 30, PartSize: 8 << 20, PartConcurrency: 2}}
	rp := &reporter.Handler{S3: f, Logger: logger, Config: reporter.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run"}}
	exec, err := local.New(def, local.Options{
		StateMachineName: "bucketvault-backup", S3: f, Logger: logger,
		Functions: map[string]local.FunctionConfig{
			"lister":   {Handler: lambdafn.Handler(ls.Handle, nil)},
			"copier":   {Handler: lambdafn.Handler(cp.Handle, nil)},
			"reporter": {Handler: lambdafn.Handler(rp.Handle, nil)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x, err := exec.Run(context.Background(), name, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if x.Status == "SUCCEEDED" {
		if err := json.Unmarshal(x.Output, &rep); err != nil {
			t.Fatal(err)
		}
	} else {
		out, err := f.GetObject(context.Background(), getInput("run", batch.ReportKey(name)))
		if err != nil {
			t.Fatalf("%s %s %s, and no report: %v", x.Status, x.Error, x.Cause, err)
		}
		defer out.Body.Close()
		if err := json.NewDecoder(out.Body).Decode(&rep); err != nil {
			t.Fatal(err)
		}
	}
	return x, rep
}

func newBackupFake() *s3fake.S3 {
	f := s3fake.New()
	for _, b := range []string{"src", "bak", "run"} {
		f.AddBucket(b, b == "bak")
	}
	return f
}

func listerConfig(archived string) lister.Config {
	return lister.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", BatchSize: 1000, BatchBytes: 1 << 40,
		Guards: guard.DefaultLimits(), ArchivedSources: archived}
}

// Archived sources: skipped by name and class, and the run succeeds (skip); or named failures
// that end the run BackupIncomplete (fail). The readable object is copied either way.
func TestBackupArchivedSources(t *testing.T) {
	for _, tt := range []struct {
		mode, wantStatus, wantError string
	}{
		{lister.ArchivedSkip, "SUCCEEDED", ""},
		{lister.ArchivedFail, "FAILED", "BackupIncomplete"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			f := newBackupFake()
			f.Put("src", "cold/a.txt", []byte("alpha"))
			f.Put("src", "cold/b.txt", []byte("beta"))
			f.Archive("src", "DEEP_ARCHIVE")
			f.Put("src", "warm.txt", []byte("warm"))
			x, rep := backupOn(t, f, listerConfig(tt.mode), "backup-archived")
			if x.Status != tt.wantStatus || x.Error != tt.wantError {
				t.Fatalf("execution %s %s: %s", x.Status, x.Error, x.Cause)
			}
			if rep.Archived != 2 || rep.Copied != 1 || rep.New != 3 {
				t.Fatalf("report: archived %d copied %d new %d", rep.Archived, rep.Copied, rep.New)
			}
			switch tt.mode {
			case lister.ArchivedSkip:
				if rep.Skipped != 2 || len(rep.Skips) != 2 || rep.Skips[0].Key != "cold/a.txt" || !strings.HasPrefix(rep.Skips[0].Reason, "archived (DEEP_ARCHIVE): ") {
					t.Errorf("skips %+v", rep.Skips)
				}
			case lister.ArchivedFail:
				if rep.Failed != 2 || len(rep.Failures) != 2 || rep.Failures[1].Key != "cold/b.txt" || !strings.Contains(rep.Failures[1].Error, "InvalidObjectState") {
					t.Errorf("failures %+v", rep.Failures)
				}
			}
			if n := len(f.Versions("bak", "cold/a.txt")); n != 0 {
				t.Errorf("an archived object reached the backup: %d versions", n)
			}
			if n := len(f.Versions("bak", "warm.txt")); n != 1 {
				t.Errorf("warm.txt has %d versions in the backup", n)
			}
		})
	}
}

// A batch file that a failed attempt of this execution left behind is neither run nor reported.
func TestBackupIgnoresStaleBatch(t *testing.T) {
	f := newBackupFake()
	f.Put("src", "a.txt", []byte("a"))
	stale, err := batch.Encode(batch.Header{Version: batch.Version, Source: "src", Destination: "bak"},
		[]batch.Item{{Op: batch.OpDelete, Key: "keep-me.txt", Change: "deleted", Size: 1}})
	if err != nil {
		t.Fatal(err)
	}
	f.Put("bak", "keep-me.txt", []byte("k"))
	f.Put("src", "keep-me.txt", []byte("k"))
	f.Put("run", batch.Key("backup-stale", 7), stale)
	x, rep := backupOn(t, f, listerConfig(lister.ArchivedSkip), "backup-stale")
	if x.Status != "SUCCEEDED" || rep.Batches != 1 || rep.Copied != 1 || rep.Deleted != 0 || rep.Failed != 0 {
		t.Fatalf("execution %s %s %s; report %+v", x.Status, x.Error, x.Cause, rep)
	}
	if v := f.Versions("bak", "keep-me.txt"); len(v) != 1 || v[0].DeleteMarker {
		t.Errorf("the stale batch ran: keep-me.txt versions %+v", v)
	}
	for _, call := range f.Calls() {
		if strings.Contains(call, "outcomes/000007") || strings.Contains(call, "batches/000007") && !strings.HasPrefix(call, "PutObject") {
			t.Errorf("the stale batch was touched: %s", call)
		}
	}
}

func getInput(bucket, key string) *s3.GetObjectInput {
	return &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}

// The guards on the real functions through the definition: the three-object bucket backs
// up all three changes; a mass deletion copies the change and the new object, marks nothing
// deleted and fails DeletionGuardTripped with every deletion accounted for as withheld.
func TestBackupGuards(t *testing.T) {
	t.Run("one changed, one deleted, one added", func(t *testing.T) {
		f := newBackupFake()
		for _, k := range []string{"one.txt", "two.txt", "three.txt"} {
			f.Put("src", k, []byte(k))
			f.Put("bak", k, []byte(k))
		}
		f.Put("src", "one.txt", []byte("one, changed"))
		f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("src"), Key: aws.String("two.txt")})
		f.Put("src", "four.txt", []byte("four"))
		x, rep := backupOn(t, f, listerConfig(lister.ArchivedSkip), "backup-three")
		if x.Status != "SUCCEEDED" || rep.Copied != 2 || rep.Deleted != 1 || rep.Withheld != 0 {
			t.Fatalf("execution %s %s %s; report %+v", x.Status, x.Error, x.Cause, rep)
		}
	})
	t.Run("mass deletion", func(t *testing.T) {
		f := newBackupFake()
		for i := range 20 {
			k := string(rune('a'+i)) + ".txt"
			f.Put("bak", k, []byte(k))
			if i >= 12 {
				f.Put("src", k, []byte(k))
			}
		}
		f.Put("src", "t.txt", []byte("t, changed"))
		f.Put("src", "z-new.txt", []byte("new"))
		x, rep := backupOn(t, f, listerConfig(lister.ArchivedSkip), "backup-mass-deletion")
		if x.Status != "FAILED" || x.Error != "DeletionGuardTripped" || !strings.Contains(x.Cause, "mark 12 of the backup's 20") {
			t.Fatalf("execution %s %s: %s", x.Status, x.Error, x.Cause)
		}
		if rep.Copied != 2 || rep.Deleted != 0 || rep.Withheld != 12 || rep.ToDelete != 12 || len(rep.Guards) != 2 || !rep.Guards[0].Tripped {
			t.Fatalf("report %+v", rep)
		}
		if v := f.Versions("bak", "t.txt"); len(v) != 2 {
			t.Errorf("t.txt has %d versions, want the change copied", len(v))
		}
		for _, call := range f.Calls() {
			if strings.HasPrefix(call, "DeleteObject bak/") {
				t.Errorf("withheld deletion ran: %s", call)
			}
		}
	})
}

// Under SSE-KMS every copy gets an ETag that is not the source's, so without the ETag index every
// run would copy everything again. Through the definition with the real functions: the first run
// copies all, an idle run copies nothing, a changed object is copied once, and runs of a prefix,
// runs that take many lister invocations and dry runs keep the rest of the index.
func TestBackupKMSIsIncremental(t *testing.T) {
	f := newBackupFake()
	f.SetEncryption("bak", types.ServerSideEncryptionAwsKms)
	keys := []string{"a/1.txt", "a/2.txt", "b/1.txt", "b/2.txt", "c.txt"}
	for _, k := range keys {
		f.Put("src", k, []byte("content of "+k))
	}
	f.PutMultipart("src", "d-multipart.bin", []byte("part one"), []byte("part two"))
	cfg := listerConfig(lister.ArchivedSkip)
	run := func(name, input string, maxKeys int64) report.Report {
		t.Helper()
		c := cfg
		c.MaxKeysPerInvocation = maxKeys
		x, rep := backupOnInput(t, f, c, name, input)
		if x.Status != "SUCCEEDED" {
			t.Fatalf("%s: %s %s %s", name, x.Status, x.Error, x.Cause)
		}
		return rep
	}
	type counts struct{ copied, changed, unchanged int64 }
	check := func(rep report.Report, want counts) {
		t.Helper()
		if got := (counts{rep.Copied, rep.Changed, rep.Unchanged}); got != want {
			t.Fatalf("%s: copied/changed/unchanged %+v, want %+v", rep.Execution, got, want)
		}
	}
	check(run("first", `{}`, 0), counts{6, 0, 0})
	check(run("idle", `{}`, 0), counts{0, 0, 6})
	f.Put("src", "b/1.txt", []byte("content of b/1.txt, changed"))
	check(run("one-changed", `{}`, 0), counts{1, 1, 5})
	check(run("idle-again", `{}`, 2), counts{0, 0, 6})
	// A run of one prefix keeps the entries of the others; a dry run commits nothing.
	f.Put("src", "a/2.txt", []byte("content of a/2.txt, changed"))
	check(run("prefix-a", `{"prefix": "a/"}`, 1), counts{1, 1, 1})
	check(run("dry", `{"dryRun": true}`, 0), counts{0, 0, 6})
	f.Put("src", "c.txt", []byte("content of c.txt, changed"))
	check(run("after-prefix", `{}`, 3), counts{1, 1, 5})
	check(run("idle-last", `{}`, 0), counts{0, 0, 6})
	for _, k := range append(keys, "d-multipart.bin") {
		want := 1
		switch k {
		case "a/2.txt", "b/1.txt", "c.txt":
			want = 2
		}
		if n := len(f.Versions("bak", k)); n != want {
			t.Errorf("%s: %d backup versions, want %d", k, n, want)
		}
	}
}

// The execution output stays far below Step Functions' 256 KiB whatever the report holds: 100
// failures and 100 skips with 1 KiB keys (an output over 256 KiB, States.DataLimitExceeded,
// before the reporter cut its lists by bytes) end the run BackupIncomplete, with every one of
// them in report.json and the output carrying the first ones and counting the rest.
func TestBackupOutputBoundedWithLongKeys(t *testing.T) {
	f := newBackupFake()
	long := func(dir string, i int) string { return fmt.Sprintf("%s/%04d-", dir, i) + strings.Repeat("k", 1000) }
	for i := range 100 {
		f.Put("src", long("cold", i), []byte("archived"))
	}
	f.Archive("src", "GLACIER")
	for i := range 100 {
		f.Put("src", long("deny", i), []byte("unreadable"))
	}
	f.Fail = func(op, bucket, key string) error {
		if op == "CopyObject" && strings.HasPrefix(key, "deny/") {
			return &smithy.GenericAPIError{Code: "AccessDenied", Message: "User: arn:aws:sts::123456789012:assumed-role/bucketvault-copier/bucketvault-copier" +
				" is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:eu-central-1:123456789012:key/1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d" +
				" because no identity-based policy allows the kms:Decrypt action"}
		}
		return nil
	}
	x, rep := backupOn(t, f, listerConfig(lister.ArchivedSkip), "backup-long-keys")
	if x.Status != "FAILED" || x.Error != "BackupIncomplete" {
		t.Fatalf("execution %s %s: %.300s", x.Status, x.Error, x.Cause)
	}
	if rep.Failed != 100 || len(rep.Failures) != 100 || rep.Skipped != 100 || len(rep.Skips) != 100 {
		t.Fatalf("report.json: failed %d (%d named), skipped %d (%d named)", rep.Failed, len(rep.Failures), rep.Skipped, len(rep.Skips))
	}
	// The Report state's output is the reporter's execution output.
	var out []byte
	for _, e := range x.Events {
		if e.Type == "TaskStateExited" && e.Details["name"] == "Report" {
			s, _ := e.Details["output"].(string)
			out = []byte(s)
		}
	}
	var sum report.Report
	if err := json.Unmarshal(out, &sum); err != nil {
		t.Fatalf("Report state output: %v", err)
	}
	if len(out) > 128<<10 || int64(len(sum.Failures))+sum.FailuresOmitted != 100 || len(sum.Failures) == 0 || sum.FailuresOmitted == 0 {
		t.Fatalf("Report state output: %d bytes, %d failures + %d omitted", len(out), len(sum.Failures), sum.FailuresOmitted)
	}
}

// A Map that exceeds its tolerated failures is caught, and its output (ResultWriterDetails) is
// lost with it; the reporter finds the Map run's results under the ResultWriter's prefix, so a
// batch that failed as a whole is named with its own error, not a generic one.
func TestBackupFailedBatchBeyondToleranceKeepsItsError(t *testing.T) {
	f := newBackupFake()
	for _, k := range []string{"a.txt", "b.txt", "c.txt"} {
		f.Put("src", k, []byte(k))
	}
	// A run before this one left its Map results under the same prefix.
	f.Put("run", "map-results/0ld-run/manifest.json", []byte(`{"ResultFiles":{"FAILED":[{"Key":"map-results/0ld-run/FAILED_0.json"}],"SUCCEEDED":[],"PENDING":[]}}`))
	f.Put("run", "map-results/0ld-run/FAILED_0.json", []byte(`[{"Input":"{\"batchKey\":\"work/older/batches/000001.jsonl\"}","Error":"Old","Cause":"old"}]`))
	f.Fail = func(op, bucket, key string) error {
		if op == "PutObject" && strings.HasSuffix(key, "/outcomes/000001.json") {
			return s3fake.APIError("KMS.DisabledException")
		}
		return nil
	}
	cfg := listerConfig(lister.ArchivedSkip)
	cfg.BatchSize = 1
	x, rep := backupOn(t, f, cfg, "backup-beyond-tolerance")
	if x.Status != "FAILED" || x.Error != "BackupIncomplete" {
		t.Fatalf("execution %s %s: %s", x.Status, x.Error, x.Cause)
	}
	var mapFailed bool
	for _, e := range x.Events {
		mapFailed = mapFailed || e.Type == "MapRunFailed"
	}
	if !mapFailed || rep.FailedBatches < 1 {
		t.Fatalf("the Map run did not fail (map run failed %v, failed batches %d): %s", mapFailed, rep.FailedBatches, rep.Cause)
	}
	var named bool
	for _, fl := range rep.Failures {
		if fl.Key == "b.txt" {
			named = true
			if !strings.HasPrefix(fl.Error, "batch failed: ") || !strings.Contains(fl.Error, "KMS.DisabledException") {
				t.Errorf("b.txt failed with %q, want its batch's own error", fl.Error)
			}
		}
	}
	if !named {
		t.Fatalf("b.txt is not named: %+v", rep.Failures)
	}
}
