//go:build integration

package integration

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/integration/minio"
	"github.com/bucketvault/bucketvault/shared/change"
)

// kmsDefault gives a bucket default encryption aws:kms with the server's KMS key.
func (e *env) kmsDefault(bucket string) {
	e.t.Helper()
	if _, err := e.s3.PutBucketEncryption(e.ctx, &s3.PutBucketEncryptionInput{
		Bucket: aws.String(bucket),
		ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{Rules: []types.ServerSideEncryptionRule{{
			ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{
				SSEAlgorithm: types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String(e.srv.KMSKeyID),
			},
		}}},
	}); err != nil {
		e.t.Fatalf("default encryption aws:kms on %s: %v", bucket, err)
	}
}

// listedETags returns the ETag of every current object of a bucket, as ListObjectsV2 gives it.
func (e *env) listedETags(bucket string) map[string]string {
	e.t.Helper()
	m := map[string]string{}
	p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, o := range page.Contents {
			m[aws.ToString(o.Key)] = aws.ToString(o.ETag)
		}
	}
	return m
}

// requireKMS checks that a backup object is stored under SSE-KMS with the server's key, so that
// a test of KMS behaviour cannot pass against an unencrypted bucket.
func (e *env) requireKMS(bucket, key string) {
	e.t.Helper()
	head, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		e.t.Fatal(err)
	}
	if head.ServerSideEncryption != types.ServerSideEncryptionAwsKms {
		e.t.Fatalf("%s/%s: server-side encryption %q, want aws:kms (key id %q)", bucket, key, head.ServerSideEncryption, aws.ToString(head.SSEKMSKeyId))
	}
}

// copyInParts copies srcKey into dst/key with UploadPartCopy, partSize bytes a part, as the
// copier copies an object uploaded in parts; it returns CompleteMultipartUpload's ETag.
func (e *env) copyInParts(srcBucket, srcKey, dst, key string, size int64, partSize int64) string {
	e.t.Helper()
	up, err := e.s3.CreateMultipartUpload(e.ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(dst), Key: aws.String(key)})
	if err != nil {
		e.t.Fatal(err)
	}
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+partSize {
		end := min(off+partSize, size) - 1
		out, err := e.s3.UploadPartCopy(e.ctx, &s3.UploadPartCopyInput{
			Bucket: aws.String(dst), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(n),
			CopySource: aws.String(srcBucket + "/" + srcKey), CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			e.t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)})
	}
	done, err := e.s3.CompleteMultipartUpload(e.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(dst), Key: aws.String(key), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(done.ETag)
}

// What change detection under SSE-KMS rests on, as MinIO (like AWS) behaves: into a bucket whose
// default encryption is aws:kms, a CopyObject and a multipart copy each get an ETag that is not
// the source's, copying the same source twice gives two different ETags, and ListObjectsV2 and
// HeadObject report the very ETag the copy's response returned (which is what the index records).
func TestKMSCopiesGetFreshETags(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.kmsDefault(e.backup) // versioned: both copies of a key stay, each with its ETag

	body := make([]byte, 4096)
	_, _ = rand.Read(body)
	e.putBytes(e.source, "single.bin", body)
	sum := md5.Sum(body)
	md5ETag := `"` + hex.EncodeToString(sum[:]) + `"`
	if got := e.listedETags(e.source)["single.bin"]; got != md5ETag {
		t.Fatalf("unencrypted source ETag %s, want its MD5 %s", got, md5ETag)
	}
	const partSize = 5 << 20
	multi := make([]byte, 2*partSize+777)
	_, _ = rand.Read(multi)
	multiETag := e.uploadInParts(e.source, "multi.bin", multi, partSize, nil)

	copyOnce := func(key string) string {
		t.Helper()
		out, err := e.s3.CopyObject(e.ctx, &s3.CopyObjectInput{Bucket: aws.String(e.backup), Key: aws.String(key), CopySource: aws.String(e.source + "/" + key)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.CopyObjectResult.ETag)
	}
	type copied struct{ key, source, first, second string }
	cases := []copied{
		{key: "single.bin", source: md5ETag, first: copyOnce("single.bin")},
		{key: "multi.bin", source: multiETag, first: e.copyInParts(e.source, "multi.bin", e.backup, "multi.bin", int64(len(multi)), partSize)},
	}
	// The listing's ETag is the copy response's, for the current version.
	listed := e.listedETags(e.backup)
	for _, c := range cases {
		t.Logf("%s: source ETag %s, KMS copy ETag %s", c.key, c.source, c.first)
		if change.NormalizeETag(c.first) == change.NormalizeETag(c.source) || c.first == "" {
			t.Errorf("%s: the copy into the aws:kms bucket has ETag %s, the source's; want a fresh one", c.key, c.first)
		}
		if listed[c.key] != c.first {
			t.Errorf("%s: ListObjectsV2 gives ETag %s, the copy response gave %s", c.key, listed[c.key], c.first)
		}
		head, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.backup), Key: aws.String(c.key)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(head.ETag) != c.first {
			t.Errorf("%s: HeadObject gives ETag %s, the copy response gave %s", c.key, aws.ToString(head.ETag), c.first)
		}
		e.requireKMS(e.backup, c.key)
	}
	// The same source copied again: another fresh ETag.
	cases[0].second = copyOnce("single.bin")
	cases[1].second = e.copyInParts(e.source, "multi.bin", e.backup, "multi.bin", int64(len(multi)), partSize)
	listed = e.listedETags(e.backup)
	for _, c := range cases {
		t.Logf("%s: second KMS copy ETag %s", c.key, c.second)
		if c.second == c.first || change.NormalizeETag(c.second) == change.NormalizeETag(c.source) {
			t.Errorf("%s: copying the same source twice gave ETags %s and %s (source %s); want two fresh ones", c.key, c.first, c.second, c.source)
		}
		if listed[c.key] != c.second {
			t.Errorf("%s: ListObjectsV2 gives ETag %s after the second copy, the copy response gave %s", c.key, listed[c.key], c.second)
		}
	}
	// The data is intact: the fresh ETags are not a different content.
	if sha(e.get(e.backup, "single.bin")) != sha(body) || sha(e.get(e.backup, "multi.bin")) != sha(multi) {
		t.Error("a KMS copy is not byte-identical to its source")
	}
}

// An SSE-KMS backup bucket is backed up incrementally: the first run copies everything, an idle
// run copies nothing, a changed object is copied once, and a second idle run again copies
// nothing — so each key keeps one version per content, not one per night.
func TestKMSBackupIsIncremental(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.kmsDefault(e.backup)
	files := map[string]string{"a.txt": "alpha\n", "b/c.txt": "charlie\n", "b/d.txt": "delta\n", "e.txt": "echo\n"}
	for k, v := range files {
		e.putBytes(e.source, k, []byte(v))
	}
	multi := make([]byte, 2*(5<<20)+31)
	_, _ = rand.Read(multi)
	e.uploadInParts(e.source, "big/multi.bin", multi, 5<<20, nil)
	const objects = 5

	first := e.mustBackup(`{}`)
	if r := first.Report; r.New != objects || r.Copied != objects || r.Failed != 0 {
		t.Fatalf("first run: want %d new and copied: %s", objects, first.ReportJSON)
	}
	e.requireKMS(e.backup, "a.txt")
	e.requireKMS(e.backup, "big/multi.bin")
	src, bak := e.listedETags(e.source), e.listedETags(e.backup)
	for k := range src {
		if change.NormalizeETag(src[k]) == change.NormalizeETag(bak[k]) {
			t.Fatalf("%s: backup ETag %s equals the source's: the backup is not behaving as SSE-KMS", k, bak[k])
		}
	}

	idle := e.mustBackup(`{}`)
	if r := idle.Report; r.Copied != 0 || r.Changed != 0 || r.Unchanged != objects {
		t.Fatalf("idle run on an SSE-KMS backup: want 0 copied, %d unchanged: %s", objects, idle.ReportJSON)
	}

	e.putBytes(e.source, "b/c.txt", []byte("charlie, changed\n"))
	changed := e.mustBackup(`{}`)
	if r := changed.Report; r.Copied != 1 || r.Changed != 1 || r.Unchanged != objects-1 {
		t.Fatalf("run after one change: want exactly 1 copied: %s", changed.ReportJSON)
	}
	if got := string(e.get(e.backup, "b/c.txt")); got != "charlie, changed\n" {
		t.Errorf("backup of the changed object holds %q", got)
	}

	again := e.mustBackup(`{}`)
	if r := again.Report; r.Copied != 0 || r.Changed != 0 || r.Unchanged != objects {
		t.Fatalf("second idle run: want 0 copied, %d unchanged: %s", objects, again.ReportJSON)
	}
	for k, v := range e.versions(e.backup) {
		want := 1
		if k == "b/c.txt" {
			want = 2
		}
		if v.data != want || v.markers != 0 {
			t.Errorf("%s: %d versions and %d delete markers, want %d and 0", k, v.data, v.markers, want)
		}
	}
}

// The server keeps its KMS key across a restart: objects encrypted before are readable after.
func TestKMSKeySurvivesRestart(t *testing.T) {
	srv, err := minio.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	e := newEnv(t, envOptions{server: srv})
	e.kmsDefault(e.backup)
	e.putBytes(e.backup, "secret.txt", []byte("encrypted at rest\n"))
	e.requireKMS(e.backup, "secret.txt")
	key := srv.KMSKeyID
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.KMSKeyID != key {
		t.Errorf("KMS key id changed across the restart: %s, then %s", key, srv.KMSKeyID)
	}
	if got := string(e.get(e.backup, "secret.txt")); got != "encrypted at rest\n" {
		t.Errorf("after the restart the object reads %q", got)
	}
}
