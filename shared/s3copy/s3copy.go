// Package s3copy copies objects between buckets server-side and marks deletions, so that the
// destination's ETag matches the source's and a repeated request never adds a version: single-part
// objects with CopyObject, multipart objects part by part along the source's own part boundaries,
// objects above a threshold with parallel UploadPartCopy. A copy in parts that an invocation cannot
// finish (its deadline, a cancelled context, a retryable failure) keeps its upload, recorded in
// the run bucket, and the next attempt continues it without copying its finished parts again; an
// upload is aborted only when the copy is given up. A write that adds a
// version is retried (package retry) only after a look at the destination shows that the failed
// attempt did not land; when that cannot be known, the object fails with ErrOutcomeUnknown. In the
// backup bucket the look also recognises a copy whose ETag is not the source's (SSE-KMS).
//
// With Options.Source the source is read through a client of its own (another provider, its own
// endpoint and credentials) and the content is streamed: GET → PutObject, or GET of each part →
// UploadPart along the same boundaries, checked end to end (see stream.go).
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
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/retry"
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
	ListParts(ctx context.Context, in *s3.ListPartsInput, opts ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ API = (*s3.Client)(nil)

// S3 limits on multipart uploads.
const (
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	MaxParts    = 10000
)

// Defaults of the Options.
const (
	DefaultThreshold       = MaxPartSize              // CopyObject's limit: 5 GiB
	DefaultPartSize        = 128 << 20                // parts of objects not uploaded in parts: 128 MiB
	DefaultPartConcurrency = 8                        // part requests in flight per Copier
	DefaultMaxAttempts     = retry.DefaultMaxAttempts // attempts of a write this package retries itself
)

// Options tune a Copier; zero values mean the defaults.
type Options struct {
	// Threshold is the size above which objects are copied in parts (DefaultThreshold).
	Threshold int64
	// PartSize is the part size for objects copied in parts that were not uploaded in parts
	// (DefaultPartSize; raised as needed to stay within 10,000 parts).
	PartSize int64
	// PartConcurrency bounds the part requests (UploadPartCopy, part HEADs) in flight at once
	// across every object the Copier copies, so a batch of large objects cannot multiply it by
	// the number of objects (DefaultPartConcurrency).
	PartConcurrency int
	// MaxAttempts bounds the attempts of a write that this package retries itself, and of the
	// look that follows a failed one (DefaultMaxAttempts).
	MaxAttempts int
	// Sleep waits between attempts; nil sleeps for real.
	Sleep func(ctx context.Context, d time.Duration) error
	// Uploads, when set, records every multipart upload before its first part, so that a retried
	// request (Verify) in a later invocation continues it instead of starting over. Without it an
	// upload is continued only by the next attempt within this Copier.
	Uploads Uploads
	// StopAt, when set, is when no new part request may start (lambdafn.StopAt): a copy in parts
	// then returns a *StoppedError and keeps its upload for the next invocation.
	StopAt time.Time
	// Now tells the time, compared with StopAt; nil means time.Now.
	Now func() time.Time
	// Source, when set, is the client every source object is read through (another provider's,
	// or another account's): the Copier then streams the content (GetObject → PutObject, or
	// UploadPart per part) instead of copying server-side, and the destination client passed to
	// New must also be a StreamAPI. Nil: one client reads and writes, server-side.
	Source SourceAPI
	// ServerSide, with Source, copies server-side all the same: the source is the same
	// provider's in another Region, whose objects the destination's client copies (CopyObject
	// takes a source in any Region) but only the source's client may read.
	ServerSide bool
}

// Copier copies and deletes objects. Make one with New.
type Copier struct {
	s3    API
	opts  Options
	slots chan struct{} // part requests in flight
	open  openUploads   // multipart uploads begun or continued, until completed or aborted
	// src reads the source: Options.Source, or s3 itself.
	src sourceReader
	// stream is set when the content is streamed (Options.Source): its writes and the buffer
	// budget.
	stream *streamer
}

// New returns a Copier that copies through api, with opts' zero values set to the defaults.
func New(api API, opts Options) *Copier {
	if opts.Threshold <= 0 {
		opts.Threshold = DefaultThreshold
	}
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PartConcurrency <= 0 {
		opts.PartConcurrency = DefaultPartConcurrency
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Copier{s3: api, opts: opts, slots: make(chan struct{}, opts.PartConcurrency), src: api}
	if opts.Source != nil {
		c.src = opts.Source
		if !opts.ServerSide {
			c.stream = newStreamer(api, opts)
		}
	}
	return c
}

// partSlot waits for one of the Copier's part slots; release it with the returned func.
func (c *Copier) partSlot(ctx context.Context) (func(), error) {
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// policy is how the Copier retries, counting into counter.
func (c *Copier) policy(counter *s3client.RetryCounter) retry.Policy {
	return retry.Policy{MaxAttempts: c.opts.MaxAttempts, Sleep: c.opts.Sleep, Retries: counter}
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
	// BackupDest says the destination is the backup bucket, which only bucketvault writes: its
	// checks (Verify, and the look after a failed write) may then take a multipart version written
	// after a single-part source as that source's copy (change.SameAsOwnCopy), and, when
	// PriorListed, an SSE-KMS version written since the listing (see Prior). Any other destination
	// must hold the same size and ETag (change.Same).
	BackupDest bool
	// Prior is the destination's current ETag when the batch was listed; "" when the key was
	// absent. Under SSE-KMS a copy's ETag is never the source's, so for a BackupDest request with
	// PriorListed the checks take as a copy of the source a current version that is SSE-KMS
	// encrypted (aws:kms or aws:kms:dsse), has the source's size, and whose ETag is not Prior: it
	// was written since the listing, and only bucketvault writes the backup bucket. Verify takes it
	// so only while the source is still the listed object (one more HEAD), since such a version may
	// be the copy of a newer source that a failed attempt made; and the look after a failed write
	// compares with what the destination held before this request wrote.
	Prior string
	// PriorListed says Prior was listed (a key the listing found absent has PriorListed and an
	// empty Prior). Without it the SSE-KMS rule is not applied: an empty Prior could not be told
	// from one that was never recorded.
	PriorListed bool
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
	// DestChanged: a removal's destination no longer holds the object it was planned for (it
	// was written since): not removed.
	DestChanged Outcome = "dest-changed"
)

// Result describes a successful Copy.
type Result struct {
	Outcome Outcome
	Bytes   int64
	// SourceChanged is set when the source was overwritten after listing; Object is what was copied.
	SourceChanged bool
	Object        change.Object
	Multipart     bool
	// DestETag is the destination's ETag after the copy (Copied, AlreadyPresent): from the copy's
	// answer, or from the HEAD that found the content in place.
	DestETag string
}

// Copy copies one object. An error means the object was not copied; errors worth retrying have
// already been retried. A write that failed is never repeated before a look at the destination
// has shown that it did not land; when that cannot be known, the error is an
// *OutcomeUnknownError (ErrOutcomeUnknown).
func (c *Copier) Copy(ctx context.Context, req Request) (Result, error) {
	if req.DestKey == "" {
		req.DestKey = req.Key
	}
	if req.Retries == nil {
		req.Retries = &s3client.RetryCounter{}
	}
	if req.Verify {
		got, v, err := c.holds(ctx, req, req.Listed)
		if err != nil {
			return Result{}, err
		}
		if v == heldSinceListing {
			// A write made since the listing, of what? An earlier attempt copies the source as it
			// then was: the listed object only if the source has not changed since.
			if v, err = c.sourceUnchanged(ctx, req); err != nil {
				return Result{}, err
			}
		}
		if v != notHeld {
			return Result{Outcome: AlreadyPresent, Object: req.Listed, DestETag: got.ETag}, nil
		}
		// Every write from here on is this request's: a version whose ETag is not the current one
		// is one of them.
		req.Prior, req.PriorListed = got.ETag, true
	}
	want, changed := req.Listed, false
	for versions := 1; ; versions++ {
		res, err := c.copyRetrying(ctx, req, want)
		if err == nil {
			res.SourceChanged, res.Object = changed, want
			return res, nil
		}
		if !sourceMoved(err) {
			return Result{}, err
		}
		// The source is not the object wanted any more: copy what is there now, or report it gone.
		now, herr := c.sourceHead(ctx, req.SourceBucket, req.Key, req.SourceVersionID, req.Retries)
		switch {
		case fault.IsNotFound(herr):
			return Result{Outcome: Vanished, Object: want}, nil
		case herr != nil:
			return Result{}, fmt.Errorf("source %q changed while copying; head: %w", req.Key, herr)
		case now.ETag == want.ETag && now.Size == want.Size:
			return Result{}, err // not a change after all: report the original error
		case versions >= c.opts.MaxAttempts:
			return Result{}, fmt.Errorf("source %q changed %d times while copying: %w", req.Key, versions, err)
		}
		want, changed = now, true
	}
}

// sourceMoved reports whether a copy failed because the source is not the object wanted any more
// (overwritten: the If-Match failed; or deleted).
func sourceMoved(err error) bool {
	if errors.Is(err, ErrOutcomeUnknown) {
		return false
	}
	return fault.IsCode(err, "PreconditionFailed") || fault.IsNotFound(err) && !fault.IsCode(err, "NoSuchBucket")
}

// copyRetrying copies want, retrying what fault.Retryable allows. Before each retry it looks
// whether the failed attempt landed after all (a lost response), so that a retry never adds a
// second version.
func (c *Copier) copyRetrying(ctx context.Context, req Request, want change.Object) (Result, error) {
	var (
		res     Result
		lastErr error
	)
	err := retry.Do(ctx, c.policy(req.Retries), func(ctx context.Context, attempt int) error {
		if attempt > 1 {
			var got change.Object
			landed, err := c.settle(ctx, req.DestBucket, req.DestKey, lastErr, req.Retries, func(ctx context.Context) (bool, error) {
				var v verdict
				var err error
				got, v, err = c.holds(ctx, req, want)
				return v != notHeld, err
			})
			if err != nil {
				return retry.Permanent(err)
			}
			if landed {
				c.open.forget(req.DestBucket, req.DestKey) // a Complete that landed ended the upload
				res = Result{Outcome: Copied, Bytes: want.Size, Multipart: c.inParts(want), DestETag: got.ETag}
				return nil
			}
		}
		r, err := c.copyOnce(ctx, req, want)
		if errors.Is(err, ErrStopped) {
			return retry.Permanent(err)
		}
		if err != nil {
			lastErr = err
			return err
		}
		res = r
		return nil
	})
	if err != nil && c.inParts(want) && !Interrupted(ctx, err) {
		// Given up: no later attempt continues the upload.
		err = c.giveUp(ctx, req, err)
	}
	return res, err
}

// settle finds out whether a write that failed with writeErr landed after all; look answers it.
// look's errors are retried as any other; when the answer still cannot be had, the error is an
// *OutcomeUnknownError that carries both errors.
func (c *Copier) settle(ctx context.Context, bucket, key string, writeErr error, counter *s3client.RetryCounter, look func(context.Context) (bool, error)) (bool, error) {
	var landed bool
	err := retry.Do(ctx, c.policy(counter), func(ctx context.Context, _ int) error {
		var err error
		landed, err = look(ctx)
		return err
	})
	if err != nil {
		return false, &OutcomeUnknownError{Bucket: bucket, Key: key, Write: writeErr, Check: err}
	}
	return landed, nil
}

// inParts reports whether want is copied in parts.
func (c *Copier) inParts(want change.Object) bool {
	return change.IsMultipart(want.ETag) || want.Size > c.opts.Threshold
}

func (c *Copier) copyOnce(ctx context.Context, req Request, want change.Object) (Result, error) {
	if c.inParts(want) {
		etag, err := c.multipart(ctx, req, want)
		return Result{Outcome: Copied, Bytes: want.Size, Multipart: true, DestETag: etag}, err
	}
	if c.stream != nil {
		return c.putStreamed(ctx, req, want)
	}
	out, err := c.s3.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(req.DestBucket),
		Key:               aws.String(req.DestKey),
		CopySource:        aws.String(CopySource(req.SourceBucket, req.Key, req.SourceVersionID)),
		CopySourceIfMatch: aws.String(want.ETag),
		MetadataDirective: types.MetadataDirectiveCopy,
		TaggingDirective:  types.TaggingDirectiveCopy,
	}, s3client.NoRetry()) // not retried by the SDK: copyRetrying retries it after a look
	if err != nil {
		return Result{}, err
	}
	res := Result{Outcome: Copied, Bytes: want.Size}
	if out.CopyObjectResult != nil {
		res.DestETag = aws.ToString(out.CopyObjectResult.ETag)
	}
	return res, nil
}

// multipart copies an object in parts and returns the destination's ETag. A source uploaded in
// parts is copied along its own part boundaries, which reproduces its ETag; any other source in
// parts of PartSize. An upload this Copier has open for the destination, or (on a retried
// request, Verify) one recorded by an earlier invocation in Options.Uploads, is continued: its
// parts that ListParts names are not copied again. No part is started after Options.StopAt or
// once ctx ended; the upload is then kept for the next attempt (a *StoppedError, or ctx's error),
// as it is after a retryable failure. Any other failure aborts it.
func (c *Copier) multipart(ctx context.Context, req Request, want change.Object) (string, error) {
	rec, done, err := c.resume(ctx, req, want)
	if errors.Is(err, errUploadGone) {
		// The recorded upload is neither open nor, when the attempt began, complete. Its Complete
		// may have landed since (a request of a killed invocation): look before a new upload.
		got, v, herr := c.holds(ctx, req, want)
		if herr != nil {
			return "", herr
		}
		if v != notHeld {
			return got.ETag, nil
		}
		rec, err = nil, nil
	}
	if err != nil {
		return "", err
	}
	if rec == nil {
		if rec, err = c.create(ctx, req, want); err != nil {
			return "", err
		}
		done = map[int32]string{}
	}
	keep := func(err error) bool { return Interrupted(ctx, err) || fault.Retryable(err) }
	parts, sums, err := c.copyPartsSums(ctx, req, *rec, done)
	if err == nil && c.stream != nil {
		// Nothing of other content is completed: the parts' digests must add up to the source's.
		err = sums.check(*rec, parts)
	}
	if err != nil {
		if keep(err) {
			return "", err
		}
		return "", c.abort(ctx, *rec, err)
	}
	// Every part is in: Complete, however late, since it takes no time worth stopping for.
	out, err := c.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(rec.Bucket), Key: aws.String(rec.Key), UploadId: aws.String(rec.UploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}, s3client.NoRetry()) // not retried by the SDK: copyRetrying retries it after a look
	if err != nil {
		err = fmt.Errorf("complete multipart upload: %w", err)
		if keep(err) {
			return "", err
		}
		return "", c.abort(ctx, *rec, err)
	}
	c.open.forget(rec.Bucket, rec.Key)
	if c.stream != nil {
		if err := sums.checkDest(*rec, out); err != nil {
			return "", err
		}
	}
	return aws.ToString(out.ETag), nil
}

// errUploadGone says a recorded upload no longer exists (completed or aborted).
var errUploadGone = errors.New("recorded multipart upload is gone")

// resume returns the upload to continue for req and want, with its finished parts (part number
// → ETag), or nil when there is none. An open upload of other source content is aborted.
func (c *Copier) resume(ctx context.Context, req Request, want change.Object) (*UploadRecord, map[int32]string, error) {
	rec, ok := c.open.get(req.DestBucket, req.DestKey)
	if !ok && req.Verify && c.opts.Uploads != nil {
		r, err := c.opts.Uploads.Load(ctx, req.DestBucket, req.DestKey)
		if err != nil || r == nil || c.open.isClosed(r.UploadID) {
			return nil, nil, err
		}
		rec, ok = *r, true
	}
	if !ok {
		return nil, nil, nil
	}
	if rec.SourceETag != want.ETag || rec.CopySource != CopySource(req.SourceBucket, req.Key, req.SourceVersionID) || sum(rec.PartSizes) != want.Size {
		// Parts of other content: none of them may end up in this copy.
		c.open.put(rec)
		if err := c.abort(ctx, rec, nil); err != nil && !fault.IsCode(err, "NoSuchUpload") {
			return nil, nil, err
		}
		return nil, nil, nil
	}
	done, err := c.listParts(ctx, req, rec)
	if fault.IsCode(err, "NoSuchUpload") {
		c.open.forget(rec.Bucket, rec.Key)
		return nil, nil, errUploadGone
	}
	if err != nil {
		return nil, nil, err
	}
	c.open.put(rec)
	return &rec, done, nil
}

// listParts returns the parts of rec's upload that S3 holds at the recorded size: part number →
// ETag. A part of another size (none is expected) is copied again.
func (c *Copier) listParts(ctx context.Context, req Request, rec UploadRecord) (map[int32]string, error) {
	done := map[int32]string{}
	in := &s3.ListPartsInput{Bucket: aws.String(rec.Bucket), Key: aws.String(rec.Key), UploadId: aws.String(rec.UploadID)}
	for {
		out, err := c.s3.ListParts(ctx, in, req.Retries.Option())
		if err != nil {
			return nil, fmt.Errorf("list parts of upload %s: %w", rec.UploadID, err)
		}
		for _, p := range out.Parts {
			n := aws.ToInt32(p.PartNumber)
			if n >= 1 && int(n) <= len(rec.PartSizes) && aws.ToInt64(p.Size) == rec.PartSizes[n-1] && aws.ToString(p.ETag) != "" {
				done[n] = aws.ToString(p.ETag)
			}
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextPartNumberMarker) == "" {
			return done, nil
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
}

// create opens a new upload for want with the source's content headers, metadata and tags, and
// records it (in memory, and in Options.Uploads) before any part is copied.
func (c *Copier) create(ctx context.Context, req Request, want change.Object) (*UploadRecord, error) {
	opt := req.Retries.Option()
	head, err := c.src.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(req.SourceBucket), Key: aws.String(req.Key), VersionId: optional(req.SourceVersionID),
		IfMatch: aws.String(want.ETag), PartNumber: aws.Int32(1),
	}, opt)
	if err != nil {
		return nil, err
	}
	sizes, err := c.partSizes(ctx, req, want, head)
	if err != nil {
		return nil, err
	}
	tagging, err := c.sourceTagging(ctx, req, opt)
	if err != nil {
		return nil, err
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
		Expires:            expires(head.ExpiresString),
		Tagging:            tagging,
	}
	up, err := c.s3.CreateMultipartUpload(ctx, create, opt)
	if err != nil {
		return nil, fmt.Errorf("create multipart upload: %w", err)
	}
	rec := UploadRecord{
		Version: recordVersion, Bucket: req.DestBucket, Key: req.DestKey, UploadID: aws.ToString(up.UploadId),
		CopySource: CopySource(req.SourceBucket, req.Key, req.SourceVersionID), SourceETag: want.ETag, PartSizes: sizes,
	}
	c.open.put(rec)
	if c.opts.Uploads != nil {
		if err := c.opts.Uploads.Save(ctx, rec); err != nil {
			// An upload no later invocation could find: abort it rather than leave it to the lifecycle.
			return nil, c.abort(ctx, rec, err)
		}
	}
	return &rec, nil
}

// copyParts copies the parts of rec's upload not in done and returns every part, in order.
// Part requests already running finish when the invocation reaches StopAt; no new one starts.
func (c *Copier) copyParts(ctx context.Context, req Request, rec UploadRecord, done map[int32]string) ([]types.CompletedPart, error) {
	parts, _, err := c.copyPartsSums(ctx, req, rec, done)
	return parts, err
}

// copyPartsSums is copyParts that also returns (streaming) the digests of the parts it streamed.
func (c *Copier) copyPartsSums(ctx context.Context, req Request, rec UploadRecord, done map[int32]string) ([]types.CompletedPart, *partSums, error) {
	parts := make([]types.CompletedPart, len(rec.PartSizes))
	sums := newPartSums(len(rec.PartSizes))
	var (
		mu       sync.Mutex
		stopped  error
		finished = len(done) // done is only read here: the parts copied now are counted
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.PartConcurrency)
	var offset int64
	for i, size := range rec.PartSizes {
		first, last := offset, offset+size-1
		offset += size
		n := int32(i + 1)
		if etag, ok := done[n]; ok {
			parts[i] = types.CompletedPart{ETag: aws.String(etag), PartNumber: aws.Int32(n)}
			continue
		}
		g.Go(func() error {
			release, err := c.partSlot(gctx)
			if err != nil {
				return err
			}
			defer release()
			mu.Lock()
			if stopped == nil {
				stopped = c.stop(gctx, rec, finished, len(rec.PartSizes))
			}
			err = stopped
			mu.Unlock()
			if errors.Is(err, ErrStopped) {
				return nil // parts in flight finish; the error is returned after them
			} else if err != nil {
				return err
			}
			if c.stream != nil {
				etag, err := c.uploadPart(gctx, req, rec, n, first, size, sums)
				if err != nil {
					return fmt.Errorf("stream part %d: %w", n, err)
				}
				mu.Lock()
				finished++
				mu.Unlock()
				parts[n-1] = types.CompletedPart{ETag: aws.String(etag), PartNumber: aws.Int32(n)}
				return nil
			}
			out, err := c.s3.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:            aws.String(rec.Bucket),
				Key:               aws.String(rec.Key),
				UploadId:          aws.String(rec.UploadID),
				PartNumber:        aws.Int32(n),
				CopySource:        aws.String(rec.CopySource),
				CopySourceIfMatch: aws.String(rec.SourceETag),
				CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
			}, req.Retries.Option())
			if err != nil {
				return fmt.Errorf("copy part %d: %w", n, err)
			}
			mu.Lock()
			finished++
			mu.Unlock()
			parts[n-1] = types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if stopped != nil {
		var s *StoppedError
		if errors.As(stopped, &s) {
			s.Done = finished
		}
		return nil, nil, stopped
	}
	return parts, sums, nil
}

// stop returns ctx's error once it ended, or a *StoppedError once the invocation reached
// Options.StopAt; nil while new requests may start.
func (c *Copier) stop(ctx context.Context, rec UploadRecord, done, total int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.opts.StopAt.IsZero() && !c.opts.Now().Before(c.opts.StopAt) {
		return &StoppedError{Bucket: rec.Bucket, Key: rec.Key, UploadID: rec.UploadID, Done: done, Parts: total}
	}
	return nil
}

// abort aborts rec's upload and forgets it; it returns cause, joined with the abort's error if
// that failed (an upload already gone is not an error). It runs also after ctx ended.
func (c *Copier) abort(ctx context.Context, rec UploadRecord, cause error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := c.s3.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(rec.Bucket), Key: aws.String(rec.Key), UploadId: aws.String(rec.UploadID),
	})
	if err != nil && !fault.IsCode(err, "NoSuchUpload") {
		return errors.Join(cause, fmt.Errorf("abort multipart upload %s: %w", rec.UploadID, err))
	}
	c.open.forget(rec.Bucket, rec.Key)
	return cause
}

// giveUp aborts the upload the Copier has open for req's destination, if any: Copy failed for
// good, so no later attempt continues it.
func (c *Copier) giveUp(ctx context.Context, req Request, cause error) error {
	rec, ok := c.open.get(req.DestBucket, req.DestKey)
	if !ok {
		return cause
	}
	return c.abort(ctx, rec, cause)
}

func sum(sizes []int64) int64 {
	var total int64
	for _, s := range sizes {
		total += s
	}
	return total
}

// partSizes returns the part boundaries to copy along.
func (c *Copier) partSizes(ctx context.Context, req Request, want change.Object, first *s3.HeadObjectOutput) ([]int64, error) {
	count := int(aws.ToInt32(first.PartsCount))
	if change.IsMultipart(want.ETag) && count >= 1 {
		sizes := make([]int64, count)
		sizes[0] = aws.ToInt64(first.ContentLength)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.opts.PartConcurrency)
		for i := 2; i <= count; i++ {
			g.Go(func() error {
				release, err := c.partSlot(gctx)
				if err != nil {
					return err
				}
				defer release()
				h, err := c.src.HeadObject(gctx, &s3.HeadObjectInput{
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
	return evenParts(want.Size, c.opts.PartSize), nil
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
	// DestKey, when set, is the destination key (Key otherwise).
	DestKey string
	// Expect, when set, is the destination's current object as planned (a restore's removal):
	// the source is not looked at; the destination is removed only while it still holds this
	// object (change.Same), and is DestChanged otherwise.
	Expect  *change.Object
	Verify  bool
	Retries *s3client.RetryCounter
}

// Delete puts a delete marker on the destination key, keeping its data as a noncurrent version,
// unless the key exists in the source again (or, with Expect, unless the destination no longer
// holds the expected object). A DeleteObject that failed is never repeated before a look has shown
// that it did not land (each one adds a marker); when that cannot be known, the error is an
// *OutcomeUnknownError (ErrOutcomeUnknown).
func (c *Copier) Delete(ctx context.Context, req DeleteRequest) (Outcome, error) {
	counter := req.Retries
	if counter == nil {
		counter = &s3client.RetryCounter{}
	}
	dest := req.DestKey
	if dest == "" {
		dest = req.Key
	}
	switch {
	case req.Expect != nil:
		// A look before the removal: one written since the plan is never removed.
		out, err := c.headOutput(ctx, req.DestBucket, dest, "", counter)
		if fault.IsNotFound(err) {
			return AlreadyDeleted, nil
		}
		if err != nil {
			return "", fmt.Errorf("check destination: %w", err)
		}
		if !change.Same(*req.Expect, object(dest, out)) {
			return DestChanged, nil
		}
	default:
		if req.Verify {
			if _, err := c.head(ctx, req.DestBucket, dest, "", counter); fault.IsNotFound(err) {
				return AlreadyDeleted, nil
			} else if err != nil {
				return "", err
			}
		}
		if _, err := c.sourceHead(ctx, req.SourceBucket, req.Key, "", counter); err == nil {
			return Reappeared, nil
		} else if !fault.IsNotFound(err) {
			return "", fmt.Errorf("check source: %w", err)
		}
	}
	var lastErr error
	err := retry.Do(ctx, c.policy(counter), func(ctx context.Context, attempt int) error {
		if attempt > 1 {
			gone, err := c.settle(ctx, req.DestBucket, dest, lastErr, counter, func(ctx context.Context) (bool, error) {
				_, err := c.head(ctx, req.DestBucket, dest, "", counter)
				if fault.IsNotFound(err) {
					return true, nil
				}
				return false, err
			})
			if err != nil {
				return retry.Permanent(err)
			}
			if gone {
				return nil // the failed attempt had landed
			}
		}
		_, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(req.DestBucket), Key: aws.String(dest)},
			s3client.NoRetry()) // not retried by the SDK: retried here after a look
		lastErr = err
		return err
	})
	if err != nil {
		return "", err
	}
	return Deleted, nil
}

// verdict is what a look at the destination found.
type verdict int

const (
	notHeld          verdict = iota
	heldByETag               // change.Same, or in the backup change.SameAsOwnCopy
	heldSinceListing         // in the backup, an SSE-KMS version of want's size written since Prior
)

// holds finds out whether the request's destination holds the content of want in its current
// version, and returns what the HEAD found: in the backup bucket by change.SameAsOwnCopy or the
// SSE-KMS rule (Request.Prior), anywhere else by change.Same.
func (c *Copier) holds(ctx context.Context, req Request, want change.Object) (change.Object, verdict, error) {
	out, err := c.headOutput(ctx, req.DestBucket, req.DestKey, "", req.Retries)
	if fault.IsNotFound(err) {
		return change.Object{}, notHeld, nil
	}
	if err != nil {
		return change.Object{}, notHeld, fmt.Errorf("check destination: %w", err)
	}
	got := object(req.DestKey, out)
	switch {
	case !req.BackupDest:
		if change.Same(want, got) {
			return got, heldByETag, nil
		}
	case change.SameAsOwnCopy(want, got):
		return got, heldByETag, nil
	case req.PriorListed && kmsWriteSince(want, got, out.ServerSideEncryption, req.Prior):
		return got, heldSinceListing, nil
	}
	return got, notHeld, nil
}

// kmsWriteSince reports whether the backup's current version got, encrypted with sse, was written
// since the destination's ETag was prior ("" for absent) and has want's size: SSE-KMS gives every
// write a fresh ETag, so a KMS version whose ETag is not prior is a later write.
func kmsWriteSince(want, got change.Object, sse types.ServerSideEncryption, prior string) bool {
	kms := sse == types.ServerSideEncryptionAwsKms || sse == types.ServerSideEncryptionAwsKmsDsse
	etag := change.NormalizeETag(got.ETag)
	return kms && got.Size == want.Size && etag != "" && etag != change.NormalizeETag(prior)
}

// sourceUnchanged returns heldSinceListing when the request's source is still the listed object
// (its ETag, size and LastModified to the second, since listings and HEADs differ in precision),
// notHeld when it changed or is gone.
func (c *Copier) sourceUnchanged(ctx context.Context, req Request) (verdict, error) {
	now, err := c.sourceHead(ctx, req.SourceBucket, req.Key, req.SourceVersionID, req.Retries)
	if fault.IsNotFound(err) {
		return notHeld, nil
	}
	if err != nil {
		return notHeld, fmt.Errorf("check source: %w", err)
	}
	if change.Same(now, req.Listed) && now.LastModified.Truncate(time.Second).Equal(req.Listed.LastModified.Truncate(time.Second)) {
		return heldSinceListing, nil
	}
	return notHeld, nil
}

func (c *Copier) head(ctx context.Context, bucket, key, versionID string, counter *s3client.RetryCounter) (change.Object, error) {
	out, err := c.headOutput(ctx, bucket, key, versionID, counter)
	if err != nil {
		return change.Object{}, err
	}
	return object(key, out), nil
}

func (c *Copier) headOutput(ctx context.Context, bucket, key, versionID string, counter *s3client.RetryCounter) (*s3.HeadObjectOutput, error) {
	return c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: optional(versionID)}, counter.Option())
}

// sourceHead describes a source object, read through the source's client.
func (c *Copier) sourceHead(ctx context.Context, bucket, key, versionID string, counter *s3client.RetryCounter) (change.Object, error) {
	out, err := c.src.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: optional(versionID)}, counter.Option())
	if err != nil {
		return change.Object{}, err
	}
	return object(key, out), nil
}

// sourceTagging returns the source object's tags as an x-amz-tagging value, nil for none.
func (c *Copier) sourceTagging(ctx context.Context, req Request, opt func(*s3.Options)) (*string, error) {
	tags, err := c.src.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{
		Bucket: aws.String(req.SourceBucket), Key: aws.String(req.Key), VersionId: optional(req.SourceVersionID),
	}, opt)
	if err != nil {
		return nil, fmt.Errorf("read tags: %w", err)
	}
	if len(tags.TagSet) == 0 {
		return nil, nil
	}
	v := url.Values{}
	for _, t := range tags.TagSet {
		v.Add(aws.ToString(t.Key), aws.ToString(t.Value))
	}
	return aws.String(v.Encode()), nil
}

// expires parses an Expires header as S3 sends it (RFC 1123); nil when absent or malformed.
func expires(s *string) *time.Time {
	if s == nil {
		return nil
	}
	if t, err := time.Parse(time.RFC1123, *s); err == nil {
		return aws.Time(t)
	}
	return nil
}

// object describes key from a HEAD's answer.
func object(key string, out *s3.HeadObjectOutput) change.Object {
	return change.Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag), LastModified: aws.ToTime(out.LastModified)}
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
