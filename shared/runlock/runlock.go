// Package runlock lets one backup execution at a time copy a source into a backup. Two runs that
// overlap (a nightly schedule and a 48-hour execution limit, or a run started by hand during the
// nightly one) would both copy the same new keys and add duplicate versions.
//
// The lock is one object in the run bucket, lock/<source>/<backup>.json, naming the execution that
// holds it. The first lister invocation takes it with a conditional write (If-None-Match: *), so
// two executions cannot both create it. A lock is free again, and taken over with If-Match on its
// ETag, when the execution it names has written its report (the reporter always runs, on success
// or failure) or when it has expired (DefaultTTL after it was taken: an execution stopped by hand
// or timed out writes no report). No request releases it, so a run that crashes cannot hold it
// forever.
package runlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// DefaultTTL is how long a lock holds without its execution's report: the backup state machine's
// TimeoutSeconds (48 hours), after which Step Functions has ended the execution, plus an hour.
const DefaultTTL = 49 * time.Hour

// attempts bounds the tries when another execution writes the lock at the same moment (S3's 409
// ConditionalRequestConflict, or a takeover that lost its If-Match race).
const attempts = 3

// Key is the lock object of a source and backup bucket pair.
func Key(source, backup string) string { return "lock/" + source + "/" + backup + ".json" }

// Lock is the lock object's content.
type Lock struct {
	Execution  string    `json:"execution"`
	AcquiredAt time.Time `json:"acquiredAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// S3 is what taking the lock needs of an S3 client.
type S3 interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Locker takes the lock of one source and backup pair in a run bucket.
type Locker struct {
	S3             S3
	RunBucket      string
	Source, Backup string
	TTL            time.Duration // DefaultTTL when 0
	Opts           []func(*s3.Options)
}

// Acquire takes the lock for execution at now. It returns nil when execution holds it (also when
// it already did: a retried first invocation), and a *fault.BackupAlreadyRunning naming the holder
// when another execution that has not finished holds it.
func (l *Locker) Acquire(ctx context.Context, execution string, now time.Time) error {
	ttl := l.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	body, err := json.Marshal(Lock{Execution: execution, AcquiredAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()})
	if err != nil {
		return err
	}
	key := Key(l.Source, l.Backup)
	var lastErr error
	for range attempts {
		err := l.put(ctx, key, body, &s3.PutObjectInput{IfNoneMatch: aws.String("*")})
		if err == nil {
			return nil
		}
		if !fault.IsCode(err, "PreconditionFailed", "ConditionalRequestConflict") {
			return fmt.Errorf("take the backup lock s3://%s/%s: %w", l.RunBucket, key, err)
		}
		lastErr = err
		held, etag, found, err := l.read(ctx, key)
		if err != nil {
			return err
		}
		if !found {
			continue // released between the two requests (removed by hand): create it again
		}
		if held.Execution == execution {
			return nil
		}
		free, why, err := l.free(ctx, held, now)
		if err != nil {
			return err
		}
		if !free {
			return &fault.BackupAlreadyRunning{Msg: fmt.Sprintf(
				"execution %s has been backing up s3://%s into s3://%s since %s and has not finished (no report yet); this run copied nothing. "+
					"The lock s3://%s/%s frees itself when that execution writes its report, or at %s; if it is no longer running, delete the lock object",
				held.Execution, l.Source, l.Backup, held.AcquiredAt.Format(time.RFC3339), l.RunBucket, key, held.ExpiresAt.Format(time.RFC3339))}
		}
		err = l.put(ctx, key, body, &s3.PutObjectInput{IfMatch: aws.String(etag)})
		if err == nil {
			return nil
		}
		if !fault.IsCode(err, "PreconditionFailed", "ConditionalRequestConflict") {
			return fmt.Errorf("take over the backup lock s3://%s/%s from %s (%s): %w", l.RunBucket, key, held.Execution, why, err)
		}
		lastErr = err // another execution took it over first: look again
	}
	return fmt.Errorf("take the backup lock s3://%s/%s: other executions kept writing it: %w", l.RunBucket, key, lastErr)
}

// free reports whether a held lock may be taken over, and why.
func (l *Locker) free(ctx context.Context, held Lock, now time.Time) (bool, string, error) {
	if !now.Before(held.ExpiresAt) {
		return true, "expired at " + held.ExpiresAt.Format(time.RFC3339), nil
	}
	reportKey := batch.ReportKey(held.Execution)
	out, err := l.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(l.RunBucket), Key: aws.String(reportKey), Range: aws.String("bytes=0-0")}, l.Opts...)
	if fault.IsNotFound(err) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("look for the report of %s, which holds the backup lock: %w", held.Execution, err)
	}
	out.Body.Close()
	return true, "finished: s3://" + l.RunBucket + "/" + reportKey + " exists", nil
}

func (l *Locker) put(ctx context.Context, key string, body []byte, in *s3.PutObjectInput) error {
	in.Bucket, in.Key = aws.String(l.RunBucket), aws.String(key)
	in.Body, in.ContentType = bytes.NewReader(body), aws.String("application/json")
	_, err := l.S3.PutObject(ctx, in, l.Opts...)
	return err
}

// read returns the lock object's content and ETag; found is false when there is none.
func (l *Locker) read(ctx context.Context, key string) (held Lock, etag string, found bool, err error) {
	out, err := l.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(l.RunBucket), Key: aws.String(key)}, l.Opts...)
	if fault.IsNotFound(err) {
		return Lock{}, "", false, nil
	}
	if err != nil {
		return Lock{}, "", false, fmt.Errorf("read the backup lock s3://%s/%s: %w", l.RunBucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, 64<<10))
	if err != nil {
		return Lock{}, "", false, fmt.Errorf("read the backup lock s3://%s/%s: %w", l.RunBucket, key, err)
	}
	if err := strictjson.Unmarshal(data, &held); err != nil || held.Execution == "" {
		return Lock{}, "", false, fmt.Errorf("the backup lock s3://%s/%s is not a lock (%q): %w; delete it if no backup is running",
			l.RunBucket, key, data, errors.Join(err, errors.New("no execution named")))
	}
	return held, aws.ToString(out.ETag), true, nil
}
