//go:build integration

package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// The recipe's validation, checked with the AWS CLI: identical content, metadata and tags, one
// version each; a change adds one version to that key only; a deletion leaves a delete marker
// and the data; a run with no change copies and deletes nothing.
func TestRecipeValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	files := []object{
		{key: "sample-file-1.txt", body: "This is sample file 1\n", contentType: "text/plain", meta: map[string]string{"owner": "ops"}, tags: "team=data&tier=gold"},
		{key: "sample-file-2.txt", body: "This is sample file 2\n", contentType: "text/plain", cacheControl: "max-age=60", language: "en"},
		{key: "sample-file-3.txt", body: "This is sample file 3\n", contentType: "text/plain", disposition: `attachment; filename="three.txt"`},
		{key: "data/logs/app.log", body: "Application log entry\n", contentType: "text/plain", encoding: "identity", meta: map[string]string{"source": "app", "rotated": "no"}},
		{key: "data/config.json", body: `{"config": "System configuration data"}` + "\n", contentType: "application/json", tags: "kind=config"},
	}
	for _, f := range files {
		e.put(e.source, f)
	}
	keys := []string{"data/config.json", "data/logs/app.log", "sample-file-1.txt", "sample-file-2.txt", "sample-file-3.txt"}

	// An EventBridge scheduled event is valid input, as the schedule delivers it.
	first := e.mustBackup(`{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-24T02:00:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/nightly"],"detail":{}}`)
	r := first.Report
	if r.Listed != 5 || r.New != 5 || r.Copied != 5 || r.Failed != 0 || r.Deleted != 0 {
		t.Fatalf("first run: %s", first.ReportJSON)
	}
	checkReportContract(t, first.ReportJSON)

	var listing struct {
		Versions []struct {
			Key      string
			IsLatest bool
		}
		DeleteMarkers []struct {
			Key      string
			IsLatest bool
		}
	}
	e.aws(&listing, "s3api", "list-object-versions", "--bucket", e.backup)
	var got []string
	for _, v := range listing.Versions {
		got = append(got, v.Key)
	}
	slices.Sort(got)
	if !slices.Equal(got, keys) || len(listing.DeleteMarkers) != 0 {
		t.Fatalf("backup versions after first run (AWS CLI): %v, delete markers %d; want one version of each of %v", got, len(listing.DeleteMarkers), keys)
	}
	dir := t.TempDir()
	for _, f := range files {
		var src, bak map[string]any
		e.aws(&src, "s3api", "head-object", "--bucket", e.source, "--key", f.key)
		e.aws(&bak, "s3api", "head-object", "--bucket", e.backup, "--key", f.key)
		for _, field := range []string{"ContentType", "ContentLength", "ETag", "Metadata", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage"} {
			if !reflect.DeepEqual(src[field], bak[field]) {
				t.Errorf("%s: %s differs: source %v, backup %v", f.key, field, src[field], bak[field])
			}
		}
		var srcTags, bakTags map[string]any
		e.aws(&srcTags, "s3api", "get-object-tagging", "--bucket", e.source, "--key", f.key)
		e.aws(&bakTags, "s3api", "get-object-tagging", "--bucket", e.backup, "--key", f.key)
		if !reflect.DeepEqual(srcTags["TagSet"], bakTags["TagSet"]) {
			t.Errorf("%s: tags differ: source %v, backup %v", f.key, srcTags["TagSet"], bakTags["TagSet"])
		}
		out := filepath.Join(dir, "out")
		e.aws(nil, "s3api", "get-object", "--bucket", e.backup, "--key", f.key, out)
		if b, _ := os.ReadFile(out); string(b) != f.body {
			t.Errorf("%s: backup content %q, want %q", f.key, b, f.body)
		}
	}

	// The execution history is stored next to the report.
	history := e.get(e.run, batch.HistoryKey(first.Execution.Name))
	if !bytes.Contains(history, []byte(`"ExecutionSucceeded"`)) || !bytes.Contains(history, []byte(`"MapRunStarted"`)) {
		t.Errorf("history.json lacks the expected events: %.300s", history)
	}

	// Change one file: that key, and only that key, gains a version.
	e.put(e.source, object{key: "sample-file-1.txt", body: "This is an updated version of file 1\n", contentType: "text/plain", meta: map[string]string{"owner": "ops"}, tags: "team=data&tier=gold"})
	second := e.mustBackup(`{}`)
	if r := second.Report; r.Changed != 1 || r.Copied != 1 || r.Unchanged != 4 || r.New != 0 {
		t.Fatalf("second run: %s", second.ReportJSON)
	}
	for k, v := range e.versions(e.backup) {
		want := 1
		if k == "sample-file-1.txt" {
			want = 2
		}
		if v.data != want || v.markers != 0 {
			t.Errorf("after change, %s has %d versions and %d markers, want %d and 0", k, v.data, v.markers, want)
		}
	}
	if got := string(e.get(e.backup, "sample-file-1.txt")); got != "This is an updated version of file 1\n" {
		t.Errorf("backup of the changed file holds %q", got)
	}

	// Delete a file: a delete marker, data kept.
	e.del(e.source, "sample-file-2.txt")
	third := e.mustBackup(`{}`)
	if r := third.Report; r.Deleted != 1 || r.ToDelete != 1 || r.Copied != 0 {
		t.Fatalf("third run: %s", third.ReportJSON)
	}
	e.aws(&listing, "s3api", "list-object-versions", "--bucket", e.backup, "--prefix", "sample-file-2.txt")
	if len(listing.DeleteMarkers) != 1 || !listing.DeleteMarkers[0].IsLatest || len(listing.Versions) != 1 || listing.Versions[0].IsLatest {
		t.Fatalf("deleted file in backup (AWS CLI): %+v", listing)
	}

	// Nothing changed: nothing copied, nothing deleted, no version added.
	before := e.versions(e.backup)
	idle := e.mustBackup(`{}`)
	if r := idle.Report; r.Copied != 0 || r.Deleted != 0 || r.Unchanged != 4 || r.Listed != 4 {
		t.Fatalf("idle run: %s", idle.ReportJSON)
	}
	if after := e.versions(e.backup); !reflect.DeepEqual(before, after) {
		t.Errorf("idle run changed the backup's versions")
	}
}

// The three-object bucket: one file changed, one deleted, one added. The deletion is a
// third of the backup, above the deletion guard's share but not above its floor, so one run backs
// up all three changes and succeeds.
func TestThreeChangesInOneRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, k := range []string{"a.txt", "b.txt", "c.txt"} {
		e.put(e.source, object{key: k, body: k + " v1"})
	}
	e.mustBackup(`{}`)
	e.put(e.source, object{key: "a.txt", body: "a.txt v2"})
	e.del(e.source, "b.txt")
	e.put(e.source, object{key: "d.txt", body: "d.txt v1"})
	res := e.mustBackup(`{}`)
	if r := res.Report; r.Changed != 1 || r.New != 1 || r.ToDelete != 1 || r.Copied != 2 || r.Deleted != 1 || r.Withheld != 0 || r.Guards[0].Tripped {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	checkReportContract(t, res.ReportJSON)
	if got := string(e.get(e.backup, "a.txt")); got != "a.txt v2" {
		t.Errorf("a.txt in the backup holds %q", got)
	}
	if got := string(e.get(e.backup, "d.txt")); got != "d.txt v1" {
		t.Errorf("d.txt in the backup holds %q", got)
	}
	v := e.versions(e.backup)
	if v["a.txt"].data != 2 || v["b.txt"] == nil || !v["b.txt"].latestMarker || v["b.txt"].data != 1 || v["c.txt"].data != 1 {
		t.Errorf("backup versions: a %+v b %+v c %+v", v["a.txt"], v["b.txt"], v["c.txt"])
	}
}

// A batch file that a failed attempt of this execution left behind (here a deletion of a key that
// still exists) is neither run nor reported: the Map and the reporter read the lister's manifest.
func TestStaleBatchIgnored(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(e.source, object{key: "keep.txt", body: "keep"})
	e.mustBackup(`{}`)
	e.put(e.source, object{key: "new.txt", body: "new"})
	name := localrun.NewExecutionName(time.Now())
	stale, err := batch.Encode(batch.Header{Version: batch.Version, Source: e.source, Destination: e.backup},
		[]batch.Item{{Op: batch.OpDelete, Key: "keep.txt", Change: "deleted", Size: 4}})
	if err != nil {
		t.Fatal(err)
	}
	e.putBytes(e.run, batch.Key(name, 7), stale)
	res, err := e.runner.Backup(e.ctx, name, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Succeeded() || res.Report == nil || res.Report.Batches != 1 || res.Report.Copied != 1 || res.Report.Deleted != 0 || res.Report.Skipped != 0 {
		t.Fatalf("execution %s %s: %s\nreport: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause, res.ReportJSON)
	}
	if v := e.versions(e.backup)["keep.txt"]; v == nil || v.markers != 0 {
		t.Errorf("the stale batch ran: keep.txt %+v", v)
	}
	if keys := e.keys(e.run); slices.Contains(keys, "work/"+name+"/outcomes/000007.json") {
		t.Errorf("the stale batch has an outcome: %v", keys)
	}
}

// checkReportContract asserts every key of the report contract is present.
func checkReportContract(t *testing.T, raw []byte) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "execution", "startedAt", "finishedAt", "listed", "new", "changed", "unchanged", "copied", "deleted", "failed", "bytesCopied", "batches", "failedBatches", "failures",
		"archived", "deletionsWithheld", "guards", "notes", "skips"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
}

func TestOddKeysRoundTrip(t *testing.T) {
	e := newEnv(t, envOptions{})
	// 1,024 bytes, S3's limit; in segments of at most 255 bytes, MinIO's per-segment limit.
	long := strings.Repeat("a", 250) + "/" + strings.Repeat("b", 250) + "/" + strings.Repeat("c", 250) + "/" +
		strings.Repeat("d", 250) + "/" + strings.Repeat("é", 5) + "0123456789"
	if len(long) != 1024 {
		t.Fatalf("long key is %d bytes", len(long))
	}
	keys := []string{
		"with space.txt", "a+b=c.txt", "100%.txt", "percent%2Fencoded", "ünïcødé/日本語/файл.txt",
		"emoji-😀.txt", "folder/", "nested/folder/", "zero-byte", "question?mark", "hash#tag", "semi;colon&amp",
		"tilde~and'quote", "trailing-space ", long,
	}
	for _, k := range keys {
		body := "content of " + k
		if k == "zero-byte" || strings.HasSuffix(k, "/") {
			body = ""
		}
		e.put(e.source, object{key: k, body: body})
	}
	res := e.mustBackup(`{}`)
	if res.Report.Copied != int64(len(keys)) {
		t.Fatalf("copied %d of %d: %s", res.Report.Copied, len(keys), res.ReportJSON)
	}
	src, bak := e.keys(e.source), e.keys(e.backup)
	if !slices.Equal(src, bak) {
		t.Fatalf("backup keys differ:\nsource %q\nbackup %q", src, bak)
	}
	e.sameContent(keys)
	idle := e.mustBackup(`{}`)
	if idle.Report.Copied != 0 || idle.Report.Unchanged != int64(len(keys)) {
		t.Fatalf("idle run after odd keys: %s", idle.ReportJSON)
	}
}

// A 20,000-object bucket with the lister limited per invocation loops at least 4 times, backs up
// everything, and a second run copies nothing.
func TestLargeBucketManyListerInvocations(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 objects")
	}
	const n = 20000
	e := newEnv(t, envOptions{vars: map[string]string{"LISTER_MAX_KEYS": "4500", "BATCH_SIZE": "1000"}})
	e.putMany(e.source, n, func(i int) string { return fmt.Sprintf("objects/%02d/obj-%06d.dat", i%37, i) },
		func(i int) []byte { return []byte(fmt.Sprintf("object %d %s", i, strings.Repeat("x", 1024+i%7000))) })
	res := e.mustBackup(`{}`)
	r := res.Report
	if r.ListInvocations < 4 || r.Listed != n || r.New != n || r.Copied != n || r.Failed != 0 {
		t.Fatalf("first run: listInvocations %d listed %d new %d copied %d failed %d", r.ListInvocations, r.Listed, r.New, r.Copied, r.Failed)
	}
	if got := len(e.keys(e.backup)); got != n {
		t.Fatalf("backup holds %d objects, want %d", got, n)
	}
	again := e.mustBackup(`{}`)
	if again.Report.Copied != 0 || again.Report.Unchanged != n {
		t.Fatalf("second run: copied %d unchanged %d", again.Report.Copied, again.Report.Unchanged)
	}
	t.Logf("20,000 objects: %d lister invocations, %d batches", r.ListInvocations, r.Batches)
}

// Multipart copies: a single-part object above the (lowered) threshold, and an object uploaded
// in parts, whose ETag the copy reproduces. Both byte-identical; an idle run copies neither.
func TestMultipartCopy(t *testing.T) {
	e := newEnv(t, envOptions{vars: map[string]string{"MULTIPART_THRESHOLD": "6MiB", "MULTIPART_PART_SIZE": "5MiB"}})
	single := make([]byte, 13<<20+12345)
	_, _ = rand.Read(single)
	e.putBytes(e.source, "big/single-part.bin", single)
	multi := make([]byte, 17<<20+999)
	_, _ = rand.Read(multi)
	srcETag := e.uploadInParts(e.source, "big/multi-part.bin", multi, 5<<20, map[string]string{"kind": "parts"})

	res := e.mustBackup(`{}`)
	if res.Report.Copied != 2 {
		t.Fatalf("copied: %s", res.ReportJSON)
	}
	if sha(e.get(e.backup, "big/single-part.bin")) != sha(single) || sha(e.get(e.backup, "big/multi-part.bin")) != sha(multi) {
		t.Fatal("multipart copy is not byte-identical to its source")
	}
	head, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.backup), Key: aws.String("big/multi-part.bin")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ETag) != srcETag || head.Metadata["kind"] != "parts" {
		t.Errorf("multipart copy: ETag %s metadata %v, want ETag %s and the source's metadata", aws.ToString(head.ETag), head.Metadata, srcETag)
	}
	idle := e.mustBackup(`{}`)
	if idle.Report.Copied != 0 || idle.Report.Unchanged != 2 {
		t.Fatalf("idle run after multipart copies: %s", idle.ReportJSON)
	}
	for k, v := range e.versions(e.backup) {
		if v.data != 1 {
			t.Errorf("%s has %d versions", k, v.data)
		}
	}
}

func (e *env) uploadInParts(bucket, key string, body []byte, partSize int, meta map[string]string) string {
	e.t.Helper()
	return e.uploadInPartsWithTags(bucket, key, body, partSize, meta, "")
}

func (e *env) uploadInPartsWithTags(bucket, key string, body []byte, partSize int, meta map[string]string, tags string) string {
	e.t.Helper()
	in := &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), Metadata: meta}
	if tags != "" {
		in.Tagging = aws.String(tags)
	}
	up, err := e.s3.CreateMultipartUpload(e.ctx, in)
	if err != nil {
		e.t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, off := int32(1), 0; off < len(body); i, off = i+1, off+partSize {
		end := min(off+partSize, len(body))
		out, err := e.s3.UploadPart(e.ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(i), Body: bytes.NewReader(body[off:end])})
		if err != nil {
			e.t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(i)})
	}
	done, err := e.s3.CompleteMultipartUpload(e.ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(done.ETag)
}

// An object that cannot be copied is named in the report with its error; the others are copied;
// the execution fails with BackupIncomplete.
func TestUncopyableObjectIsNamed(t *testing.T) {
	deny := func(next s3.HTTPClient) s3.HTTPClient {
		return denyCopies{next: next, match: func(path string) bool { return strings.HasSuffix(path, "/poison/locked.txt") }}
	}
	e := newEnv(t, envOptions{wrapHTTP: deny})
	for i := range 30 {
		e.put(e.source, object{key: fmt.Sprintf("ok/file-%02d.txt", i), body: "fine"})
	}
	e.put(e.source, object{key: "poison/locked.txt", body: "cannot be read"})
	res := e.backupRun(`{}`)
	if res.Execution.Status != "FAILED" || res.Execution.Error != "BackupIncomplete" {
		t.Fatalf("execution %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	r := res.Report
	if r == nil || r.Status != "FAILED" || r.Failed != 1 || r.Copied != 30 || len(r.Failures) != 1 || r.Failures[0].Key != "poison/locked.txt" || !strings.Contains(r.Failures[0].Error, "AccessDenied") {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	if got := len(e.keys(e.backup)); got != 30 {
		t.Fatalf("backup holds %d objects, want the 30 copyable ones", got)
	}
}

// denyCopies answers 403 AccessDenied to every CopyObject whose destination path matches, as a
// bucket policy (or a KMS key policy) that the copier's role does not pass would.
type denyCopies struct {
	next  s3.HTTPClient
	match func(path string) bool
}

func (d denyCopies) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && req.Header.Get("X-Amz-Copy-Source") != "" && d.match(req.URL.Path) {
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>`
		return &http.Response{
			StatusCode: http.StatusForbidden, Status: "403 Forbidden", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": []string{"application/xml"}},
			Body:   ioNopCloser(body), ContentLength: int64(len(body)), Request: req,
		}, nil
	}
	return d.next.Do(req)
}
