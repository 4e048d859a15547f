package s3copy

// Streamed copies (Options.Source): the source is read through a client of its own and the
// content passes through the Copier, because no server-side copy reaches from one provider to
// another. What a server-side copy keeps is kept: the content headers, the user metadata and the
// tags are written with the PUT or with CreateMultipartUpload, storage class and encryption follow
// the destination bucket's defaults (as CopyObject without those headers does), and a multipart
// source is uploaded along its own part boundaries, so the destination's ETag is the source's.
//
// Memory: a body of at most Options.PartSize (a small object, or a part) is read into a buffer
// and sent with its Content-MD5, which the server verifies; all such buffers together stay within
// PartSize × PartConcurrency bytes (a weighted semaphore). A larger body (a single-part object
// above PartSize, or a source part above it) is streamed without a buffer, with an unsigned
// payload and a known length, and checked after.
//
// End-to-end checks, each failing with a *ContentMismatchError (ErrContentMismatch) that names
// both digests:
//   - a single-part source whose ETag is its MD5 (not SSE-KMS, not SSE-C): what was read must have
//     that MD5; the PUT carries it as Content-MD5, so the server refuses any other bytes;
//   - a multipart source of that kind, before CompleteMultipartUpload: the parts' MD5s must
//     compose to the source's ETag ("md5 of the part MD5s-count"), so no corrupted version lands;
//   - after the write, when the destination is not SSE-KMS: its ETag must be the MD5 of what was
//     sent (of each part, and of the whole upload);
//   - every GET is conditioned on the listed ETag (If-Match), so a source overwritten mid-copy
//     fails the GET with PreconditionFailed and Copy copies the new content or reports Vanished,
//     as it does for server-side copies.
// Where both sides are SSE-KMS there is no digest to compare with: the Content-MD5 of each
// buffered body, lengths, TLS and the SDK's validation of a whole-object GET's checksum
// (ChecksumMode) remain.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/semaphore"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// SourceAPI is what a streamed copy needs of the source's client (Options.Source).
type SourceAPI interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
}

// StreamAPI is what a streamed copy needs of the destination's client besides API.
type StreamAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
}

var (
	_ SourceAPI = (*s3.Client)(nil)
	_ StreamAPI = (*s3.Client)(nil)
)

// sourceReader is what every copy reads of the source through the Copier's source client.
type sourceReader interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
}

// ErrContentMismatch is matched (errors.Is) by every *ContentMismatchError.
var ErrContentMismatch = errors.New("streamed content does not match the source")

// ContentMismatchError means a streamed copy's content check failed: what was read or written
// does not have the source's digest. Written says whether the destination got a version anyway
// (a check made after the write); its ETag then differs from the source's, so the next run
// copies the object again.
type ContentMismatchError struct {
	Bucket, Key string // the destination
	// Source is the source's ETag; Copied the digest of the copied content in the same form.
	Source, Copied string
	// Stage is which check failed.
	Stage   string
	Written bool
}

func (e *ContentMismatchError) Error() string {
	landed := "nothing was written"
	if e.Written {
		landed = "the destination holds the copy; the next run copies it again"
	}
	return fmt.Sprintf("s3://%s/%s: content check failed %s: source ETag %s, copied content %s; %s",
		e.Bucket, e.Key, e.Stage, e.Source, e.Copied, landed)
}

// Is matches ErrContentMismatch.
func (e *ContentMismatchError) Is(target error) bool { return target == ErrContentMismatch }

// streamer writes streamed copies and bounds their buffers.
type streamer struct {
	put      StreamAPI // nil when the destination client cannot stream
	mem      *semaphore.Weighted
	partSize int64
}

func newStreamer(api API, opts Options) *streamer {
	put, _ := api.(StreamAPI)
	return &streamer{put: put, mem: semaphore.NewWeighted(opts.PartSize * int64(opts.PartConcurrency)), partSize: opts.PartSize}
}

// writer returns the destination client's streaming writes, or a ConfigError.
func (s *streamer) writer() (StreamAPI, error) {
	if s.put == nil {
		return nil, &fault.ConfigError{Msg: "s3copy: Options.Source is set but the destination client has no PutObject/UploadPart (StreamAPI)"}
	}
	return s.put, nil
}

// body is a source body ready to send: buffered (with its MD5 known) or streamed (hashed as it
// is read).
type body struct {
	r       io.Reader
	sum     []byte      // MD5, known up front for a buffered body
	h       *hashReader // streamed: digests what the write read
	release func()
}

// read prepares size bytes of src to send: into a buffer charged to the memory budget when size
// is at most PartSize, else streamed.
func (s *streamer) read(ctx context.Context, src io.Reader, size int64) (*body, error) {
	if size > s.partSize {
		h := &hashReader{r: src, h: md5.New()}
		return &body{r: h, h: h, release: func() {}}, nil
	}
	if err := s.mem.Acquire(ctx, size); err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(src, buf); err != nil {
		s.mem.Release(size)
		return nil, fmt.Errorf("read source: %w", err)
	}
	sum := md5.Sum(buf)
	return &body{r: bytes.NewReader(buf), sum: sum[:], release: func() { s.mem.Release(size) }}, nil
}

// digest returns the MD5 of what was sent, once the write is done, or an error when a streamed
// body was not read to its length.
func (b *body) digest(size int64) ([]byte, error) {
	if b.h == nil {
		return b.sum, nil
	}
	if b.h.n != size {
		return nil, fmt.Errorf("read %d of %d bytes of the source", b.h.n, size)
	}
	return b.h.h.Sum(nil), nil
}

// options are the write's request options: a buffered body may be retried by the SDK (it
// rewinds); a streamed one cannot be, and is sent with an unsigned payload, since SigV4 over
// plain http would otherwise hash it before sending. The Content-MD5 still covers it when known.
func (b *body) options(counter *s3client.RetryCounter) []func(*s3.Options) {
	if b.h == nil {
		return []func(*s3.Options){counter.Option()}
	}
	return []func(*s3.Options){counter.Option(), s3client.NoRetry(), s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)}
}

// hashReader digests what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// encrypted reports whether an object's ETag is not its MD5: SSE-KMS, DSSE-KMS or SSE-C.
func encrypted(sse types.ServerSideEncryption, customer *string) bool {
	return sse == types.ServerSideEncryptionAwsKms || sse == types.ServerSideEncryptionAwsKmsDsse || aws.ToString(customer) != ""
}

// plainMD5 returns the MD5 a single-part source's ETag is, or nil when it is not one.
func plainMD5(etag string, enc bool) []byte {
	if enc || change.IsMultipart(etag) {
		return nil
	}
	sum, err := hex.DecodeString(change.NormalizeETag(etag))
	if err != nil || len(sum) != md5.Size {
		return nil
	}
	return sum
}

func b64(sum []byte) *string { return aws.String(base64.StdEncoding.EncodeToString(sum)) }

// putStreamed copies a single-part object (or one below Threshold) with one GET and one PUT.
func (c *Copier) putStreamed(ctx context.Context, req Request, want change.Object) (Result, error) {
	put, err := c.stream.writer()
	if err != nil {
		return Result{}, err
	}
	opt := req.Retries.Option()
	get, err := c.opts.Source.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(req.SourceBucket), Key: aws.String(req.Key), VersionId: optional(req.SourceVersionID),
		IfMatch: aws.String(want.ETag), ChecksumMode: types.ChecksumModeEnabled,
	}, opt)
	if err != nil {
		return Result{}, err
	}
	defer get.Body.Close()
	if n := aws.ToInt64(get.ContentLength); n != want.Size {
		return Result{}, fmt.Errorf("source %q: GET answered %d bytes, listed %d", req.Key, n, want.Size)
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(req.DestBucket), Key: aws.String(req.DestKey), ContentLength: aws.Int64(want.Size),
		ContentType: get.ContentType, ContentEncoding: get.ContentEncoding, ContentDisposition: get.ContentDisposition,
		ContentLanguage: get.ContentLanguage, CacheControl: get.CacheControl, Metadata: get.Metadata,
		Expires: expires(get.ExpiresString),
	}
	if aws.ToInt32(get.TagCount) > 0 {
		if in.Tagging, err = c.sourceTagging(ctx, req, opt); err != nil {
			return Result{}, err
		}
	}
	expect := plainMD5(want.ETag, encrypted(get.ServerSideEncryption, get.SSECustomerAlgorithm))
	mismatch := func(got []byte, stage string, written bool) error {
		return &ContentMismatchError{Bucket: req.DestBucket, Key: req.DestKey, Source: want.ETag, Copied: `"` + hex.EncodeToString(got) + `"`, Stage: stage, Written: written}
	}
	b, err := c.stream.read(ctx, get.Body, want.Size)
	if err != nil {
		return Result{}, err
	}
	defer b.release()
	if b.sum != nil && expect != nil && !bytes.Equal(b.sum, expect) {
		return Result{}, mismatch(b.sum, "reading the source", false)
	}
	in.Body, in.ContentMD5 = b.r, b64(b.sum)
	if b.sum == nil && expect != nil {
		in.ContentMD5 = b64(expect) // the server refuses any other bytes
	}
	out, err := put.PutObject(ctx, in, append(b.options(req.Retries), s3client.NoRetry())...) // copyRetrying retries it after a look
	sum, serr := b.digest(want.Size)
	switch {
	case serr == nil && expect != nil && !bytes.Equal(sum, expect):
		return Result{}, errors.Join(mismatch(sum, "reading the source", err == nil), err)
	case err != nil:
		return Result{}, err
	case serr != nil:
		return Result{}, serr
	}
	if !encrypted(out.ServerSideEncryption, out.SSECustomerAlgorithm) && change.NormalizeETag(aws.ToString(out.ETag)) != hex.EncodeToString(sum) {
		return Result{}, &ContentMismatchError{Bucket: req.DestBucket, Key: req.DestKey, Source: want.ETag, Copied: aws.ToString(out.ETag),
			Stage: "comparing the destination's ETag with the MD5 sent", Written: true}
	}
	return Result{Outcome: Copied, Bytes: want.Size, DestETag: aws.ToString(out.ETag)}, nil
}

// uploadPart streams part n of rec's upload (size bytes from first) and returns its ETag.
func (c *Copier) uploadPart(ctx context.Context, req Request, rec UploadRecord, n int32, first, size int64, sums *partSums) (string, error) {
	put, err := c.stream.writer()
	if err != nil {
		return "", err
	}
	src := io.Reader(bytes.NewReader(nil))
	if size > 0 {
		get, err := c.opts.Source.GetObject(ctx, &s3.GetObjectInput{
			Bucket: aws.String(req.SourceBucket), Key: aws.String(req.Key), VersionId: optional(req.SourceVersionID),
			IfMatch: aws.String(rec.SourceETag), Range: aws.String(fmt.Sprintf("bytes=%d-%d", first, first+size-1)),
		}, req.Retries.Option())
		if err != nil {
			return "", err
		}
		defer get.Body.Close()
		if got := aws.ToInt64(get.ContentLength); got != size {
			return "", fmt.Errorf("source %q: GET of bytes %d-%d answered %d bytes", req.Key, first, first+size-1, got)
		}
		sums.source(encrypted(get.ServerSideEncryption, get.SSECustomerAlgorithm))
		src = get.Body
	}
	b, err := c.stream.read(ctx, src, size)
	if err != nil {
		return "", err
	}
	defer b.release()
	out, err := put.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(rec.Bucket), Key: aws.String(rec.Key), UploadId: aws.String(rec.UploadID), PartNumber: aws.Int32(n),
		Body: b.r, ContentLength: aws.Int64(size), ContentMD5: optionalSum(b.sum),
	}, b.options(req.Retries)...)
	if err != nil {
		return "", err
	}
	sum, err := b.digest(size)
	if err != nil {
		return "", err
	}
	enc := encrypted(out.ServerSideEncryption, out.SSECustomerAlgorithm)
	sums.set(n, sum, enc)
	if !enc && change.NormalizeETag(aws.ToString(out.ETag)) != hex.EncodeToString(sum) {
		return "", &ContentMismatchError{Bucket: rec.Bucket, Key: rec.Key, Source: rec.SourceETag, Copied: aws.ToString(out.ETag),
			Stage: fmt.Sprintf("comparing part %d's ETag with the MD5 sent %s", n, hex.EncodeToString(sum))}
	}
	return aws.ToString(out.ETag), nil
}

func optionalSum(sum []byte) *string {
	if sum == nil {
		return nil
	}
	return b64(sum)
}

// partSums are the MD5s of the parts a streamed upload sent in this attempt, and whether any of
// them showed the source or the destination encrypted so that ETags are not MD5s.
type partSums struct {
	mu                   sync.Mutex
	md5                  [][]byte // by part index; nil for a part not sent in this attempt
	streamed             bool
	srcEncrypted, dstEnc bool
}

func newPartSums(n int) *partSums { return &partSums{md5: make([][]byte, n)} }

func (p *partSums) source(enc bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srcEncrypted = p.srcEncrypted || enc
}

func (p *partSums) set(n int32, sum []byte, dstEnc bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.md5[n-1], p.streamed, p.dstEnc = sum, true, p.dstEnc || dstEnc
}

// sameLayout reports whether rec's upload follows the parts of a multipart source: its parts
// then compose to the source's ETag.
func sameLayout(rec UploadRecord) bool {
	etag := change.NormalizeETag(rec.SourceETag)
	if !change.IsMultipart(etag) {
		return false
	}
	count, err := strconv.Atoi(etag[strings.LastIndex(etag, "-")+1:])
	return err == nil && count == len(rec.PartSizes)
}

// composite returns the multipart ETag that parts make ("<md5 of the part MD5s>-<count>") and
// whether it can be known: the upload follows the source's part layout, neither side is
// encrypted, and every part's MD5 is known (sent now, or an earlier part's ETag).
func (p *partSums) composite(rec UploadRecord, parts []types.CompletedPart) (string, bool) {
	if p == nil || !p.streamed || p.srcEncrypted || p.dstEnc || !sameLayout(rec) {
		return "", false
	}
	h := md5.New()
	for i, part := range parts {
		sum := p.md5[i]
		if sum == nil {
			var err error
			if sum, err = hex.DecodeString(change.NormalizeETag(aws.ToString(part.ETag))); err != nil || len(sum) != md5.Size {
				return "", false
			}
		}
		h.Write(sum)
	}
	return fmt.Sprintf("%s-%d", hex.EncodeToString(h.Sum(nil)), len(parts)), true
}

// check compares the parts' composite ETag with the source's before the upload is completed.
func (p *partSums) check(rec UploadRecord, parts []types.CompletedPart) error {
	got, ok := p.composite(rec, parts)
	if ok && got != change.NormalizeETag(rec.SourceETag) {
		return &ContentMismatchError{Bucket: rec.Bucket, Key: rec.Key, Source: rec.SourceETag, Copied: `"` + got + `"`,
			Stage: "composing the parts' MD5s before completing the upload"}
	}
	return nil
}

// checkDest compares the completed upload's ETag with the source's, when both are made of MD5s
// along the same parts (known only when this attempt streamed a part and read the source's
// encryption).
func (p *partSums) checkDest(rec UploadRecord, out *s3.CompleteMultipartUploadOutput) error {
	if p == nil || !p.streamed || p.srcEncrypted || encrypted(out.ServerSideEncryption, nil) || !sameLayout(rec) {
		return nil
	}
	if got := aws.ToString(out.ETag); change.NormalizeETag(got) != change.NormalizeETag(rec.SourceETag) {
		return &ContentMismatchError{Bucket: rec.Bucket, Key: rec.Key, Source: rec.SourceETag, Copied: got,
			Stage: "comparing the completed upload's ETag with the source's", Written: true}
	}
	return nil
}
