package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
)

// Function is a Lambda function as the executor calls it: aws-lambda-go's lambda.Handler
// method set, so lambda.NewHandler(h) is one.
type Function interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// FunctionConfig is one function the definition may call.
type FunctionConfig struct {
	Handler Function
	Timeout time.Duration // 0 means 900s, Lambda's maximum
}

// S3 is what ItemReader and ResultWriter need (satisfied by *s3.Client).
type S3 interface {
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Arn is the ARN of the state machine the executor runs.
func (e *Executor) Arn() string { return e.smArn }

// Options configure an Executor.
type Options struct {
	StateMachineName string                    // required, e.g. "bucketvault-backup"
	Region           string                    // default "us-east-1"
	Account          string                    // default "123456789012"
	RoleArn          string                    // default arn:aws:iam::<Account>:role/<StateMachineName>-role
	Functions        map[string]FunctionConfig // key: function NAME; FunctionName may be the name or any function ARN/qualified ARN with that name
	S3               S3
	// StateMachines are the state machines a states:startExecution.sync:2 Task may start, by
	// state machine ARN (another Executor is one).
	StateMachines map[string]StateMachine
	Sleep         func(ctx context.Context, d time.Duration) error // nil: real sleep
	Logger        *slog.Logger                                     // nil: discard
}

// StateMachine is a state machine a Task starts: Run runs one execution to its end (*Executor).
type StateMachine interface {
	Run(ctx context.Context, name string, input []byte) (*Execution, error)
}

// Executor runs one compiled definition; it is safe for concurrent Runs.
type Executor struct {
	opts   Options
	def    *machine
	smArn  string
	log    *slog.Logger
	sleep  func(ctx context.Context, d time.Duration) error
	random func() float64
	gates  map[string]*sync.RWMutex // per function; see guardedCall
}

// StartError is why Run refused to start an execution, as StartExecution would.
type StartError struct {
	Msg string
	Err error
}

func (e *StartError) Error() string {
	if e.Err != nil {
		return "start execution: " + e.Msg + ": " + e.Err.Error()
	}
	return "start execution: " + e.Msg
}

func (e *StartError) Unwrap() error { return e.Err }

// Execution is the outcome of one Run.
type Execution struct {
	Arn, Name, StateMachineArn string
	Status                     string // SUCCEEDED | FAILED | TIMED_OUT | ABORTED (ctx cancelled mid-run)
	Input                      json.RawMessage
	Output                     json.RawMessage // SUCCEEDED only
	Error                      string          // FAILED (and TIMED_OUT: States.Timeout)
	Cause                      string
	StartDate, StopDate        time.Time
	Events                     []HistoryEvent
}

// HistoryJSON renders the events as GetExecutionHistory does: {"events":[...]}.
func (x *Execution) HistoryJSON() ([]byte, error) {
	events := x.Events
	if events == nil {
		events = []HistoryEvent{}
	}
	return encodeJSON(struct {
		Events []HistoryEvent `json:"events"`
	}{events})
}

// New compiles definition (JSONPath Amazon States Language, ${…} substitutions already
// made). It returns a *DefinitionError naming the field and state of anything the executor
// does not implement or AWS would reject.
func New(definition []byte, opts Options) (*Executor, error) {
	const where = "options"
	if opts.StateMachineName == "" || len(opts.StateMachineName) > 80 || !validName(opts.StateMachineName) {
		return nil, invalid(where, "StateMachineName", "%q must be 1 to 80 characters without whitespace or special characters", opts.StateMachineName)
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "123456789012"
	}
	if opts.RoleArn == "" {
		opts.RoleArn = fmt.Sprintf("arn:aws:iam::%s:role/%s-role", opts.Account, opts.StateMachineName)
	}
	fns := make(map[string]FunctionConfig, len(opts.Functions))
	for name, fc := range opts.Functions {
		if fc.Handler == nil {
			return nil, invalid(where, "Functions", "function %q has no Handler", name)
		}
		fns[name] = fc
	}
	opts.Functions = fns
	def, usesS3, err := parseDefinition(definition, &opts)
	if err != nil {
		return nil, err
	}
	if usesS3 && opts.S3 == nil {
		return nil, invalid(where, "S3", "the definition reads or writes S3 (ItemReader/ResultWriter) but no S3 client is set")
	}
	e := &Executor{
		opts:   opts,
		def:    def,
		smArn:  fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", opts.Region, opts.Account, opts.StateMachineName),
		log:    opts.Logger,
		sleep:  opts.Sleep,
		random: rand.Float64,
		gates:  make(map[string]*sync.RWMutex, len(fns)),
	}
	for name := range fns {
		e.gates[name] = &sync.RWMutex{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.sleep == nil {
		e.sleep = sleepContext
	}
	return e, nil
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Run runs one execution to completion. The returned error is only for misuse (invalid
// name, invalid or oversized input JSON, ctx cancelled before start); a failed execution is
// an Execution with Status "FAILED". An empty name is replaced by a UUID, as StartExecution
// does; empty input is "{}".
func (e *Executor) Run(ctx context.Context, name string, input []byte) (*Execution, error) {
	if name == "" {
		name = uuid.NewString()
	}
	if len(name) > 80 || !validName(name) {
		return nil, &StartError{Msg: fmt.Sprintf("invalid execution name %q: 1 to 80 characters, no whitespace, brackets, wildcards, control characters or any of \" # %% \\ ^ | ~ ` $ & , ; : /", name)}
	}
	input = bytes.TrimSpace(input)
	if len(input) == 0 {
		input = []byte("{}")
	}
	if len(input) > maxPayload {
		return nil, &StartError{Msg: fmt.Sprintf("input is %d bytes; the limit is %d (States.DataLimitExceeded)", len(input), maxPayload)}
	}
	in, err := decodeJSON(input)
	if err != nil {
		return nil, &StartError{Msg: "input is not valid JSON", Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, &StartError{Msg: "context done before start", Err: err}
	}
	x := &Execution{
		Arn:             fmt.Sprintf("arn:aws:states:%s:%s:execution:%s:%s", e.opts.Region, e.opts.Account, e.opts.StateMachineName, name),
		Name:            name,
		StateMachineArn: e.smArn,
		Input:           json.RawMessage(bytes.Clone(input)),
		StartDate:       time.Now(),
	}
	h := &history{keep: true}
	th := &thread{h: h}
	th.close("ExecutionStarted", map[string]any{"input": string(input), "inputDetails": map[string]any{"truncated": false}, "roleArn": e.opts.RoleArn})
	r := &runner{e: e, x: execCtx{
		id: x.Arn, name: name, roleArn: e.opts.RoleArn, startTime: awsTime(x.StartDate), input: in,
		smID: e.smArn, smName: e.opts.StateMachineName,
	}}
	rctx := ctx
	if e.def.timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeoutCause(ctx, e.def.timeout, errExecutionTimeout)
		defer cancel()
	}
	out, err := r.runMachine(rctx, e.def, in, th)
	x.StopDate = time.Now()
	if lim := th.limit(); lim != nil {
		// Event MaxHistoryEvents can only be ExecutionSucceeded; whatever ran after the history
		// filled up, the execution fails for the limit.
		out, err = nil, lim
	}
	f, failed := asFailure(err)
	switch {
	case err == nil:
		b, encErr := encodeJSON(out)
		if encErr != nil {
			return nil, fmt.Errorf("encode execution output: %w", encErr)
		}
		x.Status, x.Output = "SUCCEEDED", b
		th.close("ExecutionSucceeded", map[string]any{"output": string(b), "outputDetails": map[string]any{"truncated": false}})
	case failed:
		x.Status, x.Error, x.Cause = "FAILED", f.name, f.cause
		th.close("ExecutionFailed", errorDetails(f, nil))
	case ctx.Err() == nil && context.Cause(rctx) == errExecutionTimeout:
		x.Status, x.Error = "TIMED_OUT", "States.Timeout"
		th.close("ExecutionTimedOut", map[string]any{"error": "States.Timeout"})
	default:
		x.Status = "ABORTED"
		th.close("ExecutionAborted", map[string]any{})
	}
	x.Events = h.events
	e.log.Info("execution finished", "execution", name, "status", x.Status, "error", x.Error)
	return x, nil
}
