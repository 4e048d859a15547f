//go:build integration

package integration

import (
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// newBucket creates an extra bucket and allows restores into it.
func (e *env) newBucket(suffix string) string {
	e.t.Helper()
	name := e.source + "-" + suffix
	if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		e.t.Fatal(err)
	}
	e.allowTarget(name)
	return name
}

func (e *env) allowTarget(bucket string) {
	targets := strings.Split(e.runner.Env["RESTORE_TARGETS"], ",")
	e.runner.Env["RESTORE_TARGETS"] = strings.Trim(strings.Join(append(targets, bucket), ","), ",")
}

func (e *env) restoreRun(input string) *localrun.Result {
	e.t.Helper()
	name := localrun.NewRestoreName(time.Now())
	res, err := e.runner.Restore(e.ctx, name, []byte(input))
	if err != nil {
		e.t.Fatalf("restore %s: %v", name, err)
	}
	return res
}

func (e *env) mustRestore(input string) *localrun.Result {
	e.t.Helper()
	res := e.restoreRun(input)
	if !res.Succeeded() || res.Report == nil {
		e.t.Fatalf("restore %s: %s %s: %s\nreport: %s", res.Execution.Name, res.Execution.Status, res.Execution.Error, res.Execution.Cause, res.ReportJSON)
	}
	return res
}

// contents reads every current object of a bucket.
func (e *env) contents(bucket string) map[string]string {
	e.t.Helper()
	m := map[string]string{}
	for _, k := range e.keys(bucket) {
		m[k] = string(e.get(bucket, k))
	}
	return m
}

func sameMap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !maps.Equal(got, want) {
		gk, wk := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))
		t.Fatalf("%s:\n got keys %q\nwant keys %q\n got %q\nwant %q", what, gk, wk, got, want)
	}
}

// Back up, change/delete/add, back up again: a restore as of the moment between the runs
// reproduces the first state exactly, a restore as of now the second, and a prefix restore
// touches nothing outside the prefix.
func TestRestorePointInTime(t *testing.T) {
	e := newEnv(t, envOptions{})
	first := map[string]string{
		"a.txt": "a version 1", "b.txt": "b version 1", "c.txt": "c stays",
		"folder/x.txt": "x version 1", "folder/y.txt": "y stays", "folder/sub/": "",
	}
	for k, v := range first {
		e.put(e.source, object{key: k, body: v})
	}
	run1 := e.mustBackup(`{}`)
	time.Sleep(20 * time.Millisecond) // the next writes are strictly after run 1 finished
	e.put(e.source, object{key: "a.txt", body: "a version 2"})
	e.put(e.source, object{key: "folder/x.txt", body: "x version 2"})
	e.del(e.source, "b.txt")
	e.put(e.source, object{key: "d.txt", body: "d added later"})
	e.mustBackup(`{}`)
	second := e.contents(e.source)

	// As of the moment between the runs, named by the first backup's execution name.
	t1 := e.newBucket("t1")
	r := e.mustRestore(fmt.Sprintf(`{"at": %q, "targetBucket": %q}`, run1.Execution.Name, t1))
	sameMap(t, "restore as of the first backup", e.contents(t1), first)
	restoredAt, _ := time.Parse(time.RFC3339Nano, r.Report.RestoredAt)
	finishedAt, _ := time.Parse(time.RFC3339Nano, run1.Report.FinishedAt)
	if !restoredAt.Equal(finishedAt) || finishedAt.IsZero() || r.Report.Copied != int64(len(first)) || r.Report.TargetBucket != t1 {
		t.Fatalf("report: %s", r.ReportJSON)
	}
	checkReportContract(t, r.ReportJSON)

	// As of now (an RFC 3339 time): the second state.
	now := e.newBucket("now")
	e.mustRestore(fmt.Sprintf(`{"at": %q, "targetBucket": %q}`, time.Now().UTC().Format(time.RFC3339Nano), now))
	sameMap(t, "restore as of now", e.contents(now), second)

	// A folder as it was, into a bucket holding other data: nothing outside the prefix is touched.
	mixed := e.newBucket("mixed")
	e.put(mixed, object{key: "a.txt", body: "unrelated a"})
	e.put(mixed, object{key: "other/z.txt", body: "unrelated z"})
	r = e.mustRestore(fmt.Sprintf(`{"at": %q, "targetBucket": %q, "prefix": "folder/"}`, run1.Report.FinishedAt, mixed))
	sameMap(t, "prefix restore", e.contents(mixed), map[string]string{
		"a.txt": "unrelated a", "other/z.txt": "unrelated z",
		"folder/x.txt": "x version 1", "folder/y.txt": "y stays", "folder/sub/": "",
	})
	if r.Report.Copied != 3 {
		t.Fatalf("prefix restore report: %s", r.ReportJSON)
	}

	// Into the original bucket under a new prefix, by a list of keys.
	e.allowTarget(e.source)
	e.mustRestore(fmt.Sprintf(`{"at": %q, "keys": ["b.txt", "a.txt"], "targetPrefix": "restored/"}`, run1.Execution.Name))
	if got := string(e.get(e.source, "restored/b.txt")); got != "b version 1" {
		t.Fatalf("restored/b.txt = %q", got)
	}
	if got := string(e.get(e.source, "a.txt")); got != "a version 2" {
		t.Fatalf("a restore under a new prefix changed a.txt: %q", got)
	}
}

// A restore into a bucket that already holds the same objects copies nothing; overwrite false
// leaves a differing object untouched and reports it; the default replaces it.
func TestRestoreOnlyWhatDiffers(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := range 10 {
		e.put(e.source, object{key: fmt.Sprintf("f%d.txt", i), body: fmt.Sprint("content ", i)})
	}
	e.mustBackup(`{}`)
	e.allowTarget(e.source)
	at := time.Now().UTC().Format(time.RFC3339Nano)

	same := e.mustRestore(fmt.Sprintf(`{"at": %q}`, at))
	if r := same.Report; r.Copied != 0 || r.Unchanged != 10 || r.TargetBucket != e.source {
		t.Fatalf("restore onto identical objects: %s", same.ReportJSON)
	}

	e.put(e.source, object{key: "f3.txt", body: "edited since"})
	kept := e.mustRestore(fmt.Sprintf(`{"at": %q, "overwrite": false}`, at))
	if r := kept.Report; r.Copied != 0 || r.Kept != 1 || r.Skipped != 1 || len(r.Skips) != 1 || r.Skips[0].Key != "f3.txt" || !strings.Contains(r.Skips[0].Reason, "overwrite is false") {
		t.Fatalf("overwrite false: %s", kept.ReportJSON)
	}
	if got := string(e.get(e.source, "f3.txt")); got != "edited since" {
		t.Fatalf("overwrite false replaced f3.txt: %q", got)
	}

	replaced := e.mustRestore(fmt.Sprintf(`{"at": %q}`, at))
	if r := replaced.Report; r.Copied != 1 || r.Changed != 1 || r.Unchanged != 9 {
		t.Fatalf("default restore: %s", replaced.ReportJSON)
	}
	if got := string(e.get(e.source, "f3.txt")); got != "content 3" {
		t.Fatalf("f3.txt after restore = %q", got)
	}
}

// A restore never keeps target content it cannot prove equal. A single-part object, backed up,
// then overwritten in place with different bytes of the same size uploaded in parts: the target
// now holds a later multipart object of the same size, which only bucketvault's own copies in the
// backup bucket may be taken for the same content. Restored as of the backup, the original bytes
// are back, and the report counts the key changed and copied, not unchanged.
func TestRestoreReplacesSameSizeMultipartRewrite(t *testing.T) {
	e := newEnv(t, envOptions{})
	const size = 6 << 20 // two parts: MinIO wants every part but the last to be at least 5 MiB
	original, rewrite := make([]byte, size), make([]byte, size)
	_, _ = rand.Read(original)
	_, _ = rand.Read(rewrite)
	e.putBytes(e.source, "doc.bin", original)
	run1 := e.mustBackup(`{}`)
	time.Sleep(20 * time.Millisecond) // the rewrite is strictly after run 1 finished
	if etag := e.uploadInParts(e.source, "doc.bin", rewrite, 5<<20, nil); !strings.HasSuffix(strings.Trim(etag, `"`), "-2") {
		t.Fatalf("rewrite ETag %s is not a two-part ETag", etag)
	}
	run2 := e.mustBackup(`{}`)
	if r := run2.Report; r.Changed != 1 || r.Copied != 1 {
		t.Fatalf("backup of the rewrite: %s", run2.ReportJSON)
	}

	e.allowTarget(e.source)
	res := e.mustRestore(fmt.Sprintf(`{"at": %q}`, run1.Execution.Name))
	if got := e.get(e.source, "doc.bin"); sha(got) != sha(original) {
		t.Fatalf("doc.bin after the restore: sha256 %s, want the original's %s (the rewrite's is %s)", sha(got), sha(original), sha(rewrite))
	}
	if r := res.Report; r.Unchanged != 0 || r.Changed != 1 || r.Copied != 1 || r.Failed != 0 {
		t.Fatalf("restore report: %s", res.ReportJSON)
	}
}

func TestRestoreSingleVersionAndDryRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(e.source, object{key: "doc.txt", body: "draft"})
	e.mustBackup(`{}`)
	e.put(e.source, object{key: "doc.txt", body: "final"})
	e.mustBackup(`{}`)
	out, err := e.s3.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.backup), Prefix: aws.String("doc.txt")})
	if err != nil {
		t.Fatal(err)
	}
	var draft string
	for _, v := range out.Versions {
		if !aws.ToBool(v.IsLatest) {
			draft = aws.ToString(v.VersionId)
		}
	}
	target := e.newBucket("one")
	dry := e.mustRestore(fmt.Sprintf(`{"keys": ["doc.txt"], "versionId": %q, "targetBucket": %q, "dryRun": true}`, draft, target))
	if r := dry.Report; !r.DryRun || r.New != 1 || r.BytesToCopy != 5 || r.Copied != 0 || len(e.keys(target)) != 0 {
		t.Fatalf("dry run: %s", dry.ReportJSON)
	}
	e.mustRestore(fmt.Sprintf(`{"keys": ["doc.txt"], "versionId": %q, "targetBucket": %q}`, draft, target))
	if got := string(e.get(target, "doc.txt")); got != "draft" {
		t.Fatalf("version restore = %q", got)
	}
}

// A restore of 20,000 objects planned across several planner invocations completes.
func TestRestoreManyPlannerInvocations(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 objects")
	}
	const n = 20000
	e := newEnv(t, envOptions{vars: map[string]string{"PLANNER_MAX_KEYS": "4500"}})
	e.putMany(e.source, n, func(i int) string { return fmt.Sprintf("p%02d/obj-%06d", i%13, i) }, func(i int) []byte { return []byte(fmt.Sprint("v", i)) })
	e.mustBackup(`{}`)
	target := e.newBucket("big")
	res := e.mustRestore(fmt.Sprintf(`{"at": %q, "targetBucket": %q}`, time.Now().UTC().Format(time.RFC3339Nano), target))
	if r := res.Report; r.ListInvocations < 4 || r.Listed != n || r.Copied != n || r.Failed != 0 {
		t.Fatalf("restore: invocations %d listed %d copied %d failed %d", r.ListInvocations, r.Listed, r.Copied, r.Failed)
	}
	if got := len(e.keys(target)); got != n {
		t.Fatalf("target holds %d objects", got)
	}
	t.Logf("20,000-object restore: %d planner invocations, %d batches", res.Report.ListInvocations, res.Report.Batches)
}

// Bad input fails with a clear error and copies nothing.
func TestRestoreBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	before := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	e.put(e.source, object{key: "k.txt", body: "x"})
	e.mustBackup(`{}`)
	target := e.newBucket("bad")
	cases := []struct{ name, input, wantError, wantCause string }{
		{"before the first backup", fmt.Sprintf(`{"at": %q, "targetBucket": %q}`, before, target), "InvalidInput", "before the first backup"},
		{"unknown execution", fmt.Sprintf(`{"at": "backup-19990101T000000Z-nothere", "targetBucket": %q}`, target), "InvalidInput", "no backup execution named"},
		{"missing target bucket", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "no-such-target-bv"}`, "BucketNotFound", "no-such-target-bv"},
		{"target not allowed", fmt.Sprintf(`{"at": "2030-01-01T00:00:00Z", "targetBucket": %q}`, e.backup), "InvalidInput", "not an allowed restore target"},
		{"key list not a list", fmt.Sprintf(`{"at": "2030-01-01T00:00:00Z", "targetBucket": %q, "keys": "k.txt"}`, target), "InvalidInput", "keys"},
		{"empty key", fmt.Sprintf(`{"at": "2030-01-01T00:00:00Z", "targetBucket": %q, "keys": ["k.txt", ""]}`, target), "InvalidInput", "keys[1] is empty"},
		{"not a time", fmt.Sprintf(`{"at": "2026-13-45T99:00:00Z", "targetBucket": %q}`, target), "InvalidInput", "not an RFC 3339 time"},
		{"no moment", fmt.Sprintf(`{"targetBucket": %q}`, target), "InvalidInput", `needs "at"`},
	}
	e.runner.Env["RESTORE_TARGETS"] += ",no-such-target-bv"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := e.restoreRun(tc.input)
			if res.Execution.Status != "FAILED" || res.Execution.Error != tc.wantError || !strings.Contains(res.Execution.Cause, tc.wantCause) {
				t.Fatalf("restore %s %q: %s; want %s containing %q", res.Execution.Status, res.Execution.Error, res.Execution.Cause, tc.wantError, tc.wantCause)
			}
			if got := e.keys(target); len(got) != 0 {
				t.Fatalf("bad input copied %v", got)
			}
		})
	}
}
