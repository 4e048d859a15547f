package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda/handlertrace"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

const (
	defaultFunctionTimeout = 900 * time.Second
	// maxResponse is Lambda's synchronous response limit as its error message states it.
	maxResponse = 6291556
)

// fnRef is a parsed Lambda FunctionName: a name, name:qualifier, partial ARN or function ARN.
type fnRef struct {
	name, qualifier, region, account string
}

var fnNameRE = regexp.MustCompile(`^(?:(?:arn:aws[a-z-]*:lambda:([a-z0-9-]+):)?(\d{12}):function:)?([A-Za-z0-9_-]{1,64})(?::(\$LATEST|[A-Za-z0-9_-]{1,128}))?$`)

func parseFunctionName(s string) (fnRef, bool) {
	m := fnNameRE.FindStringSubmatch(s)
	if m == nil {
		return fnRef{}, false
	}
	return fnRef{region: m[1], account: m[2], name: m[3], qualifier: m[4]}, true
}

// arn is the function ARN Lambda reports as InvokedFunctionArn.
func (f fnRef) arn(region, account string) string {
	if f.region != "" {
		region = f.region
	}
	if f.account != "" {
		account = f.account
	}
	a := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, account, f.name)
	if f.qualifier != "" {
		a += ":" + f.qualifier
	}
	return a
}

// executedVersion is what Lambda reports as the version it ran: the qualifier when it is a
// version number, otherwise $LATEST (aliases are not modelled).
func (f fnRef) executedVersion() string {
	if f.qualifier != "" && strings.Trim(f.qualifier, "0123456789") == "" {
		return f.qualifier
	}
	return "$LATEST"
}

// invoke calls a function the way Lambda does: with a deadline of now + its timeout and a
// LambdaContext. It returns the response bytes, or the function error as Step Functions sees
// it (error name and cause). A handler still running at its deadline is abandoned, its
// context cancelled, and reported as Sandbox.Timedout. The error return is ctx's.
func invoke(ctx context.Context, fc FunctionConfig, gate *sync.RWMutex, requestID, arn string, payload []byte) ([]byte, *failure, error) {
	timeout := fc.Timeout
	if timeout <= 0 {
		timeout = defaultFunctionTimeout
	}
	deadline := time.Now().Add(timeout)
	fctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	fctx = lambdacontext.NewContext(fctx, &lambdacontext.LambdaContext{AwsRequestID: requestID, InvokedFunctionArn: arn})

	type outcome struct {
		resp   []byte
		errRes *messages.InvokeResponse_Error
	}
	done := make(chan outcome, 1)
	go func() {
		call := &guardedCall{gate: gate}
		var o outcome
		defer func() {
			if v := recover(); v != nil {
				o = outcome{errRes: panicResponse(v)}
			}
			call.end()
			done <- o
		}()
		call.begin()
		hctx := &traceContext{Context: handlertrace.NewContext(fctx, handlertrace.HandlerTrace{
			ResponseEvent: func(context.Context, any) { call.responding() },
		}), call: call}
		resp, err := fc.Handler.Invoke(hctx, payload)
		switch {
		case err != nil:
			o.errRes = errorResponse(err)
		case call.reflectHandler() && !call.responded():
			// aws-lambda-go's handler returned no value: its response is "null".
			o.resp = []byte("null")
		default:
			o.resp = bytes.Clone(resp)
		}
	}()

	var o outcome
	select {
	case o = <-done:
	case <-fctx.Done():
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if !time.Now().Before(deadline) {
		return nil, sandboxTimeout(requestID, timeout), nil
	}
	if o.errRes != nil {
		return nil, functionFailure(o.errRes), nil
	}
	if len(o.resp) > maxResponse {
		return nil, functionFailure(&messages.InvokeResponse_Error{
			Type:    "Function.ResponseSizeTooLarge",
			Message: fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", maxResponse),
		}), nil
	}
	return o.resp, nil, nil
}

// errorResponse mirrors aws-lambda-go's lambdaErrorResponse: a messages.InvokeResponse_Error
// value is reported as is; any other error by its Go type name, pointer stripped.
func errorResponse(err error) *messages.InvokeResponse_Error {
	if ive, ok := err.(messages.InvokeResponse_Error); ok {
		return &ive
	}
	return &messages.InvokeResponse_Error{Message: err.Error(), Type: goTypeName(err)}
}

// panicResponse mirrors aws-lambda-go's lambdaPanicResponse: the panic value's type names the
// error, its %v text is the message, and the stack is attached.
func panicResponse(v any) *messages.InvokeResponse_Error {
	if ive, ok := v.(messages.InvokeResponse_Error); ok {
		return &ive
	}
	return &messages.InvokeResponse_Error{Message: fmt.Sprintf("%v", v), Type: goTypeName(v), StackTrace: panicStack()}
}

func goTypeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}

// panicStack formats the panicking goroutine's stack as aws-lambda-go does. It is called from
// the deferred recover, so the first frames shown are runtime.gopanic's caller chain.
func panicStack() []*messages.InvokeResponse_Error_StackFrame {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(4, pcs) // Callers, panicStack, panicResponse, the deferred func
	var out []*messages.InvokeResponse_Error_StackFrame
	frames := runtime.CallersFrames(pcs[:n])
	for {
		fr, more := frames.Next()
		path, label := fr.File, fr.Function
		i := len(path)
		for k, g := 0, strings.Count(label, "/")+2; k < g; k++ {
			if i = strings.LastIndex(path[:i], "/"); i == -1 {
				break
			}
		}
		path = path[i+1:]
		label = label[strings.LastIndex(label, "/")+1:]
		label = label[strings.Index(label, ".")+1:]
		out = append(out, &messages.InvokeResponse_Error_StackFrame{Path: path, Line: int32(fr.Line), Label: label})
		if !more {
			return out
		}
	}
}

// functionFailure is the Step Functions error for a function error payload: the errorType
// names it (Lambda.Unknown when there is none) and the payload, as the runtime serialized it
// with json.Marshal, is the cause.
func functionFailure(e *messages.InvokeResponse_Error) *failure {
	name := e.Type
	if name == "" {
		name = "Lambda.Unknown"
	}
	cause, err := json.Marshal(e)
	if err != nil {
		cause = []byte(e.Message)
	}
	return &failure{name: name, cause: string(cause)}
}

func sandboxTimeout(requestID string, timeout time.Duration) *failure {
	return functionFailure(&messages.InvokeResponse_Error{
		Type:    "Sandbox.Timedout",
		Message: fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", requestID, timeout.Seconds()),
	})
}

// aws-lambda-go's lambda.NewHandler returns, from Invoke, a slice of a pooled buffer that it
// has already put back in the pool, so when the same handler runs concurrently (a Map) another
// invocation can overwrite the response before it is copied. Lambda never runs one process
// concurrently, so the executor guards each function with an RWMutex, using the hooks that
// handler offers: an invocation holds a read lock from its start until the handler looks up
// its handlertrace (just after taking its buffer from the pool); when the handler reports
// its response value (handlertrace's ResponseEvent, just before encoding it into the buffer)
// the invocation takes the write lock and holds it until the response is copied. An
// invocation therefore cannot take a buffer from the pool between another's release and copy.
// Functions that are not aws-lambda-go handlers hold only the read lock and are unaffected.

const handlertracePkg = "github.com/aws/aws-lambda-go/lambda/handlertrace"

type guardedCall struct {
	gate *sync.RWMutex

	mu                         sync.Mutex
	reading, writing           bool
	isReflect, hasResponseHook bool
}

func (c *guardedCall) begin() {
	c.gate.RLock()
	c.mu.Lock()
	c.reading = true
	c.mu.Unlock()
}

// started ends the start phase: the handler has its buffer.
func (c *guardedCall) started() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading {
		c.reading = false
		c.gate.RUnlock()
	}
}

func (c *guardedCall) traced() {
	c.mu.Lock()
	c.isReflect = true
	c.mu.Unlock()
	c.started()
}

func (c *guardedCall) responding() {
	c.started()
	c.mu.Lock()
	already := c.writing
	c.mu.Unlock()
	if already {
		return
	}
	c.gate.Lock()
	c.mu.Lock()
	c.writing, c.hasResponseHook = true, true
	c.mu.Unlock()
}

func (c *guardedCall) end() {
	c.started()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing {
		c.writing = false
		c.gate.Unlock()
	}
}

func (c *guardedCall) reflectHandler() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isReflect
}

func (c *guardedCall) responded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hasResponseHook
}

// traceContext notices aws-lambda-go's handler looking up its handlertrace.
type traceContext struct {
	context.Context
	call *guardedCall
}

func (c *traceContext) Value(key any) any {
	if t := reflect.TypeOf(key); t != nil && t.PkgPath() == handlertracePkg {
		c.call.traced()
	}
	return c.Context.Value(key)
}
