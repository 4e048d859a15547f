//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"maps"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/s3copy"
)

// A streamed copy between two providers (two MinIO servers, each with its own credentials):
// single-part objects below and above PartSize (the latter streamed without a buffer, with an
// unsigned payload over plain http), a multipart object along its own 5 MiB parts (buffered, and
// unbuffered with a smaller PartSize), with content headers, metadata and tags, from A to B; then
// a restore of an older version from B's versioned bucket back to A. Bytes are compared by
// SHA-256; a multipart copy has the source's ETag.
func TestStreamedCopyBetweenProviders(t *testing.T) {
	ctx := context.Background()
	a := clientFor(t, server, "", 0, nil)
	b := startSecondMinIO(t)
	srcBucket := newBucketOn(t, a, "stream-src", false)
	bakBucket := b.bucket(t, "stream-bak", true)
	restoreBucket := newBucketOn(t, a, "stream-restore", true)

	random := func(n int) []byte {
		p := make([]byte, n)
		_, _ = rand.Read(p)
		return p
	}
	expires := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	objects := []struct {
		key   string
		body  []byte
		parts int // the part size of a multipart upload; 0: one PUT
	}{
		{key: "small.csv", body: random(1 << 20)},
		{key: "dir/mid single.bin", body: random(6 << 20)},
		{key: "big+parts.bin", body: random(11 << 20), parts: 5 << 20},
	}
	for _, o := range objects {
		putWithHeaders(t, a, srcBucket, o.key, o.body, o.parts, expires)
	}
	listed := func(client *s3.Client, bucket, key, versionID string) change.Object {
		h, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: versionID2(versionID)})
		if err != nil {
			t.Fatalf("head %s/%s: %v", bucket, key, err)
		}
		return change.Object{Key: key, Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag), LastModified: aws.ToTime(h.LastModified)}
	}

	toB := s3copy.New(b.S3, s3copy.Options{Source: a, PartSize: 5 << 20, PartConcurrency: 4})
	unbuffered := s3copy.New(b.S3, s3copy.Options{Source: a, PartSize: 1 << 20, PartConcurrency: 4})
	for _, o := range objects {
		want := listed(a, srcBucket, o.key, "")
		res, err := toB.Copy(ctx, s3copy.Request{SourceBucket: srcBucket, DestBucket: bakBucket, Key: o.key, Listed: want, BackupDest: true})
		if err != nil {
			t.Fatalf("stream %s: %v", o.key, err)
		}
		checkCopy(t, b.S3, bakBucket, o.key, o.body, want, o.parts > 0, expires)
		if res.DestETag != want.ETag {
			t.Errorf("%s: result ETag %s, source %s", o.key, res.DestETag, want.ETag)
		}
		if o.parts > 0 {
			res, err := unbuffered.Copy(ctx, s3copy.Request{SourceBucket: srcBucket, DestBucket: bakBucket, Key: o.key, DestKey: o.key + ".unbuffered", Listed: want})
			if err != nil {
				t.Fatalf("stream %s unbuffered: %v", o.key, err)
			}
			checkCopy(t, b.S3, bakBucket, o.key+".unbuffered", o.body, want, true, expires)
			if res.DestETag != want.ETag {
				t.Errorf("%s unbuffered: result ETag %s, source %s", o.key, res.DestETag, want.ETag)
			}
		}
	}

	// Overwrite the sources and copy again: B holds two versions of each; restore the first from
	// B into A, by version id.
	first := map[string]string{}
	for _, o := range objects {
		first[o.key] = currentVersion(t, b.S3, bakBucket, o.key)
		putWithHeaders(t, a, srcBucket, o.key, random(len(o.body)), o.parts, expires)
		if _, err := toB.Copy(ctx, s3copy.Request{SourceBucket: srcBucket, DestBucket: bakBucket, Key: o.key, Listed: listed(a, srcBucket, o.key, ""), BackupDest: true}); err != nil {
			t.Fatalf("stream %s again: %v", o.key, err)
		}
	}
	back := s3copy.New(a, s3copy.Options{Source: b.S3, PartSize: 5 << 20, PartConcurrency: 4})
	for _, o := range objects {
		want := listed(b.S3, bakBucket, o.key, first[o.key])
		if _, err := back.Copy(ctx, s3copy.Request{SourceBucket: bakBucket, SourceVersionID: first[o.key], DestBucket: restoreBucket, Key: o.key, Listed: want}); err != nil {
			t.Fatalf("restore %s from B: %v", o.key, err)
		}
		checkCopy(t, a, restoreBucket, o.key, o.body, want, o.parts > 0, expires)
	}
}

func versionID2(id string) *string {
	if id == "" {
		return nil
	}
	return aws.String(id)
}

// putWithHeaders writes body with content headers, metadata and tags, in one PUT or (partSize > 0)
// as a multipart upload of partSize parts.
func putWithHeaders(t *testing.T, client *s3.Client, bucket, key string, body []byte, partSize int, expires time.Time) {
	t.Helper()
	ctx := context.Background()
	h := &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ContentType: aws.String("text/csv"), ContentEncoding: aws.String("identity"),
		ContentDisposition: aws.String(`attachment; filename="x.csv"`), ContentLanguage: aws.String("de-CH"), CacheControl: aws.String("max-age=60"),
		Expires: aws.Time(expires), Metadata: map[string]string{"owner": "finance"}, Tagging: aws.String("team=finance&backup=true"),
	}
	if partSize == 0 {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: h.Bucket, Key: h.Key, Body: bytes.NewReader(body), ContentType: h.ContentType,
			ContentEncoding: h.ContentEncoding, ContentDisposition: h.ContentDisposition, ContentLanguage: h.ContentLanguage, CacheControl: h.CacheControl,
			Expires: h.Expires, Metadata: h.Metadata, Tagging: h.Tagging}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return
	}
	up, err := client.CreateMultipartUpload(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, off := int32(1), 0; off < len(body); i, off = i+1, off+partSize {
		end := min(off+partSize, len(body))
		out, err := client.UploadPart(ctx, &s3.UploadPartInput{Bucket: h.Bucket, Key: h.Key, UploadId: up.UploadId, PartNumber: aws.Int32(i), Body: bytes.NewReader(body[off:end])})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(i)})
	}
	if _, err := client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: h.Bucket, Key: h.Key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatal(err)
	}
}

// checkCopy checks bucket/key's current version: body's SHA-256, the source's ETag (always for a
// multipart source, and for a single-part one, whose ETag is its MD5 here), content headers,
// metadata and tags.
func checkCopy(t *testing.T, client *s3.Client, bucket, key string, body []byte, src change.Object, multipart bool, expires time.Time) {
	t.Helper()
	ctx := context.Background()
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	got := readAll(t, out.Body)
	if sha(got) != sha(body) {
		t.Fatalf("%s/%s: SHA-256 %s, want %s (%d bytes, want %d)", bucket, key, sha(got), sha(body), len(got), len(body))
	}
	if change.NormalizeETag(aws.ToString(out.ETag)) != change.NormalizeETag(src.ETag) || change.IsMultipart(aws.ToString(out.ETag)) != multipart {
		t.Errorf("%s/%s: ETag %s, want the source's %s", bucket, key, aws.ToString(out.ETag), src.ETag)
	}
	if aws.ToString(out.ContentType) != "text/csv" || aws.ToString(out.ContentDisposition) != `attachment; filename="x.csv"` ||
		aws.ToString(out.ContentLanguage) != "de-CH" || aws.ToString(out.CacheControl) != "max-age=60" || aws.ToString(out.ContentEncoding) != "identity" {
		t.Errorf("%s/%s: content headers %q %q %q %q %q", bucket, key, aws.ToString(out.ContentType), aws.ToString(out.ContentDisposition),
			aws.ToString(out.ContentLanguage), aws.ToString(out.CacheControl), aws.ToString(out.ContentEncoding))
	}
	if e, err := time.Parse(time.RFC1123, aws.ToString(out.ExpiresString)); err != nil || !e.Equal(expires) {
		t.Errorf("%s/%s: Expires %q, want %v", bucket, key, aws.ToString(out.ExpiresString), expires)
	}
	if !maps.Equal(out.Metadata, map[string]string{"owner": "finance"}) {
		t.Errorf("%s/%s: metadata %v", bucket, key, out.Metadata)
	}
	tags, err := client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, tag := range tags.TagSet {
		m[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
	}
	if !maps.Equal(m, map[string]string{"team": "finance", "backup": "true"}) {
		t.Errorf("%s/%s: tags %v", bucket, key, m)
	}
}

func currentVersion(t *testing.T, client *s3.Client, bucket, key string) string {
	t.Helper()
	h, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil || aws.ToString(h.VersionId) == "" {
		t.Fatalf("head %s/%s: version %q, %v", bucket, key, aws.ToString(h.VersionId), err)
	}
	return aws.ToString(h.VersionId)
}

func readAll(t *testing.T, r interface {
	Read([]byte) (int, error)
	Close() error
}) []byte {
	t.Helper()
	defer r.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
