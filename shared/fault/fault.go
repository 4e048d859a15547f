// Package fault defines the named errors that Step Functions branches on: a handler returns one of
// these types at its boundary, and aws-lambda-go reports the Go type name as the error name.
package fault

import (
	"context"
	"errors"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
)

// InvalidInput is malformed execution input or a malformed work batch; retrying cannot help.
type InvalidInput struct{ Msg string }

func (e *InvalidInput) Error() string { return e.Msg }

// ConfigError is a missing or malformed environment variable.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// BucketNotFound names a configured bucket that does not exist.
type BucketNotFound struct{ Msg string }

func (e *BucketNotFound) Error() string { return e.Msg }

// BackupNotVersioned means the backup bucket does not have versioning enabled: copying into it
// would overwrite history and deletions would destroy data, so nothing runs.
type BackupNotVersioned struct{ Msg string }

func (e *BackupNotVersioned) Error() string { return e.Msg }

// AccessDenied means S3 refused a request the function needs.
type AccessDenied struct{ Msg string }

func (e *AccessDenied) Error() string { return e.Msg }

// DeletionGuardTripped means a run would mark more of the backup deleted than allowed.
type DeletionGuardTripped struct{ Msg string }

func (e *DeletionGuardTripped) Error() string { return e.Msg }

// BatchUnreadable means a copier could not read the batch it was given.
type BatchUnreadable struct{ Msg string }

func (e *BatchUnreadable) Error() string { return e.Msg }

// TransientError is a failure that may succeed when retried (throttling, network, deadline).
type TransientError struct{ Msg string }

func (e *TransientError) Error() string { return e.Msg }

// InternalError is any other failure.
type InternalError struct{ Msg string }

func (e *InternalError) Error() string { return e.Msg }

// Boundary turns any error into the named error a handler returns to Lambda, keeping the full
// message. Named errors anywhere in the chain win; otherwise Retryable decides.
func Boundary(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var (
		invalid   *InvalidInput
		config    *ConfigError
		notFound  *BucketNotFound
		unver     *BackupNotVersioned
		denied    *AccessDenied
		guard     *DeletionGuardTripped
		batch     *BatchUnreadable
		transient *TransientError
	)
	switch {
	case errors.As(err, &invalid):
		return &InvalidInput{msg}
	case errors.As(err, &config):
		return &ConfigError{msg}
	case errors.As(err, &notFound):
		return &BucketNotFound{msg}
	case errors.As(err, &unver):
		return &BackupNotVersioned{msg}
	case errors.As(err, &denied):
		return &AccessDenied{msg}
	case errors.As(err, &guard):
		return &DeletionGuardTripped{msg}
	case errors.As(err, &batch):
		return &BatchUnreadable{msg}
	case errors.As(err, &transient):
		return &TransientError{msg}
	case Retryable(err):
		return &TransientError{msg}
	case IsCode(err, "AccessDenied"):
		return &AccessDenied{msg}
	case IsCode(err, "NoSuchBucket"):
		return &BucketNotFound{msg}
	}
	return &InternalError{msg}
}

var standard = retry.NewStandard()

// Retryable is the one place that decides whether an S3 or network error may succeed when tried
// again: the SDK's standard retryable set (throttling, 5xx, connection errors), plus deadlines.
func Retryable(err error) bool {
	if err == nil {
		return false
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
