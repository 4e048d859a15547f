// Package s3fake is a small in-memory S3 for unit tests: buckets with optional versioning and
// default encryption (under SSE-KMS every write gets a fresh ETag, as on AWS), the operations
// bucketvault's functions call (multipart copies included, with ListParts to continue one), a record of every call, injectable
// failures, and lost responses (the work done, the answer replaced by an error).
package s3fake

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Object is one stored version.
type Object struct {
	Body         []byte
	ETag         string
	LastModified time.Time
	ContentType  string
	Metadata     map[string]string
	// Headers are the other content headers a write set (Content-Encoding, Content-Disposition,
	// Content-Language, Cache-Control, Expires); copies keep them, HEAD and GET report them.
	Headers      Headers
	Tags         []types.Tag
	VersionID    string
	DeleteMarker bool
	// StorageClass GLACIER or DEEP_ARCHIVE makes the version unreadable until Thaw.
	StorageClass string
	// PartSizes are the sizes of the parts of an object uploaded in parts (PutMultipart,
	// CompleteMultipartUpload); empty for a single-part object.
	PartSizes []int64
	// ServerSideEncryption is the bucket's default encryption when the version was written.
	ServerSideEncryption types.ServerSideEncryption
	restore              string // x-amz-restore: "" (not requested), ongoing, or done
}

// Headers are an object's content headers other than Content-Type.
type Headers struct {
	ContentEncoding, ContentDisposition, ContentLanguage, CacheControl string
	Expires                                                            *time.Time
}

type bucket struct {
	versioned bool
	sse       types.ServerSideEncryption // default encryption; "" for none
	objects   map[string][]*Object       // versions, newest last
}

// S3 is the fake. Fail, when set, is consulted before every operation: a non-nil error is
// returned instead of performing it. Lose, when set, is consulted after every write that was
// performed (PutObject, CopyObject, DeleteObject and the multipart operations): a non-nil error is
// returned instead of its answer, as when the response is lost on its way back although the
// server did the work.
type S3 struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	uploads map[string]*upload
	calls   []string
	clock   time.Time
	seq     int
	Fail    func(op, bucket, key string) error
	Lose    func(op, bucket, key string) error
	// PageSize caps list pages (default 1000), so tests can cross page boundaries.
	PageSize int
}

// New returns an empty fake.
func New() *S3 {
	return &S3{buckets: map[string]*bucket{}, uploads: map[string]*upload{}, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// APIError builds an S3 error with a code, as the SDK returns them.
func APIError(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

// AddBucket creates a bucket.
func (f *S3) AddBucket(name string, versioned bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buckets[name] = &bucket{versioned: versioned, objects: map[string][]*Object{}}
}

// SetEncryption sets a bucket's default encryption for the versions written from now on. Under
// aws:kms and aws:kms:dsse every write (PUT, copy, multipart upload) gets a fresh ETag that is not
// the content's MD5 — a multipart one keeps its "-<parts>" suffix — as on AWS; under AES256 the
// ETag stays the MD5. HeadObject reports the encryption.
func (f *S3) SetEncryption(bucketName string, sse types.ServerSideEncryption) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buckets[bucketName].sse = sse
}

// Put stores an object directly (test setup), returning its ETag.
func (f *S3) Put(bucketName, key string, body []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := &Object{Body: body, ContentType: "binary/octet-stream"}
	f.store(f.buckets[bucketName], key, o)
	return o.ETag
}

// Archive moves every version of a bucket to an archive storage class.
func (f *S3) Archive(bucketName, class string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, vs := range f.buckets[bucketName].objects {
		for _, o := range vs {
			if !o.DeleteMarker {
				o.StorageClass = class
			}
		}
	}
}

// ThawAll completes every thaw that was requested: those versions become readable.
func (f *S3) ThawAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.buckets {
		for _, vs := range b.objects {
			for _, o := range vs {
				if o.restore == "ongoing" {
					o.restore = "done"
				}
			}
		}
	}
}

// Tick advances the fake clock, which stamps LastModified.
func (f *S3) Tick(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
	return f.clock
}

// Versions returns every stored version of a key, oldest first.
func (f *S3) Versions(bucketName, key string) []Object {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Object
	for _, o := range f.buckets[bucketName].objects[key] {
		out = append(out, *o)
	}
	return out
}

// Calls returns the operations performed, as "Op bucket/key".
func (f *S3) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Count returns how many calls of an operation were made.
func (f *S3) Count(op string) int {
	n := 0
	for _, c := range f.Calls() {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

func (f *S3) store(b *bucket, key string, o *Object) {
	f.seq++
	f.clock = f.clock.Add(time.Second)
	o.LastModified = f.clock
	if !o.DeleteMarker && o.ETag == "" {
		sum := md5.Sum(o.Body)
		o.ETag = `"` + hex.EncodeToString(sum[:]) + `"`
	}
	if !o.DeleteMarker {
		o.ServerSideEncryption = b.sse
		if b.sse == types.ServerSideEncryptionAwsKms || b.sse == types.ServerSideEncryptionAwsKmsDsse {
			o.ETag = kmsETag(o.ETag, f.seq)
		}
	}
	if b.versioned {
		o.VersionID = "v" + strconv.Itoa(f.seq)
		b.objects[key] = append(b.objects[key], o)
	} else {
		b.objects[key] = []*Object{o}
	}
}

// kmsETag is the ETag of write number seq under SSE-KMS: unique to the write, not the content's
// MD5, with the "-<parts>" suffix of a multipart ETag kept.
func kmsETag(etag string, seq int) string {
	sum := md5.Sum([]byte("sse-kms write " + strconv.Itoa(seq)))
	suffix := ""
	if i := strings.LastIndex(strings.Trim(etag, `"`), "-"); i >= 0 {
		suffix = strings.Trim(etag, `"`)[i:]
	}
	return `"` + hex.EncodeToString(sum[:]) + suffix + `"`
}

// lost returns the error that replaces the answer of a write that was performed, if any.
func (f *S3) lost(op, bucketName, key string) error {
	if f.Lose == nil {
		return nil
	}
	return f.Lose(op, bucketName, key)
}

func (f *S3) begin(op, bucketName, key string) (*bucket, error) {
	f.calls = append(f.calls, op+" "+bucketName+"/"+key)
	if f.Fail != nil {
		if err := f.Fail(op, bucketName, key); err != nil {
			return nil, err
		}
	}
	b := f.buckets[bucketName]
	if b == nil {
		return nil, APIError("NoSuchBucket")
	}
	return b, nil
}

// version returns the named version, or the current one when id is empty.
func version(b *bucket, key, id string) *Object {
	if id == "" {
		return current(b, key)
	}
	for _, o := range b.objects[key] {
		if o.VersionID == id {
			return o
		}
	}
	return nil
}

func readable(o *Object) bool {
	return (o.StorageClass != "GLACIER" && o.StorageClass != "DEEP_ARCHIVE") || o.restore == "done"
}

func current(b *bucket, key string) *Object {
	vs := b.objects[key]
	if len(vs) == 0 || vs[len(vs)-1].DeleteMarker {
		return nil
	}
	return vs[len(vs)-1]
}

// HeadBucket answers NotFound for a missing bucket.
func (f *S3) HeadBucket(_ context.Context, in *s3.HeadBucketInput, _ ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.begin("HeadBucket", aws.ToString(in.Bucket), ""); err != nil {
		if strings.Contains(err.Error(), "NoSuchBucket") {
			return nil, APIError("NotFound")
		}
		return nil, err
	}
	return &s3.HeadBucketOutput{}, nil
}

// GetBucketVersioning reports Enabled for versioned buckets.
func (f *S3) GetBucketVersioning(_ context.Context, in *s3.GetBucketVersioningInput, _ ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("GetBucketVersioning", aws.ToString(in.Bucket), "")
	if err != nil {
		return nil, err
	}
	out := &s3.GetBucketVersioningOutput{}
	if b.versioned {
		out.Status = types.BucketVersioningStatusEnabled
	}
	return out, nil
}

// ListObjectsV2 lists current objects in key order with Prefix, StartAfter and continuation.
func (f *S3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("ListObjectsV2", aws.ToString(in.Bucket), aws.ToString(in.Prefix))
	if err != nil {
		return nil, err
	}
	after := aws.ToString(in.StartAfter)
	if in.ContinuationToken != nil {
		after = *in.ContinuationToken
	}
	prefix, delim := aws.ToString(in.Prefix), aws.ToString(in.Delimiter)
	var keys []string
	for k := range b.objects {
		if strings.HasPrefix(k, prefix) && current(b, k) != nil {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	maxKeys := f.pageSize(int(aws.ToInt32(in.MaxKeys)))
	out := &s3.ListObjectsV2Output{}
	n, last := 0, ""
	for _, k := range keys {
		name, cp := rollUp(k, prefix, delim)
		if name <= after || (cp && name == last) {
			continue
		}
		if n == maxKeys {
			out.IsTruncated = aws.Bool(true)
			out.NextContinuationToken = aws.String(last)
			break
		}
		n, last = n+1, name
		if cp {
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(name)})
			continue
		}
		o := current(b, k)
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(int64(len(o.Body))), ETag: aws.String(o.ETag), LastModified: aws.Time(o.LastModified),
			StorageClass: types.ObjectStorageClass(storageClass(o))})
	}
	return out, nil
}

// rollUp is what a listing with Delimiter delim shows for key under prefix: the key itself, or
// (cp true) the common prefix it rolls up into — prefix and the rest of the key up to and
// including the first delim after prefix.
func rollUp(key, prefix, delim string) (name string, cp bool) {
	if delim == "" {
		return key, false
	}
	rest := strings.TrimPrefix(key, prefix)
	j := strings.Index(rest, delim)
	if j < 0 {
		return key, false
	}
	return prefix + rest[:j+len(delim)], true
}

func (f *S3) pageSize(asked int) int {
	n := 1000
	if asked > 0 {
		n = asked
	}
	if f.PageSize > 0 {
		n = min(n, f.PageSize)
	}
	return n
}

// ListObjectVersions lists every version and delete marker in key order, newest first per key,
// with KeyMarker/VersionIdMarker pagination, and with a Delimiter the common prefixes as S3 does:
// each counts once against the page, and a page that ends on one has it as NextKeyMarker.
func (f *S3) ListObjectVersions(_ context.Context, in *s3.ListObjectVersionsInput, _ ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("ListObjectVersions", aws.ToString(in.Bucket), aws.ToString(in.Prefix))
	if err != nil {
		return nil, err
	}
	prefix, delim, marker := aws.ToString(in.Prefix), aws.ToString(in.Delimiter), aws.ToString(in.KeyMarker)
	var keys []string
	for k := range b.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := &s3.ListObjectVersionsOutput{}
	limit := f.pageSize(int(aws.ToInt32(in.MaxKeys)))
	n := 0
	started := in.VersionIdMarker == nil
	var lastKey, lastVersion string
	lastCP := false
	full := func() bool {
		if n < limit {
			return false
		}
		out.IsTruncated, out.NextKeyMarker = aws.Bool(true), aws.String(lastKey)
		if !lastCP {
			out.NextVersionIdMarker = aws.String(lastVersion)
		}
		return true
	}
	for _, k := range keys {
		if name, cp := rollUp(k, prefix, delim); cp {
			if name <= marker || (lastCP && name == lastKey) {
				continue
			}
			if full() {
				return out, nil
			}
			n, lastKey, lastCP = n+1, name, true
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(name)})
			continue
		}
		if k < marker || (k == marker && in.VersionIdMarker == nil) {
			continue // KeyMarker alone: keys after it
		}
		vs := b.objects[k]
		for i := len(vs) - 1; i >= 0; i-- {
			o := vs[i]
			if !started {
				started = k == marker && o.VersionID == aws.ToString(in.VersionIdMarker)
				continue
			}
			if full() {
				return out, nil
			}
			n, lastKey, lastVersion, lastCP = n+1, k, o.VersionID, false
			latest := i == len(vs)-1
			if o.DeleteMarker {
				out.DeleteMarkers = append(out.DeleteMarkers, types.DeleteMarkerEntry{Key: aws.String(k), VersionId: aws.String(o.VersionID), IsLatest: aws.Bool(latest), LastModified: aws.Time(o.LastModified)})
				continue
			}
			out.Versions = append(out.Versions, types.ObjectVersion{Key: aws.String(k), VersionId: aws.String(o.VersionID), IsLatest: aws.Bool(latest),
				LastModified: aws.Time(o.LastModified), Size: aws.Int64(int64(len(o.Body))), ETag: aws.String(o.ETag), StorageClass: types.ObjectVersionStorageClass(storageClass(o))})
		}
	}
	return out, nil
}

func storageClass(o *Object) string {
	if o.StorageClass == "" {
		return "STANDARD"
	}
	return o.StorageClass
}

// RestoreObject starts thawing an archived version.
func (f *S3) RestoreObject(_ context.Context, in *s3.RestoreObjectInput, _ ...func(*s3.Options)) (*s3.RestoreObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("RestoreObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	if err != nil {
		return nil, err
	}
	o := version(b, aws.ToString(in.Key), aws.ToString(in.VersionId))
	switch {
	case o == nil:
		return nil, APIError("NoSuchKey")
	case o.StorageClass != "GLACIER" && o.StorageClass != "DEEP_ARCHIVE":
		return nil, APIError("InvalidObjectState")
	case o.restore == "ongoing":
		return nil, APIError("RestoreAlreadyInProgress")
	}
	o.restore = "ongoing"
	return &s3.RestoreObjectOutput{}, nil
}

// PutObject stores an object.
func (f *S3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("PutObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	tags, err := parseTagging(in.Tagging)
	if err != nil {
		return nil, err
	}
	if err := checkBody(body, in.ContentLength, in.ContentMD5); err != nil {
		return nil, err
	}
	o := &Object{Body: body, ContentType: aws.ToString(in.ContentType), Metadata: in.Metadata, Tags: tags,
		Headers: Headers{aws.ToString(in.ContentEncoding), aws.ToString(in.ContentDisposition), aws.ToString(in.ContentLanguage), aws.ToString(in.CacheControl), in.Expires}}
	f.store(b, aws.ToString(in.Key), o)
	if err := f.lost("PutObject", aws.ToString(in.Bucket), aws.ToString(in.Key)); err != nil {
		return nil, err
	}
	return &s3.PutObjectOutput{ETag: aws.String(o.ETag), ServerSideEncryption: o.ServerSideEncryption, VersionId: optionalString(o.VersionID)}, nil
}

// GetObject returns the current version, or the one named by VersionId. IfMatch, PartNumber (of
// an object uploaded in parts; part 1 of a single-part object is all of it) and Range
// ("bytes=first-last") are honoured as S3 does; the answer carries the content headers,
// metadata, encryption and tag count.
func (f *S3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("GetObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	if err != nil {
		return nil, err
	}
	var o *Object
	if in.VersionId != nil {
		// A version asked for by id, as S3 reads it: a delete marker cannot be read.
		o = version(b, aws.ToString(in.Key), *in.VersionId)
		switch {
		case o == nil:
			return nil, APIError("NoSuchVersion")
		case o.DeleteMarker:
			return nil, APIError("MethodNotAllowed")
		}
	} else if o = current(b, aws.ToString(in.Key)); o == nil {
		return nil, APIError("NoSuchKey")
	}
	if in.IfMatch != nil && *in.IfMatch != o.ETag {
		return nil, APIError("PreconditionFailed")
	}
	body := o.Body
	out := &s3.GetObjectOutput{ETag: aws.String(o.ETag), VersionId: in.VersionId, LastModified: aws.Time(o.LastModified),
		ContentType: aws.String(o.ContentType), Metadata: o.Metadata, ServerSideEncryption: o.ServerSideEncryption}
	o.Headers.set(&out.ContentEncoding, &out.ContentDisposition, &out.ContentLanguage, &out.CacheControl, &out.ExpiresString)
	if len(o.Tags) > 0 {
		out.TagCount = aws.Int32(int32(len(o.Tags)))
	}
	if n := aws.ToInt32(in.PartNumber); n > 0 {
		switch {
		case len(o.PartSizes) > 0 && int(n) <= len(o.PartSizes):
			var first int64
			for _, s := range o.PartSizes[:n-1] {
				first += s
			}
			body = body[first : first+o.PartSizes[n-1]]
			out.PartsCount = aws.Int32(int32(len(o.PartSizes)))
		case len(o.PartSizes) > 0 || n > 1:
			return nil, APIError("InvalidPartNumber")
		}
	}
	if r := aws.ToString(in.Range); r != "" {
		var first, last int
		if _, err := fmt.Sscanf(r, "bytes=%d-%d", &first, &last); err != nil || first < 0 || last < first || first >= len(body) {
			return nil, APIError("InvalidRange")
		}
		last = min(last, len(body)-1)
		out.ContentRange = aws.String(fmt.Sprintf("bytes %d-%d/%d", first, last, len(body)))
		body = body[first : last+1]
	}
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), aws.Int64(int64(len(body)))
	return out, nil
}

// set copies the headers into an answer's fields, leaving unset ones nil.
func (h Headers) set(encoding, disposition, language, cacheControl, expires **string) {
	for _, p := range []struct {
		dst **string
		v   string
	}{{encoding, h.ContentEncoding}, {disposition, h.ContentDisposition}, {language, h.ContentLanguage}, {cacheControl, h.CacheControl}} {
		if p.v != "" {
			*p.dst = aws.String(p.v)
		}
	}
	if h.Expires != nil {
		*expires = aws.String(h.Expires.UTC().Format(http.TimeFormat))
	}
}

// checkBody answers as S3 does for a body that is not the ContentLength or ContentMD5 it was
// sent with: IncompleteBody, BadDigest.
func checkBody(body []byte, length *int64, contentMD5 *string) error {
	if length != nil && *length != int64(len(body)) {
		return APIError("IncompleteBody")
	}
	if contentMD5 != nil {
		sum := md5.Sum(body)
		if base64.StdEncoding.EncodeToString(sum[:]) != *contentMD5 {
			return APIError("BadDigest")
		}
	}
	return nil
}

// HeadObject describes the current version; IfMatch is honoured.
func (f *S3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("HeadObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	if err != nil {
		return nil, err
	}
	o := version(b, aws.ToString(in.Key), aws.ToString(in.VersionId))
	if o == nil || o.DeleteMarker {
		return nil, APIError("NotFound")
	}
	if in.IfMatch != nil && *in.IfMatch != o.ETag {
		return nil, APIError("PreconditionFailed")
	}
	out := &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(o.Body))), ETag: aws.String(o.ETag), LastModified: aws.Time(o.LastModified),
		ContentType: aws.String(o.ContentType), Metadata: o.Metadata, VersionId: aws.String(o.VersionID)}
	o.Headers.set(&out.ContentEncoding, &out.ContentDisposition, &out.ContentLanguage, &out.CacheControl, &out.ExpiresString)
	if n := aws.ToInt32(in.PartNumber); n > 0 {
		// A part of an object uploaded in parts; part 1 of a single-part object is all of it.
		switch {
		case len(o.PartSizes) > 0 && int(n) <= len(o.PartSizes):
			out.ContentLength = aws.Int64(o.PartSizes[n-1])
			out.PartsCount = aws.Int32(int32(len(o.PartSizes)))
		case len(o.PartSizes) > 0 || n > 1:
			return nil, APIError("InvalidPartNumber")
		}
	}
	if o.StorageClass != "" {
		out.StorageClass = types.StorageClass(o.StorageClass)
	}
	out.ServerSideEncryption = o.ServerSideEncryption
	switch o.restore {
	case "ongoing":
		out.Restore = aws.String(`ongoing-request="true"`)
	case "done":
		out.Restore = aws.String(`ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`)
	}
	return out, nil
}

// CopyObject copies the current version, honouring CopySourceIfMatch.
func (f *S3) CopyObject(_ context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("CopyObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	if err != nil {
		return nil, err
	}
	src, err := f.copySource(aws.ToString(in.CopySource), in.CopySourceIfMatch)
	if err != nil {
		return nil, err
	}
	o := &Object{Body: src.Body, ETag: src.ETag, ContentType: src.ContentType, Metadata: src.Metadata, Tags: src.Tags, PartSizes: src.PartSizes, Headers: src.Headers}
	f.store(b, aws.ToString(in.Key), o)
	if err := f.lost("CopyObject", aws.ToString(in.Bucket), aws.ToString(in.Key)); err != nil {
		return nil, err
	}
	return &s3.CopyObjectOutput{CopyObjectResult: &types.CopyObjectResult{ETag: aws.String(o.ETag)}}, nil
}

// DeleteObject puts a delete marker (versioned) or removes the object.
func (f *S3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("DeleteObject", aws.ToString(in.Bucket), aws.ToString(in.Key))
	if err != nil {
		return nil, err
	}
	if b.versioned {
		f.store(b, aws.ToString(in.Key), &Object{DeleteMarker: true})
	} else {
		delete(b.objects, aws.ToString(in.Key))
	}
	if err := f.lost("DeleteObject", aws.ToString(in.Bucket), aws.ToString(in.Key)); err != nil {
		return nil, err
	}
	return &s3.DeleteObjectOutput{}, nil
}

// GetObjectTagging returns the current version's tags.
func (f *S3) GetObjectTagging(_ context.Context, in *s3.GetObjectTaggingInput, _ ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.begin("GetObjectTagging", aws.ToString(in.Bucket), aws.ToString(in.Key))
	if err != nil {
		return nil, err
	}
	o := version(b, aws.ToString(in.Key), aws.ToString(in.VersionId))
	if o == nil || o.DeleteMarker {
		return nil, APIError("NoSuchKey")
	}
	return &s3.GetObjectTaggingOutput{TagSet: o.Tags, VersionId: in.VersionId}, nil
}

// PutTagged stores an object with tags directly (test setup), returning its ETag.
func (f *S3) PutTagged(bucketName, key string, body []byte, tags map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := &Object{Body: body, ContentType: "binary/octet-stream"}
	for k, v := range tags {
		o.Tags = append(o.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	f.store(f.buckets[bucketName], key, o)
	return o.ETag
}

// parseTagging reads the x-amz-tagging of a write (URL query form: k1=v1&k2=v2), as S3 does.
func parseTagging(tagging *string) ([]types.Tag, error) {
	if aws.ToString(tagging) == "" {
		return nil, nil
	}
	v, err := url.ParseQuery(aws.ToString(tagging))
	if err != nil {
		return nil, APIError("InvalidTag")
	}
	var tags []types.Tag
	for k, vals := range v {
		for _, val := range vals {
			tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(val)})
		}
	}
	return tags, nil
}

// upload is an open multipart upload.
type upload struct {
	bucket, key string
	create      *s3.CreateMultipartUploadInput
	parts       map[int32][]byte
}

// PutMultipart stores an object as if uploaded in the given parts (test setup), returning its
// multipart ETag ("<md5 of the parts' md5s>-<parts>").
func (f *S3) PutMultipart(bucketName, key string, parts ...[]byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := &Object{ContentType: "binary/octet-stream"}
	assemble(o, parts)
	f.store(f.buckets[bucketName], key, o)
	return o.ETag
}

// assemble sets o's body, part sizes and multipart ETag from its parts.
func assemble(o *Object, parts [][]byte) {
	var sums []byte
	for _, p := range parts {
		o.Body = append(o.Body, p...)
		o.PartSizes = append(o.PartSizes, int64(len(p)))
		sum := md5.Sum(p)
		sums = append(sums, sum[:]...)
	}
	sum := md5.Sum(sums)
	o.ETag = fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sum[:]), len(parts))
}

// OpenUploads returns the ids of the multipart uploads neither completed nor aborted.
func (f *S3) OpenUploads() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.uploads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// CreateMultipartUpload opens an upload.
func (f *S3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.begin("CreateMultipartUpload", aws.ToString(in.Bucket), aws.ToString(in.Key)); err != nil {
		return nil, err
	}
	f.seq++
	id := "upload-" + strconv.Itoa(f.seq)
	f.uploads[id] = &upload{bucket: aws.ToString(in.Bucket), key: aws.ToString(in.Key), create: in, parts: map[int32][]byte{}}
	if err := f.lost("CreateMultipartUpload", aws.ToString(in.Bucket), aws.ToString(in.Key)); err != nil {
		return nil, err
	}
	return &s3.CreateMultipartUploadOutput{Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(id)}, nil
}

// openUpload returns the upload named by id for bucket/key, or NoSuchUpload.
func (f *S3) openUpload(id *string, bucketName, key string) (*upload, error) {
	up := f.uploads[aws.ToString(id)]
	if up == nil || up.bucket != bucketName || up.key != key {
		return nil, APIError("NoSuchUpload")
	}
	return up, nil
}

// UploadPartCopy copies a byte range of the source's current (or named) version into a part,
// honouring CopySourceIfMatch.
func (f *S3) UploadPartCopy(_ context.Context, in *s3.UploadPartCopyInput, _ ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bucketName, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
	if _, err := f.begin("UploadPartCopy", bucketName, key); err != nil {
		return nil, err
	}
	up, err := f.openUpload(in.UploadId, bucketName, key)
	if err != nil {
		return nil, err
	}
	src, err := f.copySource(aws.ToString(in.CopySource), in.CopySourceIfMatch)
	if err != nil {
		return nil, err
	}
	body := src.Body
	if r := aws.ToString(in.CopySourceRange); r != "" {
		var first, last int
		if _, err := fmt.Sscanf(r, "bytes=%d-%d", &first, &last); err != nil || first < 0 || last < first || last >= len(body) {
			return nil, APIError("InvalidRange")
		}
		body = body[first : last+1]
	}
	up.parts[aws.ToInt32(in.PartNumber)] = body
	if err := f.lost("UploadPartCopy", bucketName, key); err != nil {
		return nil, err
	}
	sum := md5.Sum(body)
	return &s3.UploadPartCopyOutput{CopyPartResult: &types.CopyPartResult{ETag: aws.String(`"` + hex.EncodeToString(sum[:]) + `"`)}}, nil
}

// UploadPart stores a part of an open upload, answering BadDigest for a body that is not its
// Content-MD5 and IncompleteBody for one that is not its ContentLength. The answer's ETag is the
// part's MD5 (also under SSE-KMS, as UploadPartCopy's), with the bucket's default encryption.
func (f *S3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bucketName, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
	b, err := f.begin("UploadPart", bucketName, key)
	if err != nil {
		return nil, err
	}
	up, err := f.openUpload(in.UploadId, bucketName, key)
	if err != nil {
		return nil, err
	}
	var body []byte
	if in.Body != nil {
		if body, err = io.ReadAll(in.Body); err != nil {
			return nil, err
		}
	}
	if err := checkBody(body, in.ContentLength, in.ContentMD5); err != nil {
		return nil, err
	}
	up.parts[aws.ToInt32(in.PartNumber)] = body
	if err := f.lost("UploadPart", bucketName, key); err != nil {
		return nil, err
	}
	sum := md5.Sum(body)
	return &s3.UploadPartOutput{ETag: aws.String(`"` + hex.EncodeToString(sum[:]) + `"`), ServerSideEncryption: b.sse}, nil
}

// CompleteMultipartUpload assembles the listed parts into a new version, with the content
// headers, metadata and tags the upload was created with.
func (f *S3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bucketName, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
	b, err := f.begin("CompleteMultipartUpload", bucketName, key)
	if err != nil {
		return nil, err
	}
	up, err := f.openUpload(in.UploadId, bucketName, key)
	if err != nil {
		return nil, err
	}
	if in.MultipartUpload == nil || len(in.MultipartUpload.Parts) == 0 {
		return nil, APIError("MalformedXML")
	}
	var parts [][]byte
	for i, p := range in.MultipartUpload.Parts {
		n := aws.ToInt32(p.PartNumber)
		body, ok := up.parts[n]
		if i > 0 && n <= aws.ToInt32(in.MultipartUpload.Parts[i-1].PartNumber) {
			return nil, APIError("InvalidPartOrder")
		}
		sum := md5.Sum(body)
		if !ok || aws.ToString(p.ETag) != `"`+hex.EncodeToString(sum[:])+`"` {
			return nil, APIError("InvalidPart")
		}
		parts = append(parts, body)
	}
	tags, err := parseTagging(up.create.Tagging)
	if err != nil {
		return nil, err
	}
	c := up.create
	o := &Object{ContentType: aws.ToString(c.ContentType), Metadata: c.Metadata, Tags: tags,
		Headers: Headers{aws.ToString(c.ContentEncoding), aws.ToString(c.ContentDisposition), aws.ToString(c.ContentLanguage), aws.ToString(c.CacheControl), c.Expires}}
	assemble(o, parts)
	f.store(b, key, o)
	delete(f.uploads, aws.ToString(in.UploadId))
	if err := f.lost("CompleteMultipartUpload", bucketName, key); err != nil {
		return nil, err
	}
	return &s3.CompleteMultipartUploadOutput{Bucket: in.Bucket, Key: in.Key, ETag: aws.String(o.ETag), VersionId: optionalString(o.VersionID), ServerSideEncryption: o.ServerSideEncryption}, nil
}

// ListParts lists the parts of an open upload in part-number order, with their ETags and
// sizes, MaxParts (and PageSize) at a time from after PartNumberMarker; NoSuchUpload once the
// upload is completed or aborted.
func (f *S3) ListParts(_ context.Context, in *s3.ListPartsInput, _ ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bucketName, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
	if _, err := f.begin("ListParts", bucketName, key); err != nil {
		return nil, err
	}
	up, err := f.openUpload(in.UploadId, bucketName, key)
	if err != nil {
		return nil, err
	}
	after := 0
	if m := aws.ToString(in.PartNumberMarker); m != "" {
		if after, err = strconv.Atoi(m); err != nil {
			return nil, APIError("InvalidArgument")
		}
	}
	var numbers []int
	for n := range up.parts {
		if int(n) > after {
			numbers = append(numbers, int(n))
		}
	}
	sort.Ints(numbers)
	out := &s3.ListPartsOutput{Bucket: in.Bucket, Key: in.Key, UploadId: in.UploadId}
	if limit := f.pageSize(int(aws.ToInt32(in.MaxParts))); len(numbers) > limit {
		numbers = numbers[:limit]
		out.IsTruncated = aws.Bool(true)
		out.NextPartNumberMarker = aws.String(strconv.Itoa(numbers[len(numbers)-1]))
	}
	for _, n := range numbers {
		body := up.parts[int32(n)]
		sum := md5.Sum(body)
		out.Parts = append(out.Parts, types.Part{PartNumber: aws.Int32(int32(n)), ETag: aws.String(`"` + hex.EncodeToString(sum[:]) + `"`), Size: aws.Int64(int64(len(body)))})
	}
	return out, nil
}

// AbortMultipartUpload discards an open upload and its parts.
func (f *S3) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bucketName, key := aws.ToString(in.Bucket), aws.ToString(in.Key)
	if _, err := f.begin("AbortMultipartUpload", bucketName, key); err != nil {
		return nil, err
	}
	if _, err := f.openUpload(in.UploadId, bucketName, key); err != nil {
		return nil, err
	}
	delete(f.uploads, aws.ToString(in.UploadId))
	if err := f.lost("AbortMultipartUpload", bucketName, key); err != nil {
		return nil, err
	}
	return &s3.AbortMultipartUploadOutput{}, nil
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// copySource is the version an x-amz-copy-source names, readable and (with ifMatch) of that
// ETag, or S3's error: NoSuchBucket, NoSuchKey, InvalidObjectState, PreconditionFailed.
func (f *S3) copySource(copySource string, ifMatch *string) (*Object, error) {
	srcBucket, srcKey, srcVersion, err := parseCopySource(copySource)
	if err != nil {
		return nil, err
	}
	sb := f.buckets[srcBucket]
	if sb == nil {
		return nil, APIError("NoSuchBucket")
	}
	src := version(sb, srcKey, srcVersion)
	switch {
	case src == nil || src.DeleteMarker:
		return nil, APIError("NoSuchKey")
	case !readable(src):
		return nil, APIError("InvalidObjectState")
	case ifMatch != nil && *ifMatch != src.ETag:
		return nil, APIError("PreconditionFailed")
	}
	return src, nil
}

func parseCopySource(s string) (bucketName, key, versionID string, err error) {
	s, rawVersion, _ := strings.Cut(s, "?versionId=")
	bucketName, rawKey, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", "", fmt.Errorf("s3fake: copy source %q has no key", s)
	}
	if key, err = url.PathUnescape(rawKey); err != nil {
		return "", "", "", err
	}
	versionID, err = url.QueryUnescape(rawVersion)
	return bucketName, key, versionID, err
}

// Coarse lists versions with LastModified cut to Precision, as AWS cuts it to the second, so that
// versions and delete markers the fake writes within Precision of each other tie (the fake's clock
// is finer than AWS's listing).
type Coarse struct {
	*S3
	Precision time.Duration
}

// ListObjectVersions is the fake's, with every LastModified truncated to c.Precision.
func (c Coarse) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	out, err := c.S3.ListObjectVersions(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	for i := range out.Versions {
		out.Versions[i].LastModified = aws.Time(out.Versions[i].LastModified.Truncate(c.Precision))
	}
	for i := range out.DeleteMarkers {
		out.DeleteMarkers[i].LastModified = aws.Time(out.DeleteMarkers[i].LastModified.Truncate(c.Precision))
	}
	return out, nil
}
