package statemachine_test

import (
	"strings"

	"context"
	"fmt"
	"github.com/bucketvault/bucketvault/statemachine"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/lister"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// listedInRanges reports whether an execution's split wrote a ranges file.
func listedInRanges(t *testing.T, f *s3fake.S3, name string) bool {
	t.Helper()
	_, err := f.GetObject(context.Background(), getInput("run", lister.RangesKey(name)))
	return err == nil
}

// A big bucket (here: more than one listing page) is listed in key-space ranges by the
// definition's ListRanges Map: every object is copied once, an idle run (split at the first
// run's hints) copies nothing, and the deletion guard judges every range's deletions together.
func TestBackupInRanges(t *testing.T) {
	f := newBackupFake()
	f.PageSize = 10
	const n = 300
	for i := range n {
		f.Put("src", fmt.Sprintf("%s/%04d-\U0001F600.txt", []string{"a", "logs", "日本"}[i%3], i), []byte(fmt.Sprint("content ", i)))
	}
	cfg := listerConfig(lister.ArchivedSkip)
	cfg.Ranges, cfg.BatchSize, cfg.MaxKeysPerInvocation = 8, 7, 13
	run := func(name string) (string, report.Report) {
		t.Helper()
		x, rep := backupOn(t, f, cfg, name)
		if !listedInRanges(t, f, name) {
			t.Fatalf("%s was not listed in ranges", name)
		}
		return x.Status + " " + x.Error, rep
	}
	if st, rep := run("first"); st != "SUCCEEDED " || rep.Copied != n || rep.New != n || rep.Listed != n {
		t.Fatalf("first: %s copied %d new %d listed %d", st, rep.Copied, rep.New, rep.Listed)
	}
	for i := range n {
		if v := f.Versions("bak", fmt.Sprintf("%s/%04d-\U0001F600.txt", []string{"a", "logs", "日本"}[i%3], i)); len(v) != 1 {
			t.Fatalf("object %d has %d backup versions, want 1", i, len(v))
		}
	}
	if _, err := f.GetObject(context.Background(), getInput("run", lister.HintsPointerKey)); err != nil {
		t.Fatalf("no hints for the next run: %v", err)
	}
	if st, rep := run("idle"); st != "SUCCEEDED " || rep.Copied != 0 || rep.Unchanged != n {
		t.Fatalf("idle: %s copied %d unchanged %d", st, rep.Copied, rep.Unchanged)
	}
	for i := range n / 2 {
		if _, err := f.DeleteObject(context.Background(), deleteInput("src", fmt.Sprintf("%s/%04d-\U0001F600.txt", []string{"a", "logs", "日本"}[i%3], i))); err != nil {
			t.Fatal(err)
		}
	}
	f.Put("src", "new.txt", []byte("new"))
	st, rep := run("mass-delete")
	if st != "FAILED DeletionGuardTripped" || rep.ToDelete != n/2 || rep.Withheld != n/2 || rep.Deleted != 0 || rep.Copied != 1 {
		t.Fatalf("mass-delete: %s toDelete %d withheld %d deleted %d copied %d", st, rep.ToDelete, rep.Withheld, rep.Deleted, rep.Copied)
	}
}

// Into an SSE-KMS backup every run is ranged, the ETag index read by each range from its own
// start: the first run's copies are recorded under the ranges' batch names, the next run finds
// everything unchanged, a run after two changes copies those two, and the next is idle again.
func TestBackupInRangesKMS(t *testing.T) {
	f := newBackupFake()
	f.SetEncryption("bak", types.ServerSideEncryptionAwsKms)
	f.PageSize = 2
	for i := range 12 {
		f.Put("src", fmt.Sprintf("k%02d", i), []byte(fmt.Sprint("content ", i)))
	}
	cfg := listerConfig(lister.ArchivedSkip)
	cfg.Ranges, cfg.BatchSize = 4, 2
	for _, step := range []struct {
		name           string
		change         []string
		copied, unchgd int64
	}{
		{name: "first", copied: 12},
		{name: "idle", unchgd: 12},
		{name: "two-changed", change: []string{"k03", "k10"}, copied: 2, unchgd: 10},
		{name: "idle-again", unchgd: 12},
	} {
		for _, k := range step.change {
			f.Put("src", k, []byte("changed "+k))
		}
		x, rep := backupOn(t, f, cfg, step.name)
		if x.Status != "SUCCEEDED" || rep.Copied != step.copied || rep.Unchanged != step.unchgd || !listedInRanges(t, f, step.name) || rep.ListRanges < 2 {
			t.Fatalf("%s: %s %s copied %d unchanged %d, ranged %v (report: %d ranges); want copied %d unchanged %d, ranged", step.name, x.Status, x.Cause, rep.Copied, rep.Unchanged, listedInRanges(t, f, step.name), rep.ListRanges, step.copied, step.unchgd)
		}
	}
}

func deleteInput(bucket, key string) *s3.DeleteObjectInput {
	return &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}

// Copying starts before listing ends: a range's child copies its own batches as soon as the range
// is listed, while later ranges have not started listing. With one range at a time
// (LISTER_CONCURRENCY=1), the first copy into the backup
// comes before the source's last listing request; the deletions still wait for the plan.
func TestRangesCopyWhileListing(t *testing.T) {
	f := newBackupFake()
	f.PageSize = 10
	const n = 120
	for i := range n {
		f.Put("src", fmt.Sprintf("k/%04d", i), []byte(fmt.Sprint("content ", i)))
	}
	f.Put("bak", "k/gone", []byte("deleted from the source"))
	cfg := listerConfig(lister.ArchivedSkip)
	// One range at a time: LISTER_CONCURRENCY, which the ListRanges Map reads from the split's
	// response (MaxConcurrencyPath).
	cfg.Ranges, cfg.BatchSize, cfg.MaxKeysPerInvocation, cfg.ListConcurrency = 4, 7, 13, 1
	cfg.Guards.Delete.MaxPercent = 100
	x, rep := backupWith(t, f, cfg, "early", `{}`, statemachine.Backup)
	if x.Status != "SUCCEEDED" || rep.Copied != n || rep.Deleted != 1 {
		t.Fatalf("%s %s %s: copied %d deleted %d", x.Status, x.Error, x.Cause, rep.Copied, rep.Deleted)
	}
	if !listedInRanges(t, f, "early") {
		t.Fatal("not listed in ranges")
	}
	firstCopy, lastList, deletion := -1, -1, -1
	for i, c := range f.Calls() {
		switch {
		case strings.HasPrefix(c, "CopyObject bak/") && firstCopy < 0:
			firstCopy = i
		case strings.HasPrefix(c, "ListObjectsV2 src/"):
			lastList = i
		case c == "DeleteObject bak/k/gone":
			deletion = i
		}
	}
	if firstCopy < 0 || lastList < 0 || firstCopy > lastList {
		t.Fatalf("first copy at call %d, last source listing at %d: copying waited for the listing", firstCopy, lastList)
	}
	if deletion < lastList {
		t.Fatalf("the deletion (call %d) ran before the listing ended (call %d)", deletion, lastList)
	}
	out, err := f.GetObject(context.Background(), getInput("run", batch.EarlyManifestKey("early")))
	if err != nil {
		t.Fatal(err)
	}
	early, err := batch.ReadManifest(out.Body, "early")
	if err != nil || len(early) == 0 || int64(len(early)) >= rep.Batches {
		t.Fatalf("early manifest %v (%v) of %d batches: want the copies, not the deletion", early, err, rep.Batches)
	}
}

// Ranges that turn out large are split while they are listed: each lister stops at
// LISTER_SPILL_KEYS keys, the plan cuts the rest into new ranges and InRanges runs ListRanges
// again over them (at most 3 passes). Every object is copied once, the report counts every
// range, and the next run is idle.
func TestBackupRangesSplitWhileListed(t *testing.T) {
	f := newBackupFake()
	f.PageSize = 10
	const n = 400
	for i := range n {
		f.Put("src", fmt.Sprintf("logs/2026/%04d", i), []byte(fmt.Sprint("content ", i)))
	}
	cfg := listerConfig(lister.ArchivedSkip)
	cfg.Ranges, cfg.BatchSize, cfg.SpillKeys, cfg.ListConcurrency = 4, 7, 30, 2
	x, rep := backupOn(t, f, cfg, "first")
	if x.Status != "SUCCEEDED" || rep.Copied != n || rep.Listed != n || rep.ListRanges <= 4 {
		t.Fatalf("first: %s %s copied %d listed %d in %d ranges", x.Status, x.Cause, rep.Copied, rep.Listed, rep.ListRanges)
	}
	if _, err := f.GetObject(context.Background(), getInput("run", lister.RangesPassKey("first", 1))); err != nil {
		t.Fatalf("no ranges file of a second pass: %v", err)
	}
	for i := range n {
		if v := f.Versions("bak", fmt.Sprintf("logs/2026/%04d", i)); len(v) != 1 {
			t.Fatalf("object %d has %d backup versions, want 1", i, len(v))
		}
	}
	x, rep = backupOn(t, f, cfg, "idle")
	if x.Status != "SUCCEEDED" || rep.Copied != 0 || rep.Unchanged != n {
		t.Fatalf("idle: %s copied %d unchanged %d", x.Status, rep.Copied, rep.Unchanged)
	}
}
