// Package lambdafn turns a handler function into the lambda.Handler that both the Lambda runtime
// and the local executor call: strict JSON decoding of the payload, and a configuration error
// reported as the function's named error on every invocation (visible in the execution history)
// instead of an opaque init failure.
package lambdafn

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

// Handler wraps fn; when configErr is set, every invocation fails with it.
func Handler[Req, Resp any](fn func(context.Context, Req) (Resp, error), configErr error) lambda.Handler {
	if configErr != nil {
		fn = func(context.Context, Req) (Resp, error) {
			var zero Resp
			return zero, configErr
		}
	}
	return lambda.NewHandlerWithOptions(fn, lambda.WithDisallowUnknownFields(true))
}

// Build constructs a function's handler; logger writes JSON to stdout, where Lambda collects it.
type Build func(ctx context.Context, logger *slog.Logger) (lambda.Handler, error)

// Main is a function's whole main: build the handler once per execution environment and start
// the Lambda runtime loop. A build error (no S3 client) exits non-zero, which Lambda reports as
// an init failure.
func Main(build Build) {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := build(context.Background(), logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lambda.Start(h)
}

// StopAt is when an invocation should stop taking new work so that it can finish what is in
// flight, write its state and return before Lambda's deadline: a tenth of its time before the
// deadline, at least 10 s. Zero when the context has no deadline.
func StopAt(ctx context.Context) time.Time {
	deadline, ok := ctx.Deadline()
	if !ok {
		return time.Time{}
	}
	return deadline.Add(-max(time.Until(deadline)/10, 10*time.Second))
}
