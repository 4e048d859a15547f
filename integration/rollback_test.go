//go:build integration

package integration

import (
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/report"
)

// An exact restore rolls a folder back after "ransomware": it overwrote a.txt and left a ransom
// note and an encrypted copy under a new name, which the next nightly backup also backed up. The
// dry run counts and names the 2 removals; a run confirming another count is refused and changes
// nothing; the confirmed run leaves the folder holding exactly a.txt and b.txt with their
// original bytes, with a delete marker over each removed object, whose data stays readable as a
// noncurrent version. It is refused where the deployment has not enabled it, and into a target
// without versioning.
func TestExactRollback(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.versioning(e.source)
	e.allowTarget(e.source)
	original := map[string]string{"folder/a.txt": "a original", "folder/b.txt": "b original"}
	for k, v := range original {
		e.put(e.source, object{key: k, body: v})
	}
	e.put(e.source, object{key: "other/keep.txt", body: "outside the folder"})
	run1 := e.mustBackup(`{}`)
	time.Sleep(20 * time.Millisecond) // the attack is strictly after run 1 finished
	e.put(e.source, object{key: "folder/a.txt", body: "a ENCRYPTED"})
	e.put(e.source, object{key: "folder/a.txt.locked", body: "a ENCRYPTED copy"})
	e.put(e.source, object{key: "folder/note.txt", body: "pay us"})
	e.put(e.source, object{key: "other/new.txt", body: "outside, added later"})
	e.mustBackup(`{}`)
	attacked := e.contents(e.source)
	attackedVersions := e.versionCounts(e.source)
	unchanged := func(what string) {
		t.Helper()
		sameMap(t, what+": the source", e.contents(e.source), attacked)
		if got := e.versionCounts(e.source); !maps.Equal(got, attackedVersions) {
			t.Fatalf("%s: versions %v, want %v", what, got, attackedVersions)
		}
	}
	input := func(extra string) string {
		return fmt.Sprintf(`{"at": %q, "prefix": "folder/", "exact": true%s}`, run1.Execution.Name, extra)
	}

	// Not enabled by the deployment.
	res := e.restoreRun(input(`, "dryRun": true`))
	if res.Succeeded() || res.Execution.Error != "InvalidInput" || !strings.Contains(res.Execution.Cause, "ALLOW_EXACT_ROLLBACK") {
		t.Fatalf("exact without ALLOW_EXACT_ROLLBACK: %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	unchanged("not enabled")
	e.runner.Env["ALLOW_EXACT_ROLLBACK"] = "true"

	// An unversioned target.
	plain := e.newBucket("plain")
	e.put(plain, object{key: "folder/note.txt", body: "pay us"})
	res = e.restoreRun(fmt.Sprintf(`{"at": %q, "prefix": "folder/", "exact": true, "confirmRemovals": 1, "targetBucket": %q}`, run1.Execution.Name, plain))
	if res.Succeeded() || res.Execution.Error != "TargetNotVersioned" || !strings.Contains(res.Execution.Cause, plain) {
		t.Fatalf("exact into an unversioned target: %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	sameMap(t, "the unversioned target", e.contents(plain), map[string]string{"folder/note.txt": "pay us"})

	// The preview: 2 removals, named; 1 object to replace; nothing written.
	dry := e.mustRestore(input(`, "dryRun": true`))
	var named []string
	for _, n := range dry.Report.Notes {
		if strings.HasPrefix(n.Note, "would be removed") {
			named = append(named, n.Key)
		}
	}
	if r := dry.Report; r.ToDelete != 2 || r.Changed != 1 || r.Unchanged != 1 || r.Deleted != 0 || strings.Join(named, ",") != "folder/a.txt.locked,folder/note.txt" {
		t.Fatalf("dry run: toDelete %d, changed %d, unchanged %d, deleted %d, named %q\n%s", r.ToDelete, r.Changed, r.Unchanged, r.Deleted, named, dry.ReportJSON)
	}
	unchanged("dry run")

	// A confirmation of another count: refused with the count, nothing written.
	res = e.restoreRun(input(`, "confirmRemovals": 1`))
	if res.Succeeded() || res.Execution.Error != "RemovalsUnconfirmed" || !strings.Contains(res.Execution.Cause, "would remove 2 objects") {
		t.Fatalf("wrong confirmation: %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	unchanged("wrong confirmation")

	// The confirmed run.
	r := e.mustRestore(input(`, "confirmRemovals": 2`)).Report
	if r.Copied != 1 || r.Deleted != 2 || r.Failed != 0 || r.Skipped != 0 || r.Status != report.Succeeded {
		t.Fatalf("exact restore: copied %d, deleted %d, failed %d, skipped %d, %s", r.Copied, r.Deleted, r.Failed, r.Skipped, r.Status)
	}
	want := map[string]string{"other/keep.txt": "outside the folder", "other/new.txt": "outside, added later"}
	maps.Copy(want, original)
	sameMap(t, "the source after the exact restore", e.contents(e.source), want)
	vs := e.versions(e.source)
	for key, body := range map[string]string{"folder/note.txt": "pay us", "folder/a.txt.locked": "a ENCRYPTED copy"} {
		if v := vs[key]; v == nil || !v.latestMarker || v.markers != 1 || v.data != 1 {
			t.Fatalf("%s: %+v, want one version under one delete marker", key, v)
		}
		if got := e.noncurrent(e.source, key); got != body {
			t.Errorf("%s: its version reads %q, want %q", key, got, body)
		}
	}
}

// versionCounts is every key's number of versions and delete markers.
func (e *env) versionCounts(bucket string) map[string]versionInfo {
	out := map[string]versionInfo{}
	for k, v := range e.versions(bucket) {
		out[k] = *v
	}
	return out
}

// noncurrent reads a key's newest data version by its version id.
func (e *env) noncurrent(bucket, key string) string {
	e.t.Helper()
	out, err := e.s3.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, v := range out.Versions {
		if aws.ToString(v.Key) != key {
			continue
		}
		obj, err := e.s3.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: v.VersionId})
		if err != nil {
			e.t.Fatal(err)
		}
		defer obj.Body.Close()
		b, err := io.ReadAll(obj.Body)
		if err != nil {
			e.t.Fatal(err)
		}
		return string(b)
	}
	return ""
}

// The command's exact restore: --dry-run counts and names the removals and says how to confirm
// them; --confirm-removals with that count runs it; without ALLOW_EXACT_ROLLBACK it is refused.
func TestExactRollbackCLI(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.versioning(e.source)
	e.put(e.source, object{key: "folder/a.txt", body: "a original"})
	run1 := e.mustBackup(`{}`)
	time.Sleep(20 * time.Millisecond) // the note is strictly after run 1 finished
	e.put(e.source, object{key: "folder/note.txt", body: "pay us"})
	c := buildCLI(t, e)
	allow := []string{"ALLOW_EXACT_ROLLBACK=true"}
	args := []string{"restore", "--at", run1.Execution.Name, "--prefix", "folder/", "--exact"}

	out, errs, code := c.run(nil, append(args, "--dry-run")...)
	if code != 1 || !strings.Contains(out+errs, "ALLOW_EXACT_ROLLBACK") {
		t.Fatalf("not enabled: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = c.run(allow, append(args, "--dry-run")...)
	for _, want := range []string{"to remove (exact)", "folder/note.txt: would be removed", "--confirm-removals 1"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("dry run: exit %d, want %q in\n%s%s", code, want, out, errs)
		}
	}
	if out, errs, code = c.run(allow, append(args, "--confirm-removals", "1")...); code != 0 {
		t.Fatalf("confirmed: exit %d\n%s%s", code, out, errs)
	}
	sameMap(t, "after the command's exact restore", e.contents(e.source), map[string]string{"folder/a.txt": "a original"})
}
