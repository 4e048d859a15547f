package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"syscall"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// apiErr is an S3 error as the SDK returns it: an operation error around an API error.
func apiErr(code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "CopyObject", Err: &smithy.GenericAPIError{Code: code, Message: code}}
}

// httpErr is an S3 error with its HTTP status, as the SDK returns a server error.
func httpErr(status int, code string) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "CopyObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: code},
		},
	}}
}

func typeName(err error) string {
	if err == nil {
		return "<nil>"
	}
	return reflect.TypeOf(err).Elem().Name()
}

func TestBoundary(t *testing.T) {
	cause := errors.New("the cause")
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name     string
		err      error
		wantType string
		// wantCause must still be found in the result's chain (errors.Is).
		wantCause error
	}{
		{"InvalidInput", &InvalidInput{Msg: "bad input", Err: cause}, "InvalidInput", cause},
		{"ConfigError", &ConfigError{Msg: "bad env", Err: cause}, "ConfigError", cause},
		{"BucketNotFound", &BucketNotFound{Msg: "no bucket", Err: cause}, "BucketNotFound", cause},
		{"BackupNotVersioned", &BackupNotVersioned{Msg: "unversioned", Err: cause}, "BackupNotVersioned", cause},
		{"AccessDenied", &AccessDenied{Msg: "denied", Err: cause}, "AccessDenied", cause},
		{"DeletionGuardTripped", &DeletionGuardTripped{Msg: "guard", Err: cause}, "DeletionGuardTripped", cause},
		{"MassChangeDetected", &MassChangeDetected{Msg: "mass change", Err: cause}, "MassChangeDetected", cause},
		{"BackupAlreadyRunning", &BackupAlreadyRunning{Msg: "running", Err: cause}, "BackupAlreadyRunning", cause},
		{"ThawIncomplete", &ThawIncomplete{Msg: "thawing", Err: cause}, "ThawIncomplete", cause},
		{"TargetNotVersioned", &TargetNotVersioned{Msg: "unversioned target", Err: cause}, "TargetNotVersioned", cause},
		{"RemovalsUnconfirmed", &RemovalsUnconfirmed{Msg: "unconfirmed", Err: cause}, "RemovalsUnconfirmed", cause},
		{"VerifyMismatch", &VerifyMismatch{Msg: "mismatch", Err: cause}, "VerifyMismatch", cause},
		{"UnsupportedBucket", &UnsupportedBucket{Msg: "directory bucket", Err: cause}, "UnsupportedBucket", cause},
		{"BatchInProgress", &BatchInProgress{Msg: "in progress", Err: cause}, "BatchInProgress", cause},
		{"BatchUnreadable", &BatchUnreadable{Msg: "unreadable", Err: cause}, "BatchUnreadable", cause},
		{"TransientError", &TransientError{Msg: "later", Err: cause}, "TransientError", cause},
		{"InternalError", &InternalError{Msg: "bug", Err: cause}, "InternalError", cause},
		{"named error without a cause", &InvalidInput{Msg: "bad input"}, "InvalidInput", nil},
		{"named error around a retryable cause keeps its name", &AccessDenied{Msg: "denied", Err: apiErr("SlowDown")}, "AccessDenied", nil},
		{"throttling", apiErr("SlowDown"), "TransientError", nil},
		{"server error", httpErr(500, "InternalError"), "TransientError", nil},
		{"deadline", context.DeadlineExceeded, "TransientError", context.DeadlineExceeded},
		{"network", netErr, "TransientError", syscall.ECONNREFUSED},
		{"access denied code", apiErr("AccessDenied"), "AccessDenied", nil},
		{"no such bucket code", apiErr("NoSuchBucket"), "BucketNotFound", nil},
		{"cancelled is not transient", context.Canceled, "InternalError", context.Canceled},
		{"anything else", cause, "InternalError", cause},
		{"nil", nil, "<nil>", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Wrapped with context, as errors travel up to a handler.
			var err error
			if tt.err != nil {
				err = fmt.Errorf("copy s3://b/k: %w", tt.err)
			}
			got := Boundary(err)
			if typeName(got) != tt.wantType {
				t.Fatalf("Boundary(%v) is a %s, want %s", err, typeName(got), tt.wantType)
			}
			if err == nil {
				return
			}
			if got.Error() != err.Error() {
				t.Errorf("message %q, want the whole chain's %q", got.Error(), err.Error())
			}
			if !errors.Is(got, tt.err) {
				t.Error("the original error is not in the chain")
			}
			if tt.wantCause != nil && !errors.Is(got, tt.wantCause) {
				t.Errorf("the cause %v is not in the chain", tt.wantCause)
			}
			var api smithy.APIError
			if errors.As(tt.err, &api) && !errors.As(got, &api) {
				t.Error("the API error cannot be found through the named error")
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"throttling", apiErr("SlowDown"), true},
		{"503", httpErr(503, "ServiceUnavailable"), true},
		{"500", httpErr(500, "InternalError"), true},
		{"403", httpErr(403, "AccessDenied"), false},
		{"deadline", fmt.Errorf("head: %w", context.DeadlineExceeded), true},
		{"cancelled", fmt.Errorf("head: %w", context.Canceled), false},
		{"network", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, true},
		{"access denied", apiErr("AccessDenied"), false},
		{"precondition failed", apiErr("PreconditionFailed"), false},
		{"not found", apiErr("NoSuchKey"), false},
		{"plain error", errors.New("boom"), false},
		{"TransientError", &TransientError{Msg: "later"}, true},
		{"wrapped TransientError", fmt.Errorf("batch: %w", &TransientError{Msg: "later"}), true},
		{"named permanent error around a retryable cause", &InvalidInput{Msg: "bad", Err: apiErr("SlowDown")}, false},
		{"the outermost named error decides", &TransientError{Msg: "later", Err: &InvalidInput{Msg: "bad"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestThrottled(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"SlowDown", apiErr("SlowDown"), true},
		{"503 SlowDown", httpErr(503, "SlowDown"), true},
		{"503 of a HEAD, without a body", httpErr(503, "ServiceUnavailable"), true},
		{"429", httpErr(429, "TooManyRequests"), true},
		{"ThrottlingException", apiErr("ThrottlingException"), true},
		{"wrapped", fmt.Errorf("copy part 3: %w", httpErr(503, "SlowDown")), true},
		{"500", httpErr(500, "InternalError"), false},
		{"network", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"access denied", httpErr(403, "AccessDenied"), false},
		{"plain error", errors.New("SlowDown"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Throttled(tt.err); got != tt.want {
				t.Errorf("Throttled(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsNotFound(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{apiErr("NotFound"), true},
		{apiErr("NoSuchKey"), true},
		{apiErr("NoSuchBucket"), true},
		{apiErr("NoSuchVersion"), true},
		{apiErr("AccessDenied"), false},
		{apiErr("NoSuchUpload"), false},
		{errors.New("NotFound"), false},
		{&InternalError{Msg: "head", Err: apiErr("NotFound")}, true},
	}
	for _, tt := range tests {
		if got := IsNotFound(tt.err); got != tt.want {
			t.Errorf("IsNotFound(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestMessageFallsBackToCause(t *testing.T) {
	if got := (&TransientError{Err: errors.New("slow down")}).Error(); !strings.Contains(got, "slow down") {
		t.Errorf("Error() = %q, want the cause's message", got)
	}
	if got := (&TransientError{Msg: "retry later", Err: errors.New("slow down")}).Error(); got != "retry later" {
		t.Errorf("Error() = %q, want Msg", got)
	}
}
