package statemachine_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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
	logger := slog.New(slog.DiscardHandler)
	arn := func(fn string) string { return "arn:aws:lambda:us-east-1:123456789012:function:" + fn }
	def, err := statemachine.Render(statemachine.Backup, map[string]string{
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
