// Package retry runs an operation again, after an exponential backoff with jitter, while its error
// may succeed when tried again. fault.Retryable alone decides which errors those are; an operation
// can mark an error Permanent, and nothing is tried once the context is done.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// Defaults of a Policy.
const (
	DefaultMaxAttempts = 6                // attempts in all, the first included
	DefaultMaxBackoff  = 20 * time.Second // longest wait between two attempts
)

// Policy says how often and how patiently to try. The zero value uses the defaults.
type Policy struct {
	// MaxAttempts bounds the attempts, the first included; zero or less means DefaultMaxAttempts.
	MaxAttempts int
	// MaxBackoff caps the wait between two attempts; zero or less means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Sleep waits between attempts and returns early with ctx's error when ctx ends; nil sleeps
	// for real.
	Sleep func(ctx context.Context, d time.Duration) error
	// Retries, when set, counts every retry (every attempt after the first).
	Retries *s3client.RetryCounter
}

// Permanent marks err as not to be tried again, whatever it is. Do returns err itself (or, when
// the marked error was wrapped, the wrap, in which the mark changes nothing but this).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// ExhaustedError is the error of the last attempt when every attempt failed with a retryable error.
type ExhaustedError struct {
	Attempts int
	Err      error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("after %d attempts: %v", e.Attempts, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *ExhaustedError) Unwrap() error { return e.Err }

// Do runs op until it succeeds, fails with an error that is not retryable (fault.Retryable) or
// marked Permanent, or has failed MaxAttempts times. op gets the attempt number, 1 for the first,
// so that it can look before it acts again. No attempt starts once ctx is done: an already
// cancelled context returns its error without calling op, and an attempt that fails after ctx
// ended is the last.
func Do(ctx context.Context, p Policy, op func(ctx context.Context, attempt int) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	attempts := p.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	maxBackoff := p.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	backoff := awsretry.NewExponentialJitterBackoff(maxBackoff)
	for attempt := 1; ; attempt++ {
		err := op(ctx, attempt)
		if err == nil {
			return nil
		}
		if perm, ok := err.(*permanentError); ok {
			return perm.err
		}
		var perm *permanentError
		if errors.As(err, &perm) || !fault.Retryable(err) {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return err
			}
			return errors.Join(err, cerr)
		}
		if attempt >= attempts {
			return &ExhaustedError{Attempts: attempt, Err: err}
		}
		d, derr := backoff.BackoffDelay(attempt, err)
		if derr != nil {
			d = time.Second
		}
		if p.Retries != nil {
			p.Retries.Add(1)
		}
		if serr := sleep(ctx, p.Sleep, d); serr != nil {
			return errors.Join(err, serr)
		}
		if cerr := ctx.Err(); cerr != nil {
			return errors.Join(err, cerr)
		}
	}
}

func sleep(ctx context.Context, fn func(context.Context, time.Duration) error, d time.Duration) error {
	if fn != nil {
		return fn(ctx, d)
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
