package s3copy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// UploadRecord is what a later invocation needs to continue a multipart copy: which upload, of
// which source content, along which part boundaries. The finished parts are not in it: S3's
// ListParts names them, with their ETags and sizes, so a part that landed after the record was
// written is never copied twice and a part the record could claim but S3 does not hold is never
// taken as done.
type UploadRecord struct {
	Version    int     `json:"version"`
	Bucket     string  `json:"bucket"`
	Key        string  `json:"key"`
	UploadID   string  `json:"uploadId"`
	CopySource string  `json:"copySource"` // the x-amz-copy-source of every part
	SourceETag string  `json:"sourceETag"` // every part is copied conditioned on it
	PartSizes  []int64 `json:"partSizes"`
}

// recordVersion is the UploadRecord format written now.
const recordVersion = 1

// Uploads keeps UploadRecords between invocations. Load returns nil and no error when there is
// no record for the destination.
type Uploads interface {
	Load(ctx context.Context, bucket, key string) (*UploadRecord, error)
	Save(ctx context.Context, rec UploadRecord) error
}

// ObjectStore is what S3Uploads needs of an S3 client.
type ObjectStore interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3Uploads keeps each UploadRecord as a small JSON object in Bucket, named
// Prefix + hex(sha256(destination key)) + ".json". The records of one batch share a Prefix.
type S3Uploads struct {
	S3             ObjectStore
	Bucket, Prefix string
	// Opts are applied to every request (a retry counter).
	Opts []func(*s3.Options)
}

// RecordKey is where S3Uploads keeps the record of destination key.
func (u *S3Uploads) RecordKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return u.Prefix + hex.EncodeToString(sum[:]) + ".json"
}

// Load reads the record of bucket/key; a record of another destination (the key's hash is all
// the name says) counts as none.
func (u *S3Uploads) Load(ctx context.Context, bucket, key string) (*UploadRecord, error) {
	name := u.RecordKey(key)
	out, err := u.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(u.Bucket), Key: aws.String(name)}, u.Opts...)
	if fault.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read upload record s3://%s/%s: %w", u.Bucket, name, err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read upload record s3://%s/%s: %w", u.Bucket, name, err)
	}
	var rec UploadRecord
	if err := strictjson.Unmarshal(body, &rec); err != nil || rec.Version != recordVersion {
		// Not a record this code wrote: continuing from it could assemble a wrong object.
		return nil, &fault.InternalError{Msg: fmt.Sprintf("upload record s3://%s/%s is not a version %d record", u.Bucket, name, recordVersion), Err: err}
	}
	if rec.Bucket != bucket || rec.Key != key {
		return nil, nil
	}
	return &rec, nil
}

// Save writes rec.
func (u *S3Uploads) Save(ctx context.Context, rec UploadRecord) error {
	body, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	name := u.RecordKey(rec.Key)
	if _, err := u.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(u.Bucket), Key: aws.String(name),
		Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
	}, u.Opts...); err != nil {
		return fmt.Errorf("write upload record s3://%s/%s: %w", u.Bucket, name, err)
	}
	return nil
}

// ErrStopped is matched (errors.Is) by every *StoppedError.
var ErrStopped = errors.New("multipart copy stopped at the invocation's deadline")

// StoppedError means a multipart copy stopped taking parts because the invocation reached
// Options.StopAt. The upload is kept, not aborted: the next invocation continues it.
type StoppedError struct {
	Bucket, Key, UploadID string
	Done, Parts           int // parts finished, parts in all
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("s3://%s/%s: stopped at the invocation's deadline with %d of %d parts copied; upload %s is kept for the next attempt",
		e.Bucket, e.Key, e.Done, e.Parts, e.UploadID)
}

// Is matches ErrStopped.
func (e *StoppedError) Is(target error) bool { return target == ErrStopped }

// Interrupted reports whether a Copy's error means the invocation was interrupted (its context
// ended, or it reached StopAt) rather than that the copy failed: the object is unfinished, and
// an upload it began is kept for the next attempt.
func Interrupted(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, ErrStopped)
}

// openUploads are the uploads a Copier has open, by destination: those it created and those it
// continues. Kept in memory, they let the next attempt within the invocation continue an upload,
// and let Copy abort it when it gives up. Uploads it completed or aborted are remembered as
// closed, so that their records are not acted on again.
type openUploads struct {
	mu     sync.Mutex
	m      map[string]UploadRecord
	closed map[string]bool // upload ids
}

func destID(bucket, key string) string { return bucket + "\x00" + key }

func (o *openUploads) get(bucket, key string) (UploadRecord, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rec, ok := o.m[destID(bucket, key)]
	return rec, ok
}

func (o *openUploads) put(rec UploadRecord) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]UploadRecord{}
	}
	o.m[destID(rec.Bucket, rec.Key)] = rec
}

// isClosed reports whether the Copier completed or aborted the upload.
func (o *openUploads) isClosed(uploadID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed[uploadID]
}

// forget closes the upload open for bucket/key, if any.
func (o *openUploads) forget(bucket, key string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id := destID(bucket, key)
	if rec, ok := o.m[id]; ok {
		if o.closed == nil {
			o.closed = map[string]bool{}
		}
		o.closed[rec.UploadID] = true
		delete(o.m, id)
	}
}
