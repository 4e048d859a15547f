//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/infra/stack"
	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// TestLeastPrivilegeDestinations is TestLeastPrivilege for a deployment with a further
// destination of the same provider ("dr", a second versioned bucket on the same MinIO): the
// stack is synthesized with that destinations setting, and every function runs under a MinIO
// user whose policy is exactly its role's S3 statements from the template, so that the grants
// on dr are the CDK's mirrored ones (infra/stack/destinations.go), not a copy of them. Two
// backups (new, changed, deleted objects; a multipart object; metadata and tags) must write
// both the backup bucket and dr, and a point-in-time restore "from": "dr" must rebuild the first
// run's state exactly. Then each principal tries on dr what its role must not allow and must
// get AccessDenied.
func TestLeastPrivilegeDestinations(t *testing.T) {
	id := strings.ToLower(randomHex(4))
	dr, target := "dr-"+id, "to-"+id
	destinations := fmt.Sprintf(`[{"name":"dr","bucket":%q}]`, dr)
	e := newEnv(t, envOptions{vars: map[string]string{"DESTINATIONS": destinations}})
	for _, b := range []string{dr, target} {
		if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	e.versioning(dr)
	template := synthProps(t, stack.Props{SourceBucketName: e.source, Destinations: destinations, RestoreTargets: []string{e.source, target}})
	clients := roleClients(t, e, template)
	e.runner.FunctionS3 = map[string]*s3.Client{}
	for _, fn := range []string{localrun.ListerName, localrun.CopierName, localrun.ReporterName, localrun.PlannerName, localrun.RestoreCopierName, localrun.VerifierName} {
		e.runner.FunctionS3[fn] = clients[fn]
	}
	e.runner.StateMachineS3 = clients[localrun.StateMachineName]

	// Every path the copier has to dr: single-part copies with metadata and tags, a copy along a
	// multipart source's part boundaries, and (second run) a change and a deletion.
	e.put(e.source, object{key: "docs/a.txt", body: "alpha", contentType: "text/plain", meta: map[string]string{"owner": "ops"}, tags: "class=doc"})
	e.put(e.source, object{key: "docs/b.txt", body: "bravo"})
	e.put(e.source, object{key: "img/c.bin", body: strings.Repeat("c", 200)})
	e.putMultipart(e.source, "big/multi.bin", 2, 5<<20)

	run1 := e.mustBackup(`{}`)
	if d := section(t, run1.Report, "dr"); run1.Report.Copied != 4 || run1.Report.Failed != 0 || d.Copied != 4 || d.Failed != 0 || d.Problem() != "" {
		t.Fatalf("first run: backup copied %d, failed %d; dr %+v; want 4 each\n%s", run1.Report.Copied, run1.Report.Failed, d, run1.ReportJSON)
	}
	first := e.contentOf(e.s3, e.source)
	for _, b := range []string{e.backup, dr} {
		if got := e.contentOf(e.s3, b); !sameMaps(got, first) {
			t.Fatalf("after the first run %s holds %v, want the source's %v", b, got, first)
		}
	}
	tags, err := e.s3.GetObjectTagging(e.ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(dr), Key: aws.String("docs/a.txt")})
	if err != nil || len(tags.TagSet) != 1 || aws.ToString(tags.TagSet[0].Key) != "class" {
		t.Fatalf("docs/a.txt's tags in dr: %+v, %v; want class=doc", tags, err)
	}

	e.put(e.source, object{key: "docs/b.txt", body: "bravo, changed"})
	e.del(e.source, "img/c.bin")
	e.put(e.source, object{key: "docs/new.txt", body: "new"})
	run2 := e.mustBackup(`{"maxDeletePercent": 100}`)
	r, d := run2.Report, section(t, run2.Report, "dr")
	if r.Copied != 2 || r.Deleted != 1 || r.Failed != 0 || d.New != 1 || d.Changed != 1 || d.ToDelete != 1 || d.Copied != 2 || d.Deleted != 1 || d.Failed != 0 {
		t.Fatalf("second run: backup copied %d, deleted %d, failed %d; dr %+v; want 2, 1, 0 each\n%s", r.Copied, r.Deleted, r.Failed, d, run2.ReportJSON)
	}
	now := e.contentOf(e.s3, e.source)
	for _, b := range []string{e.backup, dr} {
		if got := e.contentOf(e.s3, b); !sameMaps(got, now) {
			t.Fatalf("after the second run %s holds %v, want the source's %v", b, got, now)
		}
	}
	vs := e.versions(dr)
	if c, b := vs["img/c.bin"], vs["docs/b.txt"]; c == nil || !c.latestMarker || c.data != 1 || b == nil || b.data != 2 {
		t.Fatalf("dr versions: img/c.bin %+v, docs/b.txt %+v; want c's data under a delete marker, b twice", c, b)
	}
	out, err := e.s3.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(dr), Prefix: aws.String("img/c.bin")})
	if err != nil || len(out.Versions) != 1 {
		t.Fatalf("list versions of img/c.bin in dr: %v %v", out, err)
	}
	cVersion := aws.ToString(out.Versions[0].VersionId)

	// A point-in-time restore from dr, as of the first run, into an empty restore target,
	// under the restore roles.
	e.runner.Env["RESTORE_TARGETS"] = target
	backupSM := e.runner.StateMachineS3
	e.runner.StateMachineS3 = clients[localrun.RestoreStateMachineName]
	restored := e.mustRestore(fmt.Sprintf(`{"at": %q, "targetBucket": %q, "from": "dr"}`, run1.Execution.Name, target))
	e.runner.StateMachineS3 = backupSM
	if rr := restored.Report; rr.Copied != 4 || rr.Failed != 0 {
		t.Fatalf("restore from dr copied %d, failed %d; want 4, 0\n%s", rr.Copied, rr.Failed, restored.ReportJSON)
	}
	if got := e.contentOf(e.s3, target); !sameMaps(got, first) {
		t.Fatalf("the restore from dr holds %v, want the first run's %v", got, first)
	}
	if src := restoreSources(t, e, restored.Execution.Name); len(src) != 1 || !src[dr+" (dr)"] {
		t.Fatalf("the restore's batches read %v, want dr only", src)
	}

	lister, copier, reporter, sm := clients[localrun.ListerName], clients[localrun.CopierName], clients[localrun.ReporterName], clients[localrun.StateMachineName]
	planner, restoreCopier, verifier, console := clients[localrun.PlannerName], clients[localrun.RestoreCopierName], clients[localrun.VerifierName], clients[stack.Console]
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"lister writes to dr", tryPut(e, lister, dr, "docs/a.txt")},
		{"lister reads dr's content", tryGet(e, lister, dr, "docs/a.txt")},
		{"copier deletes a dr version (DeleteObjectVersion)", tryDelete(e, copier, dr, "img/c.bin", cVersion)},
		{"copier suspends dr's versioning", func() error {
			_, err := copier.PutBucketVersioning(e.ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(dr),
				VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
			return err
		}},
		{"planner writes to dr", tryPut(e, planner, dr, "docs/a.txt")},
		{"restore copier writes to dr", tryPut(e, restoreCopier, dr, "docs/a.txt")},
		{"restore copier deletes in dr", tryDelete(e, restoreCopier, dr, "docs/a.txt", "")},
		{"reporter reads dr", tryGet(e, reporter, dr, "docs/a.txt")},
		{"reporter writes to dr", tryPut(e, reporter, dr, "docs/a.txt")},
		{"verifier reads dr", tryGet(e, verifier, dr, "docs/a.txt")},
		{"verifier writes to dr", tryPut(e, verifier, dr, "docs/a.txt")},
		{"console reads dr", tryGet(e, console, dr, "docs/a.txt")},
		{"console lists dr's versions", func() error {
			_, err := console.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(dr)})
			return err
		}},
		{"console writes to dr", tryPut(e, console, dr, "docs/a.txt")},
		{"state machine reads dr", tryGet(e, sm, dr, "docs/a.txt")},
		{"restore state machine reads dr", tryGet(e, clients[localrun.RestoreStateMachineName], dr, "docs/a.txt")},
	} {
		var apiErr smithy.APIError
		if err := tc.do(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
			t.Errorf("%s: got %v, want AccessDenied", tc.name, err)
		}
	}

	// dr's history is intact: the version the copier tried to delete is still there, and
	// nothing was written.
	if c := e.versions(dr)["img/c.bin"]; c == nil || c.data != 1 || !c.latestMarker {
		t.Errorf("img/c.bin in dr after the denied delete: %+v", c)
	}
	if got := e.contentOf(e.s3, dr); !sameMaps(got, now) {
		t.Errorf("dr changed under the denied requests: %v, want %v", got, now)
	}
}

// restoreSources returns the buckets a restore's batches read, each with the further
// destination's name their headers give ("bucket (name)").
func restoreSources(t *testing.T, e *env, execution string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(e.run), Prefix: aws.String("work/" + execution + "/batches/")})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := e.s3.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(e.run), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(obj.Body).ReadBytes('\n')
			obj.Body.Close()
			var h batch.Header
			if err := json.Unmarshal(line, &h); err != nil {
				t.Fatalf("batch %s header %q: %v", aws.ToString(o.Key), line, err)
			}
			out[fmt.Sprintf("%s (%s)", h.Source, h.SourceName)] = true
		}
	}
	return out
}

// tryPut, tryGet and tryDelete are one request of client c, to be refused.
func tryPut(e *env, c *s3.Client, bucket, key string) func() error {
	return func() error {
		_, err := c.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("x")})
		return err
	}
}

func tryGet(e *env, c *s3.Client, bucket, key string) func() error {
	return func() error {
		out, err := c.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err == nil {
			out.Body.Close()
		}
		return err
	}
}

func tryDelete(e *env, c *s3.Client, bucket, key, version string) func() error {
	return func() error {
		in := &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
		if version != "" {
			in.VersionId = aws.String(version)
		}
		_, err := c.DeleteObject(e.ctx, in)
		return err
	}
}
