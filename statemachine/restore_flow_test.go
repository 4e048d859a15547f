package statemachine_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/copier"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/planner"
	"github.com/bucketvault/bucketvault/shared/reporter"
	"github.com/bucketvault/bucketvault/shared/s3fake"
	"github.com/bucketvault/bucketvault/statemachine"
	"github.com/bucketvault/bucketvault/statemachine/local"
)

// Archived versions (MinIO cannot archive, so this runs on the recording fake): the restore
// state machine thaws them, waits in its Wait/Choice loop until they are readable, then copies.
func TestRestoreThawsArchivedVersionsThenCopies(t *testing.T) {
	f := s3fake.New()
	for _, b := range []string{"src", "bak", "run", "target"} {
		f.AddBucket(b, b == "bak")
	}
	f.Put("bak", "cold/a.txt", []byte("alpha"))
	f.Put("bak", "cold/b.txt", []byte("beta"))
	f.Archive("bak", "GLACIER")
	f.Put("bak", "warm.txt", []byte("warm"))

	logger := slog.New(slog.DiscardHandler)
	arn := func(name string) string { return "arn:aws:lambda:us-east-1:123456789012:function:" + name }
	def, err := statemachine.Render(statemachine.Restore, map[string]string{
		"PlannerFunctionArn": arn("planner"), "CopierFunctionArn": arn("copier"), "ReporterFunctionArn": arn("reporter"), "RunBucket": "run",
	})
	if err != nil {
		t.Fatal(err)
	}
	pl := &planner.Handler{S3: f, Logger: logger, Config: planner.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run",
		RestoreTargets: []string{"target"}, BatchSize: 1000, BatchBytes: 1 << 40, ThawCheckSeconds: 3600}}
	cp := &copier.Handler{S3: f, Logger: logger, Config: copier.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run",
		RestoreTargets: []string{"target"}, Concurrency: 4, MultipartThreshold: 5 << 30, PartSize: 8 << 20, PartConcurrency: 2}}
	rp := &reporter.Handler{S3: f, Logger: logger, Config: reporter.Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run"}}

	var waits []time.Duration
	exec, err := local.New(def, local.Options{
		StateMachineName: "bucketvault-restore", S3: f, Logger: logger,
		Functions: map[string]local.FunctionConfig{
			"planner":  {Handler: lambdafn.Handler(pl.Handle, nil)},
			"copier":   {Handler: lambdafn.Handler(cp.Handle, nil)},
			"reporter": {Handler: lambdafn.Handler(rp.Handle, nil)},
		},
		Sleep: func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			if len(waits) == 2 {
				f.ThawAll() // the archive tier finishes thawing during the second wait
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x, err := exec.Run(context.Background(), "restore-cold", []byte(`{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "thawCheckSeconds": 900}`))
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != "SUCCEEDED" {
		t.Fatalf("restore %s %s: %s", x.Status, x.Error, x.Cause)
	}
	var rep struct {
		Copied, Archived int64
		RestoredAt       string
	}
	if err := json.Unmarshal(x.Output, &rep); err != nil || rep.Copied != 3 || rep.Archived != 2 || rep.RestoredAt != "2030-01-01T00:00:00Z" {
		t.Fatalf("output %s (%v)", x.Output, err)
	}
	if !slices.Equal(waits, []time.Duration{900 * time.Second, 900 * time.Second}) {
		t.Errorf("waits %v, want two of 15 minutes", waits)
	}
	if n := f.Count("RestoreObject"); n != 2 {
		t.Errorf("%d RestoreObject calls, want one per archived version", n)
	}
	for key, want := range map[string]string{"cold/a.txt": "alpha", "cold/b.txt": "beta", "warm.txt": "warm"} {
		out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("target"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("%s not restored: %v", key, err)
		}
		got, _ := io.ReadAll(out.Body)
		if string(got) != want {
			t.Errorf("%s = %q", key, got)
		}
	}
	var types []string
	for _, ev := range x.Events {
		if strings.HasPrefix(ev.Type, "Wait") {
			types = append(types, ev.Type)
		}
	}
	if len(types) != 4 {
		t.Errorf("history has wait events %v, want two entered/exited pairs", types)
	}
}
