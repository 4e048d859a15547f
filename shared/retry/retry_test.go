package retry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/s3client"
)

var (
	slowDown = &smithy.GenericAPIError{Code: "SlowDown", Message: "reduce your request rate"}
	denied   = &smithy.GenericAPIError{Code: "AccessDenied", Message: "access denied"}
)

func TestDo(t *testing.T) {
	tests := []struct {
		name string
		// errs are the errors of the attempts in turn; past its end an attempt succeeds.
		errs         []error
		maxAttempts  int
		wantAttempts int
		wantErr      error // nil: success
		wantRetries  int64
	}{
		{"first attempt succeeds", nil, 3, 1, nil, 0},
		{"retryable errors, then success", []error{slowDown, slowDown}, 3, 3, nil, 2},
		{"a deadline of one request is retryable", []error{fmt.Errorf("head: %w", context.DeadlineExceeded)}, 3, 2, nil, 1},
		{"permanent error is not retried", []error{denied}, 3, 1, denied, 0},
		{"marked permanent is not retried", []error{Permanent(slowDown)}, 3, 1, slowDown, 0},
		{"marked permanent inside a wrap is not retried", []error{fmt.Errorf("copy: %w", Permanent(slowDown))}, 3, 1, slowDown, 0},
		{"cancellation is not retried", []error{fmt.Errorf("copy: %w", context.Canceled)}, 3, 1, context.Canceled, 0},
		{"attempts run out", []error{slowDown, slowDown, slowDown, slowDown}, 3, 3, slowDown, 2},
		{"zero means the default", []error{slowDown, slowDown, slowDown, slowDown, slowDown, slowDown, slowDown}, 0, DefaultMaxAttempts, slowDown, DefaultMaxAttempts - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				attempts []int
				waits    []time.Duration
				counter  s3client.RetryCounter
			)
			p := Policy{MaxAttempts: tt.maxAttempts, MaxBackoff: time.Second, Retries: &counter,
				Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }}
			err := Do(context.Background(), p, func(_ context.Context, attempt int) error {
				attempts = append(attempts, attempt)
				if attempt <= len(tt.errs) {
					return tt.errs[attempt-1]
				}
				return nil
			})
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v, want success", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v in its chain", err, tt.wantErr)
			}
			if _, ok := err.(*permanentError); ok {
				t.Errorf("Do returned the permanent mark, not the error it marks: %v", err)
			}
			if len(attempts) != tt.wantAttempts {
				t.Fatalf("%d attempts, want %d", len(attempts), tt.wantAttempts)
			}
			for i, a := range attempts {
				if a != i+1 {
					t.Fatalf("attempt numbers %v, want 1, 2, …", attempts)
				}
			}
			if counter.Count() != tt.wantRetries || len(waits) != int(tt.wantRetries) {
				t.Errorf("%d retries counted and %d waits, want %d", counter.Count(), len(waits), tt.wantRetries)
			}
			for _, d := range waits {
				if d < 0 || d > time.Second {
					t.Errorf("waited %v, want within [0, MaxBackoff]", d)
				}
			}
		})
	}
}

func TestDoExhaustedNamesTheAttempts(t *testing.T) {
	err := Do(context.Background(), Policy{MaxAttempts: 2, Sleep: func(context.Context, time.Duration) error { return nil }},
		func(context.Context, int) error { return slowDown })
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 2 || !errors.Is(err, slowDown) {
		t.Fatalf("err = %v, want an ExhaustedError after 2 attempts around the last error", err)
	}
}

// Nothing is tried once the context is done: not a first attempt, not a retry after a failed
// one, not after a wait that the context interrupted.
func TestDoRefusesACancelledContext(t *testing.T) {
	tests := []struct {
		name string
		run  func(ctx context.Context, cancel context.CancelFunc) (attempts int, err error)
		want int
	}{
		{"cancelled before the first attempt", func(ctx context.Context, cancel context.CancelFunc) (int, error) {
			cancel()
			n := 0
			err := Do(ctx, Policy{}, func(context.Context, int) error { n++; return nil })
			return n, err
		}, 0},
		{"cancelled during an attempt", func(ctx context.Context, cancel context.CancelFunc) (int, error) {
			n := 0
			err := Do(ctx, Policy{Sleep: func(context.Context, time.Duration) error { return nil }}, func(context.Context, int) error {
				n++
				cancel()
				return slowDown
			})
			return n, err
		}, 1},
		{"cancelled during the wait", func(ctx context.Context, cancel context.CancelFunc) (int, error) {
			n := 0
			err := Do(ctx, Policy{}, func(context.Context, int) error {
				n++
				cancel() // the real sleep returns at once with the context's error
				return slowDown
			})
			return n, err
		}, 1},
		{"a sleep that ignores the cancellation", func(ctx context.Context, cancel context.CancelFunc) (int, error) {
			n := 0
			err := Do(ctx, Policy{Sleep: func(context.Context, time.Duration) error { cancel(); return nil }}, func(context.Context, int) error {
				n++
				return slowDown
			})
			return n, err
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n, err := tt.run(ctx, cancel)
			if n != tt.want {
				t.Errorf("%d attempts, want %d", n, tt.want)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled in its chain", err)
			}
		})
	}
}
