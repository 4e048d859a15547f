// Package s3copy copies objects between buckets server-side and marks deletions, so that the
// destination's ETag matches the source's and a repeated request never adds a version: single-part
// objects with CopyObject, multipart objects part by part along the source's own part boundaries,
// objects above a threshold with parallel UploadPartCopy (aborted on failure).
package s3copy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// API is what copying needs of an S3 client.
type API interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	GetObjectTagging(ctx context.Context, in *s3.GetObjectTaggingInput, opts ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, opts ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ API = (*s3.Client)(nil)

// S3 limits on multipart uploads.
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// Copier copies and deletes objects. The zero value is not usable; set S3.
type Copier struct {
	S3 API
	// Threshold is the size above which objects are copied in parts (default 5 GiB, CopyObject's limit).
	Threshold int64
	// PartSize is the part size for objects copied in parts that were not uploaded in parts
	// (default 128 MiB; raised as needed to stay within 10,000 parts).
	PartSize int64
	// PartConcurrency bounds the part requests (UploadPartCopy, part HEADs) in flight at once
	// across every object this Copier copies, so a batch of large objects cannot multiply it by
	// the number of objects (default 8).
	PartConcurrency int
	// MaxAttempts bounds attempts of a write that this package retries itself (default 6).
	MaxAttempts int
	// Sleep waits between attempts; nil sleeps for real.
	Sleep func(ctx context.Context, d time.Duration) error

	slotsOnce sync.Once
	slots     chan struct{}
}

// partSlot waits for one of the Copier's part slots; release it with the returned func.
func (c *Copier) partSlot(ctx context.Context) (func(), error) {
	c.slotsOnce.Do(func() {
		_, _, conc, _ := c.defaults()
		c.slots = make(chan struct{}, conc)
	})
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Request is one object to copy.
type Request struct {
	SourceBucket, SourceVersionID string
	DestBucket                    string
	Key                           string
	// DestKey is the destination key; empty means Key.
	DestKey string
	// Listed is the source object as listed; the copy is made only of that content (or, when the
	// source changed since, of its new content, which the Result reports).
	Listed change.Object
	// Verify first checks the destination and does nothing when it already holds the content:
	// set it when the request may have run before (a retried batch).
	Verify bool
	// Retries, when set, counts every retry made for this request.
	Retries *s3client.RetryCounter
}

// Outcome says what happened to one object.
type Outcome string

// The outcomes of a successful Copy or Delete.
const (
	Copied         Outcome = "copied"
	AlreadyPresent Outcome = "already-present" // Verify found the content already in place
	Vanished       Outcome = "vanished"        // the source was deleted after it was listed
	Deleted        Outcome = "deleted"
	AlreadyDeleted Outcome = "already-deleted"
	Reappeared     Outcome = "reappeared" // the source key exists again: not marked deleted
)

// Result describes a successful Copy.
type Result struct {
	Outcome Outcome
	Bytes   int64
	// SourceChanged is set when the source was overwritten after listing; Object is what was copied.
	SourceChanged bool
	Object        change.Object
	Multipart     bool
}

func (c *Copier) defaults() (threshold, partSize int64, partConc, attempts int) {
	threshold, partSize, partConc, attempts = c.Threshold, c.PartSize, c.PartConcurrency, c.MaxAttempts
	if threshold <= 0 {
		threshold = MaxPartSize
	}
	if partSize <= 0 {
		partSize = 128 << 20
	}
	if partConc <= 0 {
		partConc = 8
	}
	if attempts <= 0 {
		attempts = 6
	}
	return
}

// Copy copies one object. An error means the object was not copied; errors worth retrying have
// already been retried.
func (c *Copier) Copy(ctx context.Context, req Request) (Result, error) {
	if req.DestKey == "" {
		req.DestKey = req.Key
	}
	counter := req.Retries
	if counter == nil {
		counter = &s3client.RetryCounter{}
	}
	req.Retries = counter
	if req.Verify {
		if present, err := c.holds(ctx, req.DestBucket, req.DestKey, req.Listed, counter); err != nil {
			return Result{}, err
		} else if present {
			return Result{Outcome: AlreadyPresent, Object: req.Listed}, nil
		}
	}
	want := req.Listed
	changed := false
	_, _, _, attempts := c.defaults()
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		res, err := c.copyOnce(ctx, req, want)
		if err == nil {
			res.SourceChanged = changed
			res.Object = want
			return res, nil
		}
		lastErr = err
		switch {
		case fault.IsCode(err, "PreconditionFailed"), fault.IsNotFound(err) && !fault.IsCode(err, "NoSuchBucket", "NoSuchUpload"):
			// The source is not the listed object any more: copy what is there now, or report it gone.
			now, herr := c.head(ctx, req.SourceBucket, req.Key, req.SourceVersionID, counter)
			if fault.IsNotFound(herr) {
				return Result{Outcome: Vanished, Object: want}, nil
			}
			if herr != nil {
				return Result{}, fmt.Errorf("source %q changed while copying; head: %w", req.Key, herr)
			}
			if now.ETag == want.ETag && now.Size == want.Size {
				return Result{}, err // not a change after all: report the original error
			}
			want, changed = now, true
			continue
		case !fault.Retryable(err):
			return Result{}, err
		}
		if attempt == attempts {
			break
		}
		counter.Add(1)
		if err := c.sleep(ctx, attempt, err); err != nil {
			return Result{}, errors.Join(lastErr, err)
		}
		// The failed attempt may have completed on the server (a lost response): look before
		// copying again, so a retry never adds a second version.
		if present, herr := c.holds(ctx, req.DestBucket, req.DestKey, want, counter); herr == nil && present {
			return Result{Outcome: Copied, Bytes: want.Size, Object: want}, nil
		}
	}
	return Result{}, fmt.Errorf("after %d attempts: %w", attempts, lastErr)
}

func (c *Copier) copyOnce(ctx context.Context, req Request, want change.Object) (Result, error) {
	threshold, _, _, _ := c.defaults()
	if change.IsMultipart(want.ETag) || want.Size > threshold {
		err := c.multipart(ctx, req, want)
		return Result{Outcome: Copied, Bytes: want.Size, Multipart: true}, err
	}
	_, err := c.S3.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(req.DestBucket),
		Key:               aws.String(req.DestKey),
		CopySource:        aws.String(CopySource(req.SourceBucket, req.Key, req.SourceVersionID)),
		CopySourceIfMatch: aws.String(want.ETag),
		MetadataDirective: types.MetadataDirectiveCopy,
		TaggingDirective:  types.TaggingDirectiveCopy,
	}, s3client.NoRetry())
	// (not retried by the SDK: Copy retries it after checking the destination)
	return Result{Outcome: Copied, Bytes: want.Size}, err
}

// multipart copies an object in parts. A source uploaded in parts is copied along its own part
// boundaries, which reproduces its ETag; any other source in parts of PartSize.
func (c *Copier) multipart(ctx context.Context, req Request, want change.Object) error {
	_, partSize, partConc, _ := c.defaults()
	opt := req.Retries.Option()
	head, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(req.SourceBucket), Key: aws.String(req.Key), VersionId: optional(req.SourceVersionID),
		IfMatch: aws.String(want.ETag), PartNumber: aws.Int32(1),
	}, opt)
	if err != nil {
		return err
	}
	sizes, err := c.partSizes(ctx, req, want, head, partSize, partConc)
	if err != nil {
		return err
	}
	tags, err := c.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{
		Bucket: aws.String(req.SourceBucket), Key: aws.String(req.Key), VersionId: optional(req.SourceVersionID),
	}, opt)
	if err != nil {
		return fmt.Errorf("read tags: %w", err)
	}
	create := &s3.CreateMultipartUploadInput{
		Bucket:             aws.String(req.DestBucket),
		Key:                aws.String(req.DestKey),
		ContentType:        head.ContentType,
		ContentEncoding:    head.ContentEncoding,
		ContentDisposition: head.ContentDisposition,
		ContentLanguage:    head.ContentLanguage,
		CacheControl:       head.CacheControl,
		Metadata:           head.Metadata,
	}
	if head.ExpiresString != nil {
		if t, perr := time.Parse(time.RFC1123, *head.ExpiresString); perr == nil {
			create.Expires = aws.Time(t)
		}
	}
	if len(tags.TagSet) > 0 {
		v := url.Values{}
		for _, t := range tags.TagSet {
			v.Add(aws.ToString(t.Key), aws.ToString(t.Value))
		}
		create.Tagging = aws.String(v.Encode())
	}
	up, err := c.S3.CreateMultipartUpload(ctx, create, opt)
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	abort := func(cause error) error {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, aerr := c.S3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(req.DestBucket), Key: aws.String(req.DestKey), UploadId: up.UploadId,
		})
		if aerr != nil {
			return errors.Join(cause, fmt.Errorf("abort multipart upload %s: %w", aws.ToString(up.UploadId), aerr))
		}
		return cause
	}
	parts := make([]types.CompletedPart, len(sizes))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partConc)
	var offset int64
	for i, size := range sizes {
		first, last := offset, offset+size-1
		offset += size
		n := int32(i + 1)
		g.Go(func() error {
			release, err := c.partSlot(gctx)
			if err != nil {
				return err
			}
			defer release()
			out, err := c.S3.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:            aws.String(req.DestBucket),
				Key:               aws.String(req.DestKey),
				UploadId:          up.UploadId,
				PartNumber:        aws.Int32(n),
				CopySource:        aws.String(CopySource(req.SourceBucket, req.Key, req.SourceVersionID)),
				CopySourceIfMatch: aws.String(want.ETag),
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
			}, opt)
			if err != nil {
				return fmt.Errorf("copy part %d: %w", n, err)
			}
			parts[n-1] = types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return abort(err)
	}
	if _, err := c.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(req.DestBucket), Key: aws.String(req.DestKey), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}, s3client.NoRetry()); err != nil {
		return abort(fmt.Errorf("complete multipart upload: %w", err))
	}
	return nil
}

// partSizes returns the part boundaries to copy along.
func (c *Copier) partSizes(ctx context.Context, req Request, want change.Object, first *s3.HeadObjectOutput, partSize int64, conc int) ([]int64, error) {
	count := int(aws.ToInt32(first.PartsCount))
	if change.IsMultipart(want.ETag) && count >= 1 {
		sizes := make([]int64, count)
		sizes[0] = aws.ToInt64(first.ContentLength)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(conc)
		for i := 2; i <= count; i++ {
			g.Go(func() error {
				release, err := c.partSlot(gctx)
				if err != nil {
					return err
				}
				defer release()
				h, err := c.S3.HeadObject(gctx, &s3.HeadObjectInput{
					Bucket: aws.String(req.SourceBucket), Key: aws.String(req.Key), VersionId: optional(req.SourceVersionID),
					IfMatch: aws.String(want.ETag), PartNumber: aws.Int32(int32(i)),
				}, req.Retries.Option())
				if err != nil {
					return fmt.Errorf("head part %d: %w", i, err)
				}
				sizes[i-1] = aws.ToInt64(h.ContentLength)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		var total int64
		for _, s := range sizes {
			total += s
		}
		if total == want.Size {
			return sizes, nil
		}
		// The server did not report part sizes that add up: copy in even parts instead.
	}
	return evenParts(want.Size, partSize), nil
}

// evenParts splits size into parts of partSize, raised to keep within 10,000 parts.
func evenParts(size, partSize int64) []int64 {
	if size == 0 {
		return []int64{0}
	}
	if min := (size + MaxParts - 1) / MaxParts; partSize < min {
		partSize = (min + (1 << 20) - 1) &^ ((1 << 20) - 1)
	}
	partSize = max(partSize, MinPartSize)
	var sizes []int64
	for size > 0 {
		n := min(partSize, size)
		sizes = append(sizes, n)
		size -= n
	}
	return sizes
}

// DeleteRequest marks one destination key deleted.
type DeleteRequest struct {
	SourceBucket, DestBucket, Key string
	Verify                        bool
	Retries                       *s3client.RetryCounter
}

// Delete puts a delete marker on the destination key, keeping its data as a noncurrent version,
// unless the key exists in the source again.
func (c *Copier) Delete(ctx context.Context, req DeleteRequest) (Outcome, error) {
	counter := req.Retries
	if counter == nil {
		counter = &s3client.RetryCounter{}
	}
	if req.Verify {
		if _, err := c.head(ctx, req.DestBucket, req.Key, "", counter); fault.IsNotFound(err) {
			return AlreadyDeleted, nil
		} else if err != nil {
			return "", err
		}
	}
	if _, err := c.head(ctx, req.SourceBucket, req.Key, "", counter); err == nil {
		return Reappeared, nil
	} else if !fault.IsNotFound(err) {
		return "", fmt.Errorf("check source: %w", err)
	}
	_, _, _, attempts := c.defaults()
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		_, err := c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(req.DestBucket), Key: aws.String(req.Key)}, s3client.NoRetry()) // retried below, after a check
		if err == nil {
			return Deleted, nil
		}
		lastErr = err
		if !fault.Retryable(err) || attempt == attempts {
			break
		}
		counter.Add(1)
		if err := c.sleep(ctx, attempt, err); err != nil {
			return "", errors.Join(lastErr, err)
		}
		if _, herr := c.head(ctx, req.DestBucket, req.Key, "", counter); fault.IsNotFound(herr) {
			return Deleted, nil // the failed attempt had landed
		}
	}
	return "", lastErr
}

// holds reports whether the destination's current version holds the content of want.
func (c *Copier) holds(ctx context.Context, bucket, key string, want change.Object, counter *s3client.RetryCounter) (bool, error) {
	got, err := c.head(ctx, bucket, key, "", counter)
	if fault.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check destination: %w", err)
	}
	return change.Same(want, got), nil
}

func (c *Copier) head(ctx context.Context, bucket, key, versionID string, counter *s3client.RetryCounter) (change.Object, error) {
	out, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: optional(versionID)}, counter.Option())
	if err != nil {
		return change.Object{}, err
	}
	return change.Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), LastModified: aws.ToTime(out.LastModified)}, nil
}

var backoff = retry.NewExponentialJitterBackoff(20 * time.Second)

func (c *Copier) sleep(ctx context.Context, attempt int, err error) error {
	d, derr := backoff.BackoffDelay(attempt, err)
	if derr != nil {
		d = time.Second
	}
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// CopySource renders the x-amz-copy-source value: the key percent-encoded byte by byte except
// for unreserved characters and '/', so '+', '%', spaces and unicode survive every server.
func CopySource(bucket, key, versionID string) string {
	var b strings.Builder
	b.WriteString(bucket)
	b.WriteByte('/')
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(key); i++ {
		ch := key[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '_', ch == '.', ch == '~', ch == '/':
			b.WriteByte(ch)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&15])
		}
	}
	if versionID != "" {
		b.WriteString("?versionId=")
		b.WriteString(url.QueryEscape(versionID))
	}
	return b.String()
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
