//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/jsii-runtime-go"
	"github.com/aws/smithy-go"
	"github.com/minio/madmin-go/v3"

	"github.com/bucketvault/bucketvault/infra/policydoc"
	"github.com/bucketvault/bucketvault/infra/stack"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// TestLeastPrivilege runs the pipeline with each function, and the executor's ItemReader and
// ResultWriter, under a MinIO user whose policy is exactly that role's S3 statements from the
// synthesized CDK template (bucket names mapped to this test's buckets). The run must succeed;
// then each principal tries what its role must not allow and must get AccessDenied.
func TestLeastPrivilege(t *testing.T) {
	e := newEnv(t, envOptions{})
	start := time.Now()
	template := synthTemplate(t, e.source)
	t.Logf("synthesized the stack in %s", time.Since(start).Round(time.Millisecond))

	clients := roleClients(t, e, template)
	e.runner.FunctionS3 = map[string]*s3.Client{
		localrun.ListerName:        clients[localrun.ListerName],
		localrun.CopierName:        clients[localrun.CopierName],
		localrun.ReporterName:      clients[localrun.ReporterName],
		localrun.PlannerName:       clients[localrun.PlannerName],
		localrun.RestoreCopierName: clients[localrun.RestoreCopierName],
		localrun.VerifierName:      clients[localrun.VerifierName],
	}
	e.runner.StateMachineS3 = clients[localrun.StateMachineName]

	// Source data that takes every path the copier has: single-part copies with metadata and
	// tags, a copy along a multipart source's part boundaries, and (second run) a change and a
	// deletion, which HEADs the source for the missing key before marking it deleted.
	// The backup bucket is SSE-KMS, so that the copier records its copies in the ETag index and
	// the second run's lister reads them back.
	e.kmsDefault(e.backup)
	e.put(e.source, object{key: "docs/a.txt", body: "alpha", contentType: "text/plain", meta: map[string]string{"owner": "ops"}, tags: "class=doc"})
	e.put(e.source, object{key: "docs/b.txt", body: "bravo"})
	e.put(e.source, object{key: "img/c.bin", body: strings.Repeat("c", 200)})
	e.putMultipart(e.source, "big/multi.bin", 2, 5<<20)

	first := e.mustBackup("{}")
	if r := first.Report; r.Copied != 4 || r.Failed != 0 {
		t.Fatalf("first run: copied %d, failed %d; want 4, 0\n%s", r.Copied, r.Failed, first.ReportJSON)
	}
	e.sameContent([]string{"docs/a.txt", "docs/b.txt", "img/c.bin", "big/multi.bin"})

	e.put(e.source, object{key: "docs/b.txt", body: "bravo, changed"})
	e.del(e.source, "img/c.bin")
	second := e.mustBackup(`{"maxDeletePercent": 100}`)
	if r := second.Report; r.Copied != 1 || r.Deleted != 1 || r.Unchanged != 2 || r.Failed != 0 {
		t.Fatalf("second run: copied %d, deleted %d, unchanged %d, failed %d; want 1, 1, 2, 0\n%s",
			r.Copied, r.Deleted, r.Unchanged, r.Failed, second.ReportJSON)
	}
	if v := e.versions(e.backup)["img/c.bin"]; v == nil || !v.latestMarker || v.data != 1 {
		t.Fatalf("img/c.bin in the backup: %+v; want its data kept under a delete marker", v)
	}
	// A bigger run, under the same roles: listed in key-space ranges that split while listed
	// (the plan's further ranges files, read by the executor's ItemReader), each range reading
	// the ETag index from its own start.
	e.putMany(e.source, 1100, func(i int) string { return fmt.Sprintf("many/%04d", i) }, func(i int) []byte { return []byte("m") })
	e.runner.Env["LISTER_RANGES"], e.runner.Env["LISTER_SPILL_KEYS"] = "4", "150"
	ranged := e.mustBackup("{}")
	if r := ranged.Report; r.Copied != 1100 || r.Failed != 0 || r.Unchanged != 3 || r.ListRanges <= 4 {
		t.Fatalf("ranged run: copied %d, failed %d, unchanged %d in %d ranges; want 1100, 0, 3 in more than 4\n%s", r.Copied, r.Failed, r.Unchanged, r.ListRanges, ranged.ReportJSON)
	}
	delete(e.runner.Env, "LISTER_RANGES")
	delete(e.runner.Env, "LISTER_SPILL_KEYS")

	var cVersion string
	if out, err := e.s3.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.backup), Prefix: aws.String("img/c.bin")}); err != nil || len(out.Versions) != 1 {
		t.Fatalf("list versions of img/c.bin: %v %v", out, err)
	} else {
		cVersion = aws.ToString(out.Versions[0].VersionId)
	}

	copier, lister, reporter, sm := clients[localrun.CopierName], clients[localrun.ListerName], clients[localrun.ReporterName], clients[localrun.StateMachineName]
	// A restore under the restore roles (the template's default target: the source bucket):
	// docs/b.txt as it was after the first run, and img/c.bin, deleted since, under restored/.
	e.runner.Env["RESTORE_TARGETS"] = e.source
	backupSM := e.runner.StateMachineS3
	e.runner.StateMachineS3 = clients[localrun.RestoreStateMachineName]
	restored := e.mustRestore(fmt.Sprintf(`{"at": %q, "keys": ["docs/b.txt", "img/c.bin"], "targetPrefix": "restored/"}`, first.Execution.Name))
	e.runner.StateMachineS3 = backupSM
	if r := restored.Report; r.Copied != 2 || r.Failed != 0 {
		t.Fatalf("restore: %s", restored.ReportJSON)
	}
	if got := string(e.get(e.source, "restored/docs/b.txt")); got != "bravo" {
		t.Fatalf("restored/docs/b.txt = %q", got)
	}

	runKey := "runs/" + second.Execution.Name + "/"
	workKey := "work/" + second.Execution.Name + "/"
	planner, restoreCopier := clients[localrun.PlannerName], clients[localrun.RestoreCopierName]
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"copier deletes from the source", tryDelete(e, copier, e.source, "docs/a.txt", "")},
		{"copier writes to the source", tryPut(e, copier, e.source, "docs/a.txt")},
		{"copier copies into the source", func() error {
			_, err := copier.CopyObject(e.ctx, &s3.CopyObjectInput{Bucket: aws.String(e.source), Key: aws.String("docs/copy.txt"), CopySource: aws.String(e.backup + "/docs/a.txt")})
			return err
		}},
		{"copier deletes a backup version (DeleteObjectVersion)", tryDelete(e, copier, e.backup, "img/c.bin", cVersion)},
		{"copier suspends the backup's versioning", func() error {
			_, err := copier.PutBucketVersioning(e.ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(e.backup),
				VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
			return err
		}},
		{"copier overwrites a report", tryPut(e, copier, e.run, runKey+"report.json")},
		{"lister writes to the backup", tryPut(e, lister, e.backup, "docs/a.txt")},
		{"lister reads source content", tryGet(e, lister, e.source, "docs/a.txt")},
		{"lister writes outside its batches", tryPut(e, lister, e.run, runKey+"report.json")},
		{"reporter reads the source", tryGet(e, reporter, e.source, "docs/a.txt")},
		{"reporter writes a batch", tryPut(e, reporter, e.run, workKey+"batches/999999.jsonl")},
		{"reporter deletes a report", tryDelete(e, reporter, e.run, runKey+"report.json", "")},
		{"state machine reads the source", tryGet(e, sm, e.source, "docs/a.txt")},
		{"state machine writes a batch", tryPut(e, sm, e.run, workKey+"batches/999999.jsonl")},
		// The Map reads the lister's manifest, not a listing of the batches.
		{"state machine lists the batches", func() error {
			_, err := sm.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e.run), Prefix: aws.String(workKey + "batches/")})
			return err
		}},
		{"copier rewrites the manifest", tryPut(e, copier, e.run, workKey+"manifest.jsonl")},
		{"copier moves the index pointer", tryPut(e, copier, e.run, "index/current.json")},
		{"copier writes an index carry file", tryPut(e, copier, e.run, "index/"+second.Execution.Name+"/carry/000000.jsonl")},
		{"reporter reads the index", tryGet(e, reporter, e.run, "index/current.json")},
		{"reporter rewrites the manifest", tryPut(e, reporter, e.run, workKey+"manifest.jsonl")},
		{"restore copier deletes in its target", tryDelete(e, restoreCopier, e.source, "docs/a.txt", "")},
		{"restore copier writes to the backup", tryPut(e, restoreCopier, e.backup, "docs/a.txt")},
		{"restore copier deletes a backup version", tryDelete(e, restoreCopier, e.backup, "img/c.bin", cVersion)},
		{"restore copier writes to a bucket that is not a target", tryPut(e, restoreCopier, e.run, runKey+"report.json")},
		{"planner writes to the backup", tryPut(e, planner, e.backup, "docs/a.txt")},
		{"planner reads the target's content", tryGet(e, planner, e.source, "docs/a.txt")},
		{"planner overwrites a report", tryPut(e, planner, e.run, runKey+"report.json")},
		{"backup copier writes to the restore target (the source)", tryPut(e, copier, e.source, "restored/x")},
		{"state machine reads a report", tryGet(e, sm, e.run, runKey+"report.json")},
	} {
		err := tc.do()
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
			t.Errorf("%s: got %v, want AccessDenied", tc.name, err)
		}
	}
	consoleUnderItsRole(t, e, clients[stack.Console], clients[localrun.RestoreStateMachineName], first)

	// A restore drill of every object under the verifier's role (its state machine only
	// invokes it: the executor's S3 client is not used).
	drill, err := e.runner.Verify(e.ctx, localrun.NewVerifyName(time.Now()), []byte(`{"sample": "all"}`))
	if err != nil || !drill.Succeeded() || drill.Report == nil || drill.Report.Verify == nil || drill.Report.Verify.Verified == 0 {
		t.Fatalf("drill under the verifier's role: %v\n%s", err, drill.ReportJSON)
	}
	verifier := clients[localrun.VerifierName]
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"verifier writes to the backup", tryPut(e, verifier, e.backup, "docs/a.txt")},
		{"verifier writes to the source", tryPut(e, verifier, e.source, "docs/a.txt")},
		{"verifier deletes in the backup", tryDelete(e, verifier, e.backup, "docs/a.txt", "")},
		{"verifier overwrites a backup report", tryPut(e, verifier, e.run, runKey+"report.json")},
		{"verifier writes a batch", tryPut(e, verifier, e.run, workKey+"batches/999999.jsonl")},
	} {
		var apiErr smithy.APIError
		if err := tc.do(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
			t.Errorf("%s: got %v, want AccessDenied", tc.name, err)
		}
	}

	// The history is intact: the version the copier tried to delete is still there.
	if v := e.versions(e.backup)["img/c.bin"]; v == nil || v.data != 1 {
		t.Errorf("img/c.bin versions after the denied delete: %+v", v)
	}
}

// leastPrivilegeRoles are the principals that run under a role of their own, by name (the
// functions', the state machines' and the console's), with their roles' logical ids.
var leastPrivilegeRoles = map[string]string{
	localrun.ListerName:              stack.RoleID(stack.Lister),
	localrun.CopierName:              stack.RoleID(stack.Copier),
	localrun.ReporterName:            stack.RoleID(stack.Reporter),
	localrun.StateMachineName:        stack.StateMachineRoleID,
	localrun.PlannerName:             stack.RoleID(stack.Planner),
	localrun.RestoreCopierName:       stack.RoleID(stack.RestoreCopier),
	localrun.RestoreStateMachineName: stack.RestoreStateMachineRoleID,
	stack.Console:                    stack.RoleID(stack.Console),
	localrun.VerifierName:            stack.RoleID(stack.Verifier),
}

// roleClients gives each of leastPrivilegeRoles a MinIO user whose policy is exactly its role's
// S3 statements in template (minioPolicy), the template's backup, run and drill buckets mapped to
// e's, and returns their clients by principal.
func roleClients(t *testing.T, e *env, template map[string]any) map[string]*s3.Client {
	t.Helper()
	suffix := strings.TrimPrefix(e.source, "src-")
	resolver := policydoc.ResolverFor(template, "aws", localrun.Region, localrun.Account)
	resolver.SetBucket(stack.BackupBucketID, e.backup)
	resolver.SetBucket(stack.RunBucketID, e.run)
	resolver.SetBucket(stack.DrillBucketID, "drill-"+suffix)
	admin, err := madmin.New(strings.TrimPrefix(server.Endpoint, "http://"), server.AccessKey, server.SecretKey, false)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*s3.Client{}
	for principal, roleID := range leastPrivilegeRoles {
		stmts, err := policydoc.Statements(template, roleID, resolver)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := minioPolicy(stmts)
		if err != nil {
			t.Fatalf("%s: %v", roleID, err)
		}
		t.Logf("%s policy:\n%s", principal, doc)
		user, secret := principal+"-"+suffix, randomHex(20)
		if err := admin.AddCannedPolicy(e.ctx, user, doc); err != nil {
			t.Fatalf("add policy for %s: %v", principal, err)
		}
		if err := admin.AddUser(e.ctx, user, secret); err != nil {
			t.Fatalf("add user %s: %v", user, err)
		}
		if _, err := admin.AttachPolicy(e.ctx, madmin.PolicyAssociationReq{Policies: []string{user}, User: user}); err != nil {
			t.Fatalf("attach policy to %s: %v", user, err)
		}
		clients[principal] = userClient(t, e.ctx, user, secret)
	}
	return clients
}

// synthTemplate synthesizes the stack for this test's source bucket, from placeholder zips
// (the functions run in-process here; only the template's policies matter).
func synthTemplate(t *testing.T, source string) map[string]any {
	t.Helper()
	return synthProps(t, stack.Props{SourceBucketName: source})
}

// synthProps synthesizes the stack with props p (defaults applied), from placeholder zips.
func synthProps(t *testing.T, p stack.Props) map[string]any {
	t.Helper()
	dir := t.TempDir()
	if err := stack.WritePlaceholderAssets(dir); err != nil {
		t.Fatal(err)
	}
	p.AssetDir = dir
	props := stack.Defaults(p)
	props.Env = &awscdk.Environment{Account: jsii.String(localrun.Account), Region: jsii.String(localrun.Region)}
	s, err := stack.NewBackupStack(awscdk.NewApp(nil), "BucketVault", props)
	if err != nil {
		t.Fatal(err)
	}
	return *assertions.Template_FromStack(s.Stack, nil).ToJSON()
}

// minioPolicy turns a role's statements into the MinIO policy that means the same: its S3
// statements, plus two mappings. On AWS, DeleteObject with a version id needs
// s3:DeleteObjectVersion; MinIO checks that action only against Deny statements (a user
// with s3:DeleteObject may delete versions unless denied). So wherever the role may
// s3:DeleteObject but not s3:DeleteObjectVersion, the MinIO policy denies the latter
// explicitly, which is what AWS does implicitly. And on AWS, GetObjectTagging with a version
// id is authorized by s3:GetObjectVersionTagging, as GetObject with one is by
// s3:GetObjectVersion; MinIO authorizes a tagging GET by s3:GetObjectTagging alone, version id
// or not (while it does let s3:GetObjectVersion stand for s3:GetObject). So wherever the role
// may s3:GetObjectVersionTagging but not s3:GetObjectTagging, the MinIO policy also allows the
// latter: the current version's tags, which the role reads anyway by its version id.
func minioPolicy(stmts []policydoc.Statement) ([]byte, error) {
	s3only, err := policydoc.S3Only(stmts)
	if err != nil {
		return nil, err
	}
	if len(s3only) == 0 {
		return nil, fmt.Errorf("no S3 statements")
	}
	var deny, tags []string
	for _, s := range s3only {
		for _, r := range s.Resource {
			if policydoc.Allows(s3only, "s3:DeleteObject", r) && !policydoc.Allows(s3only, "s3:DeleteObjectVersion", r) {
				deny = append(deny, r)
			}
			if policydoc.Allows(s3only, "s3:GetObjectVersionTagging", r) && !policydoc.Allows(s3only, "s3:GetObjectTagging", r) && !slices.Contains(tags, r) {
				tags = append(tags, r)
			}
		}
	}
	if len(deny) > 0 {
		s3only = append(s3only, policydoc.Statement{Sid: "AWSSemanticsDeleteObjectVersion", Effect: "Deny", Action: []string{"s3:DeleteObjectVersion"}, Resource: deny})
	}
	if len(tags) > 0 {
		s3only = append(s3only, policydoc.Statement{Sid: "AWSSemanticsGetObjectVersionTagging", Effect: "Allow", Action: []string{"s3:GetObjectTagging"}, Resource: tags})
	}
	return policydoc.JSON(s3only)
}

// userClient is an S3 client with one MinIO user's keys, configured as shared/s3client
// configures the functions' (endpoint from the environment, path style, buildable HTTP client).
func userClient(t *testing.T, ctx context.Context, accessKey, secretKey string) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")),
	)
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

// putMultipart uploads key in parts of partSize bytes, so that its ETag is a multipart ETag.
func (e *env) putMultipart(bucket, key string, parts int, partSize int) {
	e.t.Helper()
	up, err := e.s3.CreateMultipartUpload(e.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		e.t.Fatal(err)
	}
	var done []types.CompletedPart
	for n := int32(1); n <= int32(parts); n++ {
		out, err := e.s3.UploadPart(e.ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(bytes.Repeat([]byte{byte('a' + n)}, partSize))})
		if err != nil {
			e.t.Fatal(err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	}
	if _, err := e.s3.CompleteMultipartUpload(e.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		e.t.Fatal(err)
	}
}
