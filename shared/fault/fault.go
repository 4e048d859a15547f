// Package fault defines the named errors that Step Functions branches on: a handler returns one of
// these types at its boundary, and aws-lambda-go reports the Go type name as the error name. Each
// keeps the error it stands for as its cause (Err, Unwrap), so errors.Is and errors.As see through
// it.
package fault

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// message is the text of a named error: its Msg, else its cause's.
func message(msg string, err error) string {
	if msg == "" && err != nil {
		return err.Error()
	}
	return msg
}

// InvalidInput is malformed execution input or a malformed work batch; retrying cannot help.
type InvalidInput struct {
	Msg string
	Err error
}

func (e *InvalidInput) Error() string   { return message(e.Msg, e.Err) }
func (e *InvalidInput) Unwrap() error   { return e.Err }
func (e *InvalidInput) retryable() bool { return false }

// ConfigError is a missing or malformed environment variable.
type ConfigError struct {
	Msg string
	Err error
}

func (e *ConfigError) Error() string   { return message(e.Msg, e.Err) }
func (e *ConfigError) Unwrap() error   { return e.Err }
func (e *ConfigError) retryable() bool { return false }

// BucketNotFound names a configured bucket that does not exist.
type BucketNotFound struct {
	Msg string
	Err error
}

func (e *BucketNotFound) Error() string   { return message(e.Msg, e.Err) }
func (e *BucketNotFound) Unwrap() error   { return e.Err }
func (e *BucketNotFound) retryable() bool { return false }

// BackupNotVersioned means the backup bucket does not have versioning enabled: copying into it
// would overwrite history and deletions would destroy data, so nothing runs.
type BackupNotVersioned struct {
	Msg string
	Err error
}

func (e *BackupNotVersioned) Error() string   { return message(e.Msg, e.Err) }
func (e *BackupNotVersioned) Unwrap() error   { return e.Err }
func (e *BackupNotVersioned) retryable() bool { return false }

// AccessDenied means S3 refused a request the function needs.
type AccessDenied struct {
	Msg string
	Err error
}

func (e *AccessDenied) Error() string   { return message(e.Msg, e.Err) }
func (e *AccessDenied) Unwrap() error   { return e.Err }
func (e *AccessDenied) retryable() bool { return false }

// DeletionGuardTripped means a run would mark more of the backup deleted than allowed.
type DeletionGuardTripped struct {
	Msg string
	Err error
}

func (e *DeletionGuardTripped) Error() string   { return message(e.Msg, e.Err) }
func (e *DeletionGuardTripped) Unwrap() error   { return e.Err }
func (e *DeletionGuardTripped) retryable() bool { return false }

// MassChangeDetected means an unusual share of the backup's objects changed in one run: the
// copies were made (the old contents stay as noncurrent versions), and a person should look.
type MassChangeDetected struct {
	Msg string
	Err error
}

func (e *MassChangeDetected) Error() string   { return message(e.Msg, e.Err) }
func (e *MassChangeDetected) Unwrap() error   { return e.Err }
func (e *MassChangeDetected) retryable() bool { return false }

// BackupAlreadyRunning means another execution is backing up the same source into the same
// backup: this one copied nothing and ends with this error, so that a person hears of it.
type BackupAlreadyRunning struct {
	Msg string
	Err error
}

func (e *BackupAlreadyRunning) Error() string   { return message(e.Msg, e.Err) }
func (e *BackupAlreadyRunning) Unwrap() error   { return e.Err }
func (e *BackupAlreadyRunning) retryable() bool { return false }

// ThawIncomplete means archived versions were still thawing when a restore's wait for them ran
// out: nothing was copied, the report names every object, and the thaws already made stay
// readable for thawDays days, so the restore can be run again.
type ThawIncomplete struct {
	Msg string
	Err error
}

func (e *ThawIncomplete) Error() string   { return message(e.Msg, e.Err) }
func (e *ThawIncomplete) Unwrap() error   { return e.Err }
func (e *ThawIncomplete) retryable() bool { return false }

// TargetNotVersioned means an exact restore (one that removes objects) was asked for a target
// bucket without versioning enabled: there a removal would destroy data instead of leaving a
// delete marker over it, so nothing runs.
type TargetNotVersioned struct {
	Msg string
	Err error
}

func (e *TargetNotVersioned) Error() string   { return message(e.Msg, e.Err) }
func (e *TargetNotVersioned) Unwrap() error   { return e.Err }
func (e *TargetNotVersioned) retryable() bool { return false }

// RemovalsUnconfirmed means an exact restore planned a number of removals other than the one its
// input confirmed (confirmRemovals, from a dry run): the target changed since the preview, or the
// count is wrong. Nothing was copied or removed.
type RemovalsUnconfirmed struct {
	Msg string
	Err error
}

func (e *RemovalsUnconfirmed) Error() string   { return message(e.Msg, e.Err) }
func (e *RemovalsUnconfirmed) Unwrap() error   { return e.Err }
func (e *RemovalsUnconfirmed) retryable() bool { return false }

// VerifyMismatch means a verify run (a restore drill) found the backup not holding what it
// should: content that differs from an unchanged source object, a version the last backup wrote
// that is gone, or an object that could not be read. Every one is named in the drill's report.
type VerifyMismatch struct {
	Msg string
	Err error
}

func (e *VerifyMismatch) Error() string   { return message(e.Msg, e.Err) }
func (e *VerifyMismatch) Unwrap() error   { return e.Err }
func (e *VerifyMismatch) retryable() bool { return false }

// UnsupportedBucket means a configured bucket is of a kind bucketvault cannot back up or restore
// correctly, such as an S3 Express One Zone directory bucket (its listings are not in key order,
// so merging the source's listing with the backup's would be wrong): nothing runs.
type UnsupportedBucket struct {
	Msg string
	Err error
}

func (e *UnsupportedBucket) Error() string   { return message(e.Msg, e.Err) }
func (e *UnsupportedBucket) Unwrap() error   { return e.Err }
func (e *UnsupportedBucket) retryable() bool { return false }

// BatchInProgress means a copier stopped a batch before its deadline with work left (objects not
// started, or a copy in parts that resumes from its finished parts): the Map retries it many more
// times than a TransientError, since each attempt makes progress. Nothing retries it in-process:
// the invocation is out of time.
type BatchInProgress struct {
	Msg string
	Err error
}

func (e *BatchInProgress) Error() string   { return message(e.Msg, e.Err) }
func (e *BatchInProgress) Unwrap() error   { return e.Err }
func (e *BatchInProgress) retryable() bool { return false }

// BatchUnreadable means a copier could not read the batch it was given.
type BatchUnreadable struct {
	Msg string
	Err error
}

func (e *BatchUnreadable) Error() string   { return message(e.Msg, e.Err) }
func (e *BatchUnreadable) Unwrap() error   { return e.Err }
func (e *BatchUnreadable) retryable() bool { return false }

// TransientError is a failure that may succeed when retried (throttling, network, deadline).
type TransientError struct {
	Msg string
	Err error
}

func (e *TransientError) Error() string   { return message(e.Msg, e.Err) }
func (e *TransientError) Unwrap() error   { return e.Err }
func (e *TransientError) retryable() bool { return true }

// InternalError is any other failure.
type InternalError struct {
	Msg string
	Err error
}

func (e *InternalError) Error() string   { return message(e.Msg, e.Err) }
func (e *InternalError) Unwrap() error   { return e.Err }
func (e *InternalError) retryable() bool { return false }

// Boundary turns any error into the named error a handler returns to Lambda, keeping the full
// message and err itself as the cause. Named errors anywhere in the chain win; otherwise
// Retryable decides, then the S3 error codes AccessDenied and NoSuchBucket.
func Boundary(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case is[*InvalidInput](err):
		return &InvalidInput{Msg: msg, Err: err}
	case is[*ConfigError](err):
		return &ConfigError{Msg: msg, Err: err}
	case is[*BucketNotFound](err):
		return &BucketNotFound{Msg: msg, Err: err}
	case is[*BackupNotVersioned](err):
		return &BackupNotVersioned{Msg: msg, Err: err}
	case is[*AccessDenied](err):
		return &AccessDenied{Msg: msg, Err: err}
	case is[*DeletionGuardTripped](err):
		return &DeletionGuardTripped{Msg: msg, Err: err}
	case is[*MassChangeDetected](err):
		return &MassChangeDetected{Msg: msg, Err: err}
	case is[*BackupAlreadyRunning](err):
		return &BackupAlreadyRunning{Msg: msg, Err: err}
	case is[*ThawIncomplete](err):
		return &ThawIncomplete{Msg: msg, Err: err}
	case is[*TargetNotVersioned](err):
		return &TargetNotVersioned{Msg: msg, Err: err}
	case is[*RemovalsUnconfirmed](err):
		return &RemovalsUnconfirmed{Msg: msg, Err: err}
	case is[*VerifyMismatch](err):
		return &VerifyMismatch{Msg: msg, Err: err}
	case is[*UnsupportedBucket](err):
		return &UnsupportedBucket{Msg: msg, Err: err}
	case is[*BatchInProgress](err):
		return &BatchInProgress{Msg: msg, Err: err}
	case is[*BatchUnreadable](err):
		return &BatchUnreadable{Msg: msg, Err: err}
	case is[*TransientError](err):
		return &TransientError{Msg: msg, Err: err}
	case is[*InternalError](err):
		return &InternalError{Msg: msg, Err: err}
	case Retryable(err):
		return &TransientError{Msg: msg, Err: err}
	case IsCode(err, "AccessDenied"):
		return &AccessDenied{Msg: msg, Err: err}
	case IsCode(err, "NoSuchBucket"):
		return &BucketNotFound{Msg: msg, Err: err}
	}
	return &InternalError{Msg: msg, Err: err}
}

// is reports whether err's chain holds an error of type T.
func is[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

var standard = retry.NewStandard()

// named is implemented by every named error of this package.
type named interface {
	error
	retryable() bool
}

// Retryable is the one place that decides whether an S3 or network error may succeed when tried
// again: the SDK's standard retryable set (throttling, 5xx, connection errors), plus deadlines.
// A cancelled context never is. A named error has decided already, whatever its cause: only a
// TransientError is retryable (the outermost named error in the chain counts).
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var n named
	if errors.As(err, &n) {
		return n.retryable()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return standard.IsErrorRetryable(err)
}

// throttles are the SDK's throttling errors: its throttling codes (SlowDown, Throttling,
// ThrottlingException, RequestLimitExceeded, ...) and a 429 without a modeled error.
var throttles = retry.IsErrorThrottles(retry.DefaultThrottles)

// Throttled reports whether err is the server asking for fewer requests: one of the SDK's
// throttling errors, or any answer with HTTP status 503 or 429. S3 answers 503 SlowDown while it
// scales a prefix; a HEAD's answer has no body, so its code is only "ServiceUnavailable".
func Throttled(err error) bool {
	if err == nil {
		return false
	}
	if throttles.IsErrorThrottle(err).Bool() {
		return true
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		code := resp.HTTPStatusCode()
		return code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests
	}
	return false
}

// IsCode reports whether err is an S3 API error with the given code.
func IsCode(err error, codes ...string) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	for _, c := range codes {
		if apiErr.ErrorCode() == c {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err says an object or bucket does not exist (HEAD answers 404 with
// the bare code NotFound).
func IsNotFound(err error) bool {
	return IsCode(err, "NotFound", "NoSuchKey", "NoSuchBucket", "NoSuchVersion")
}
