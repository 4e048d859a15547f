// Package lambdafn turns a handler function into the lambda.Handler that both the Lambda runtime
// and the local executor call: strict JSON decoding of the payload, and a configuration error
// reported as the function's named error on every invocation (visible in the execution history)
// instead of an opaque init failure.
package lambdafn

import (
	"context"

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
