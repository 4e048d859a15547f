package s3copy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// Two providers: the source's fake (buckets src, unversioned, and vsrc, versioned) and the
// destination's (bak, versioned; run for upload records). Neither has the other's buckets, so a
// read sent to the wrong client fails with NoSuchBucket.
func twoProviders() (src, dst *s3fake.S3) {
	src, dst = s3fake.New(), s3fake.New()
	src.AddBucket("src", false)
	src.AddBucket("vsrc", true)
	dst.AddBucket("bak", true)
	dst.AddBucket("run", false)
	return src, dst
}

var expiresAt = time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)

// headers are the content headers, metadata and tags every streamed test object carries.
func headers(bucket, key string) *s3.CreateMultipartUploadInput {
	return &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		ContentType: aws.String("text/csv"), ContentEncoding: aws.String("gzip"), ContentDisposition: aws.String(`attachment; filename="a.csv"`),
		ContentLanguage: aws.String("de-CH"), CacheControl: aws.String("max-age=60"), Expires: aws.Time(expiresAt),
		Metadata: map[string]string{"owner": "finance", "x-y": "z"}, Tagging: aws.String("team=finance&backup=true"),
	}
}

// putSource writes body in one PUT (parts nil) or as a multipart upload of those part sizes, with
// headers, and returns the version written.
func putSource(t *testing.T, f *s3fake.S3, bucket, key string, body []byte, parts ...int) s3fake.Object {
	t.Helper()
	ctx := context.Background()
	h := headers(bucket, key)
	if len(parts) == 0 {
		if _, err := f.PutObject(ctx, &s3.PutObjectInput{Bucket: h.Bucket, Key: h.Key, Body: bytes.NewReader(body),
			ContentType: h.ContentType, ContentEncoding: h.ContentEncoding, ContentDisposition: h.ContentDisposition,
			ContentLanguage: h.ContentLanguage, CacheControl: h.CacheControl, Expires: h.Expires, Metadata: h.Metadata, Tagging: h.Tagging}); err != nil {
			t.Fatal(err)
		}
	} else {
		up, err := f.CreateMultipartUpload(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		var done []types.CompletedPart
		off := 0
		for i, n := range parts {
			out, err := f.UploadPart(ctx, &s3.UploadPartInput{Bucket: h.Bucket, Key: h.Key, UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(body[off : off+n])})
			if err != nil {
				t.Fatal(err)
			}
			off += n
			done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
		}
		if _, err := f.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: h.Bucket, Key: h.Key, UploadId: up.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
			t.Fatal(err)
		}
	}
	vs := f.Versions(bucket, key)
	return vs[len(vs)-1]
}

func asListed(key string, o s3fake.Object) change.Object {
	return change.Object{Key: key, Size: int64(len(o.Body)), ETag: o.ETag, LastModified: o.LastModified}
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/251)
	}
	return b
}

// A streamed copy from another provider writes the source's bytes, content headers, metadata
// and tags; a multipart source is uploaded along its own parts, so the ETag is the source's; a
// single-part source above Threshold is uploaded in parts; a restore reads a named version. No
// request reaches the destination's client for the source, nor a server-side copy.
func TestStreamedCopy(t *testing.T) {
	tests := []struct {
		name      string
		bucket    string // source bucket: src, or vsrc with an older version read by id
		size      int
		parts     []int // the source's parts; nil: single-part
		partSize  int64 // Options.PartSize: bodies above it are streamed without a buffer
		threshold int64
		// wantParts is the destination's part count (0: single-part); sameETag: the source's ETag.
		wantParts int
		sameETag  bool
	}{
		{name: "single-part, buffered", bucket: "src", size: 3000, partSize: 4096, sameETag: true},
		{name: "single-part above PartSize, streamed unbuffered", bucket: "src", size: 10000, partSize: 4096, sameETag: true},
		{name: "empty object", bucket: "src", size: 0, partSize: 4096, sameETag: true},
		{name: "multipart layout reproduced, parts buffered", bucket: "src", size: 9000, parts: []int{4000, 4000, 1000}, partSize: 4096, wantParts: 3, sameETag: true},
		{name: "multipart layout reproduced, parts unbuffered", bucket: "src", size: 9000, parts: []int{4000, 4000, 1000}, partSize: 1024, wantParts: 3, sameETag: true},
		{name: "single-part above Threshold, in parts", bucket: "src", size: 11 << 20, partSize: 5 << 20, threshold: 1 << 20, wantParts: 3},
		{name: "restore: a version read by id, single-part", bucket: "vsrc", size: 5000, partSize: 4096, sameETag: true},
		{name: "restore: a version read by id, multipart", bucket: "vsrc", size: 9000, parts: []int{5000, 4000}, partSize: 4096, wantParts: 2, sameETag: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := twoProviders()
			body := payload(tt.size, 1)
			o := putSource(t, src, tt.bucket, "k", body, tt.parts...)
			req := Request{SourceBucket: tt.bucket, DestBucket: "bak", Key: "k", Listed: asListed("k", o), BackupDest: true, PriorListed: true}
			if tt.bucket == "vsrc" {
				// The version asked for is not the current one.
				putSource(t, src, tt.bucket, "k", payload(tt.size+10, 9))
				req.SourceVersionID = o.VersionID
			}
			c := New(dst, Options{Source: src, Sleep: noSleep, PartSize: tt.partSize, Threshold: tt.threshold, PartConcurrency: 2})
			res, err := c.Copy(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			vs := dst.Versions("bak", "k")
			if len(vs) != 1 {
				t.Fatalf("%d versions in the destination, want 1", len(vs))
			}
			got := vs[0]
			if !bytes.Equal(got.Body, body) {
				t.Fatalf("destination holds %d bytes that differ from the source's %d", len(got.Body), len(body))
			}
			if len(got.PartSizes) != tt.wantParts {
				t.Errorf("destination in %d parts, want %d", len(got.PartSizes), tt.wantParts)
			}
			if tt.sameETag && got.ETag != o.ETag {
				t.Errorf("destination ETag %s, want the source's %s", got.ETag, o.ETag)
			}
			if res.Outcome != Copied || res.DestETag != got.ETag || res.Bytes != int64(tt.size) || res.Multipart != (tt.wantParts > 0) {
				t.Errorf("result %+v; want copied, %d bytes, ETag %s", res, tt.size, got.ETag)
			}
			if got.ContentType != o.ContentType || got.Headers.ContentEncoding != "gzip" || got.Headers.ContentDisposition != o.Headers.ContentDisposition ||
				got.Headers.ContentLanguage != "de-CH" || got.Headers.CacheControl != "max-age=60" || got.Headers.Expires == nil || !got.Headers.Expires.Equal(expiresAt) {
				t.Errorf("content headers %q %+v; want the source's %q %+v", got.ContentType, got.Headers, o.ContentType, o.Headers)
			}
			if !maps.Equal(got.Metadata, o.Metadata) || !maps.Equal(tagMap(got.Tags), map[string]string{"team": "finance", "backup": "true"}) {
				t.Errorf("metadata %v, tags %v; want %v and the source's tags", got.Metadata, tagMap(got.Tags), o.Metadata)
			}
			for _, op := range []string{"CopyObject", "UploadPartCopy", "GetObject"} {
				if n := dst.Count(op); n != 0 {
					t.Errorf("%d %s requests to the destination's client", n, op)
				}
			}
			if open := dst.OpenUploads(); len(open) != 0 {
				t.Errorf("uploads left open: %v", open)
			}
		})
	}
}

// mutatingSource changes the source (through its own client, as another writer would) just
// before the GetObject numbered at.
type mutatingSource struct {
	*s3fake.S3
	at     int32
	n      atomic.Int32
	mutate func()
}

func (m *mutatingSource) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if m.n.Add(1) == m.at {
		m.mutate()
	}
	return m.S3.GetObject(ctx, in, opts...)
}

// A source overwritten while it is streamed fails the GET's If-Match: the new content is copied
// and reported (SourceChanged); one deleted is Vanished; an upload of the old content is aborted,
// never completed.
func TestStreamedSourceChanges(t *testing.T) {
	newer := payload(9000, 5)
	tests := []struct {
		name    string
		parts   []int
		at      int32 // the GET before which the source changes
		deleted bool
		want    Outcome
	}{
		{name: "single-part overwritten", at: 1, want: Copied},
		{name: "multipart overwritten between parts", parts: []int{4000, 4000, 1000}, at: 2, want: Copied},
		{name: "single-part deleted", at: 1, deleted: true, want: Vanished},
		{name: "multipart deleted between parts", parts: []int{4000, 4000, 1000}, at: 2, deleted: true, want: Vanished},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := twoProviders()
			o := putSource(t, src, "src", "k", payload(9000, 1), tt.parts...)
			m := &mutatingSource{S3: src, at: tt.at, mutate: func() {
				if tt.deleted {
					if _, err := src.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("src"), Key: aws.String("k")}); err != nil {
						t.Error(err)
					}
					return
				}
				src.Put("src", "k", newer)
			}}
			c := New(dst, Options{Source: m, Sleep: noSleep, PartSize: 4096, PartConcurrency: 1})
			res, err := c.Copy(context.Background(), Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: asListed("k", o), BackupDest: true})
			if err != nil {
				t.Fatal(err)
			}
			vs := dst.Versions("bak", "k")
			if res.Outcome != tt.want {
				t.Fatalf("outcome %s, want %s", res.Outcome, tt.want)
			}
			if tt.deleted {
				if len(vs) != 0 {
					t.Errorf("%d versions written of a vanished source", len(vs))
				}
			} else if !res.SourceChanged || len(vs) != 1 || !bytes.Equal(vs[0].Body, newer) || res.Object.ETag != vs[0].ETag {
				t.Errorf("result %+v with %d versions; want SourceChanged and one version of the new content", res, len(vs))
			}
			if open := dst.OpenUploads(); len(open) != 0 {
				t.Errorf("uploads left open: %v", open)
			}
			if n := dst.Count("CompleteMultipartUpload"); n != 0 {
				t.Errorf("%d uploads completed, want none (the new content is single-part)", n)
			}
			if n := dst.Count("AbortMultipartUpload"); len(tt.parts) > 0 && n != 1 {
				t.Errorf("%d uploads aborted, want the one of the old content", n)
			}
		})
	}
}

// flipReader flips the first byte it passes at offset at.
type flipReader struct {
	r   io.Reader
	off int64
	at  int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0xff
	}
	f.off += int64(n)
	return n, err
}

// corruptSource flips a byte of the GET numbered at (the transfer from the source).
type corruptSource struct {
	*s3fake.S3
	at int32
	n  atomic.Int32
}

func (c *corruptSource) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := c.S3.GetObject(ctx, in, opts...)
	if err == nil && c.n.Add(1) == c.at {
		out.Body = io.NopCloser(&flipReader{r: out.Body, at: 100})
	}
	return out, err
}

// corruptDest flips a byte of every body written (the transfer to the destination).
type corruptDest struct{ *s3fake.S3 }

func (c corruptDest) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	in.Body = &flipReader{r: in.Body, at: 100}
	return c.S3.PutObject(ctx, in, opts...)
}

func (c corruptDest) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	in.Body = &flipReader{r: in.Body, at: 100}
	return c.S3.UploadPart(ctx, in, opts...)
}

// A byte changed on the way from the source or on the way to the destination is caught: the
// object fails, no version is written, no upload is left open.
func TestStreamedCorruptionIsDetected(t *testing.T) {
	tests := []struct {
		name     string
		parts    []int
		partSize int64
		toDest   bool   // corrupt the write instead of the read
		wantCode string // the server's refusal (Content-MD5); "" means ErrContentMismatch
	}{
		{name: "read, single-part buffered", partSize: 16384},
		{name: "read, single-part unbuffered (refused by its Content-MD5 too)", partSize: 1024},
		{name: "read, multipart buffered", parts: []int{4000, 4000, 1000}, partSize: 4096},
		{name: "read, multipart unbuffered", parts: []int{4000, 4000, 1000}, partSize: 1024},
		{name: "write, single-part buffered", partSize: 16384, toDest: true, wantCode: "BadDigest"},
		{name: "write, single-part unbuffered", partSize: 1024, toDest: true, wantCode: "BadDigest"},
		{name: "write, multipart buffered", parts: []int{4000, 4000, 1000}, partSize: 4096, toDest: true, wantCode: "BadDigest"},
		{name: "write, multipart unbuffered", parts: []int{4000, 4000, 1000}, partSize: 1024, toDest: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := twoProviders()
			o := putSource(t, src, "src", "k", payload(9000, 1), tt.parts...)
			var (
				source SourceAPI = src
				dest   API       = dst
			)
			if tt.toDest {
				dest = corruptDest{dst}
			} else {
				source = &corruptSource{S3: src, at: 1}
			}
			c := New(dest, Options{Source: source, Sleep: noSleep, PartSize: tt.partSize, PartConcurrency: 1})
			_, err := c.Copy(context.Background(), Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: asListed("k", o), BackupDest: true})
			switch {
			case err == nil:
				t.Fatal("a corrupted copy succeeded")
			case tt.wantCode != "" && !fault.IsCode(err, tt.wantCode):
				t.Fatalf("err = %v, want %s", err, tt.wantCode)
			case tt.wantCode == "" && !errors.Is(err, ErrContentMismatch):
				t.Fatalf("err = %v, want ErrContentMismatch", err)
			}
			if vs := dst.Versions("bak", "k"); len(vs) != 0 {
				t.Errorf("%d versions written", len(vs))
			}
			if open := dst.OpenUploads(); len(open) != 0 {
				t.Errorf("uploads left open: %v", open)
			}
		})
	}
}

// Delete's check that the key has not reappeared reads the source through the source's client.
func TestStreamedDeleteChecksTheSource(t *testing.T) {
	tests := []struct {
		name     string
		inSource bool
		want     Outcome
	}{
		{name: "key back in the source", inSource: true, want: Reappeared},
		{name: "key gone from the source", want: Deleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := twoProviders()
			dst.Put("bak", "k", []byte("old"))
			if tt.inSource {
				src.Put("src", "k", []byte("new"))
			}
			got, err := New(dst, Options{Source: src, Sleep: noSleep}).Delete(context.Background(), DeleteRequest{SourceBucket: "src", DestBucket: "bak", Key: "k", Verify: true})
			if err != nil || got != tt.want {
				t.Fatalf("Delete = %s, %v; want %s", got, err, tt.want)
			}
			if n := src.Count("HeadObject"); n != 1 {
				t.Errorf("%d HEADs of the source through its client, want 1", n)
			}
			for _, call := range dst.Calls() {
				if call == "HeadObject src/k" {
					t.Errorf("the destination's client was asked about the source: %v", dst.Calls())
				}
			}
		})
	}
}

// meter counts the bytes read from the source's GETs and the bytes the destination's writes
// took: their difference is what the Copier holds. Writes wait until three are in flight (or,
// once, until a second passed: with the bound in place three buffered writes never overlap), so
// that an unbounded Copier shows its overlap whatever the scheduling.
type meter struct {
	src              *s3fake.S3
	dst              *s3fake.S3
	read, taken, max atomic.Int64
	inWrite          atomic.Int32
	open             chan struct{}
	once             sync.Once
}

func (m *meter) held() {
	n := m.read.Load() - m.taken.Load()
	for x := m.max.Load(); n > x && !m.max.CompareAndSwap(x, n); x = m.max.Load() {
	}
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
	m *meter
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	c.m.held()
	return n, err
}

// countBody is a GET's body, counted. While the destination reads it through the Copier
// without a buffer (passing), the bytes go straight through and are not counted on either side.
type countBody struct {
	r       io.ReadCloser
	m       *meter
	passing atomic.Bool
}

func (c *countBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if !c.passing.Load() {
		c.m.read.Add(int64(n))
		c.m.held()
	}
	return n, err
}

func (c *countBody) Close() error { return c.r.Close() }

// counted returns what a write reads: body, counted unless it is an unbuffered GET body
// passing through the Copier (then marked so while the write lasts).
func (m *meter) counted(body io.Reader) (io.Reader, func()) {
	if h, ok := body.(*hashReader); ok {
		if cb, ok := h.r.(*countBody); ok {
			cb.passing.Store(true)
			return body, func() { cb.passing.Store(false) }
		}
	}
	return countReader{r: body, n: &m.taken, m: m}, func() {}
}

type meteredSource struct{ *meter }

func (m meteredSource) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return m.src.HeadObject(ctx, in, opts...)
}

func (m meteredSource) GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error) {
	return m.src.GetObjectTagging(ctx, in, opts...)
}

func (m meteredSource) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := m.src.GetObject(ctx, in, opts...)
	if err == nil {
		out.Body = &countBody{r: out.Body, m: m.meter}
	}
	return out, err
}

type meteredDest struct {
	*s3fake.S3
	m *meter
}

func (d meteredDest) wait() {
	if d.m.inWrite.Add(1) >= 3 {
		d.m.once.Do(func() { close(d.m.open) })
	}
	select {
	case <-d.m.open:
	case <-time.After(time.Second):
		d.m.once.Do(func() { close(d.m.open) })
	}
}

func (d meteredDest) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	d.wait()
	defer d.m.inWrite.Add(-1)
	body, done := d.m.counted(in.Body)
	defer done()
	in.Body = body
	return d.S3.PutObject(ctx, in, opts...)
}

func (d meteredDest) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	d.wait()
	defer d.m.inWrite.Add(-1)
	body, done := d.m.counted(in.Body)
	defer done()
	in.Body = body
	return d.S3.UploadPart(ctx, in, opts...)
}

// The bytes a streaming Copier holds never exceed PartSize × PartConcurrency, however many
// objects it copies at once: small objects and parts are buffered within that budget, larger
// bodies are not buffered at all.
func TestStreamedMemoryIsBounded(t *testing.T) {
	const partSize, concurrency = 64 << 10, 2
	src, dst := twoProviders()
	m := &meter{src: src, dst: dst, open: make(chan struct{})}
	var reqs []Request
	for i := range 4 {
		key := fmt.Sprintf("multi-%d", i)
		reqs = append(reqs, Request{Key: key, Listed: asListed(key, putSource(t, src, "src", key, payload(3*partSize, byte(i)), partSize, partSize, partSize))})
		key = fmt.Sprintf("small-%d", i)
		reqs = append(reqs, Request{Key: key, Listed: asListed(key, putSource(t, src, "src", key, payload(60<<10, byte(i))))})
		key = fmt.Sprintf("large-%d", i)
		reqs = append(reqs, Request{Key: key, Listed: asListed(key, putSource(t, src, "src", key, payload(5*partSize, byte(i))))})
	}
	c := New(meteredDest{S3: dst, m: m}, Options{Source: meteredSource{m}, Sleep: noSleep, PartSize: partSize, PartConcurrency: concurrency})
	var g errgroup.Group
	for _, req := range reqs {
		g.Go(func() error {
			req.SourceBucket, req.DestBucket, req.BackupDest = "src", "bak", true
			_, err := c.Copy(context.Background(), req)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, req := range reqs {
		if vs := dst.Versions("bak", req.Key); len(vs) != 1 || vs[0].ETag != req.Listed.ETag {
			t.Fatalf("%s: %d versions; want one with the source's ETag", req.Key, len(vs))
		}
	}
	if m.read.Load() != m.taken.Load() {
		t.Errorf("read %d bytes from the source, wrote %d", m.read.Load(), m.taken.Load())
	}
	if got, limit := m.max.Load(), int64(partSize*concurrency); got > limit {
		t.Fatalf("held up to %d bytes at once; the bound is %d", got, limit)
	}
}

// An interrupted streamed upload is continued by the next invocation (verify mode, the upload
// record in the run bucket): the parts already uploaded are not streamed again, and the object
// completes with the source's ETag.
func TestStreamedMultipartResumes(t *testing.T) {
	src, dst := twoProviders()
	body := payload(9000, 3)
	o := putSource(t, src, "src", "k", body, 4000, 4000, 1000)
	store := &S3Uploads{S3: dst, Bucket: "run", Prefix: "uploads/"}
	req := Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: asListed("k", o), BackupDest: true, PriorListed: true}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst.Lose = func(op, _, _ string) error {
		if op == "UploadPart" {
			cancel()
		}
		return nil
	}
	_, err := New(dst, Options{Source: src, Sleep: noSleep, PartSize: 4096, PartConcurrency: 1, Uploads: store}).Copy(ctx, req)
	if !Interrupted(ctx, err) || dst.Count("UploadPart") != 1 || len(dst.OpenUploads()) != 1 {
		t.Fatalf("first invocation: err %v, %d parts, open %v; want interrupted after one part with its upload open", err, dst.Count("UploadPart"), dst.OpenUploads())
	}
	dst.Lose = nil

	req.Verify = true
	res, err := New(dst, Options{Source: src, Sleep: noSleep, PartSize: 4096, PartConcurrency: 1, Uploads: store}).Copy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if n := dst.Count("UploadPart"); n != 3 {
		t.Errorf("%d parts uploaded in all, want 3 (the retry skips the first)", n)
	}
	if n := dst.Count("CreateMultipartUpload"); n != 1 {
		t.Errorf("%d uploads created, want 1", n)
	}
	vs := dst.Versions("bak", "k")
	if len(vs) != 1 || !bytes.Equal(vs[0].Body, body) || vs[0].ETag != o.ETag || res.DestETag != o.ETag {
		t.Fatalf("%d versions, result %+v; want one, byte-identical, with the source's ETag %s", len(vs), res, o.ETag)
	}
	if open := dst.OpenUploads(); len(open) != 0 {
		t.Errorf("uploads left open: %v", open)
	}
}

// A destination client that cannot PutObject/UploadPart is a configuration error, not a panic.
func TestStreamedNeedsAWriter(t *testing.T) {
	src, dst := twoProviders()
	o := putSource(t, src, "src", "k", []byte("x"))
	_, err := New(headOnly{dst}, Options{Source: src, Sleep: noSleep}).Copy(context.Background(),
		Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: asListed("k", o)})
	var cfg *fault.ConfigError
	if !errors.As(err, &cfg) {
		t.Fatalf("err = %v, want a ConfigError", err)
	}
}

// headOnly is the destination as API alone, without the streaming writes.
type headOnly struct{ API }

// regionSource is the same provider's client for the source's Region: it counts the reads it
// serves, which go to the same fake server as the destination's.
type regionSource struct {
	*s3fake.S3
	reads atomic.Int64
}

func (r *regionSource) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	r.reads.Add(1)
	return r.S3.HeadObject(ctx, in, opts...)
}

func (r *regionSource) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	r.reads.Add(1)
	return r.S3.GetObject(ctx, in, opts...)
}

// With ServerSide, a source read through its own client (the same provider, another Region) is
// still copied server-side: CopyObject (or UploadPartCopy) through the destination's client,
// never a GET of the content; every look at the source goes through the source's client.
func TestServerSideWithSourceClient(t *testing.T) {
	for _, tt := range []struct {
		name  string
		parts []int
	}{{name: "single part"}, {name: "multipart", parts: []int{5 << 20, 1 << 20}}} {
		t.Run(tt.name, func(t *testing.T) {
			f := s3fake.New()
			f.AddBucket("src", false)
			f.AddBucket("bak", true)
			size := 6 << 20
			o := putSource(t, f, "src", "k", payload(size, 3), tt.parts...)
			src := &regionSource{S3: f}
			setup := len(f.Calls())
			res, err := New(f, Options{Source: src, ServerSide: true, Sleep: noSleep}).Copy(context.Background(),
				Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: asListed("k", o), BackupDest: true, Verify: true})
			if err != nil {
				t.Fatal(err)
			}
			vs := f.Versions("bak", "k")
			if len(vs) != 1 || !bytes.Equal(vs[0].Body, o.Body) || vs[0].ETag != o.ETag || res.Bytes != int64(size) {
				t.Fatalf("backup versions %d, result %+v", len(vs), res)
			}
			calls := f.Calls()[setup:]
			var copies, writes, contentReads, sourceReads int64
			for _, c := range calls {
				switch c {
				case "CopyObject bak/k", "UploadPartCopy bak/k":
					copies++
				case "PutObject bak/k", "UploadPart bak/k":
					writes++
				case "GetObject src/k":
					contentReads++
				}
				if c == "HeadObject src/k" || c == "GetObject src/k" {
					sourceReads++
				}
			}
			if copies == 0 || writes != 0 || contentReads != 0 {
				t.Errorf("not server-side: %v", calls)
			}
			if want := map[bool]int64{true: 1, false: 0}[tt.parts != nil]; sourceReads < want || sourceReads != src.reads.Load() {
				t.Errorf("%d reads of the source, %d through its client: %v", sourceReads, src.reads.Load(), calls)
			}
		})
	}
}
