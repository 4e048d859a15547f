package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// failure is a Step Functions error: an error name and a cause. It travels as an error value
// until a retrier, a catcher or the execution consumes it.
type failure struct {
	name, cause string
}

func (f *failure) Error() string { return f.name + ": " + f.cause }

func asFailure(err error) (*failure, bool) {
	var f *failure
	ok := errors.As(err, &f)
	return f, ok
}

var (
	errExecutionTimeout = errors.New("execution TimeoutSeconds elapsed")
	errTaskTimeout      = errors.New("task TimeoutSeconds elapsed")
)

// execCtx is the execution-wide part of the context object.
type execCtx struct {
	id, name, roleArn, startTime string
	input                        any
	smID, smName                 string
}

// runner runs states for one execution (the top-level one or a Distributed Map child).
type runner struct {
	e *Executor
	x execCtx
}

// stateRun is one visit of a state.
type stateRun struct {
	st        *state
	entered   time.Time
	enteredID int64
	retries   int
	item      *mapItem // only while an ItemSelector is evaluated
}

type mapItem struct {
	index int
	value any
}

func (r *runner) contextObject(sr *stateRun) any {
	m := map[string]any{
		"Execution": map[string]any{
			"Id": r.x.id, "Input": r.x.input, "Name": r.x.name, "RoleArn": r.x.roleArn,
			"StartTime": r.x.startTime, "RedriveCount": num(0),
		},
		"State":        map[string]any{"EnteredTime": awsTime(sr.entered), "Name": sr.st.name, "RetryCount": num(int64(sr.retries))},
		"StateMachine": map[string]any{"Id": r.x.smID, "Name": r.x.smName},
		"Task":         map[string]any{"Token": nil},
	}
	if sr.item != nil {
		m["Map"] = map[string]any{"Item": map[string]any{"Index": num(int64(sr.item.index)), "Value": sr.item.value}}
	}
	return m
}

// fail is a failure whose cause carries AWS's prefix naming the state and its entered event.
func (r *runner) fail(sr *stateRun, name, cause string) *failure {
	return &failure{name: name, cause: fmt.Sprintf("An error occurred while executing the state '%s' (entered at the event id #%d). %s", sr.st.name, sr.enteredID, cause)}
}

func (r *runner) read(sr *stateRun, p *path, input any) (any, bool) {
	if p.ctx {
		return p.get(r.contextObject(sr))
	}
	return p.get(input)
}

func (r *runner) template(sr *stateRun, t *tmpl, input any) (any, error) {
	v, miss := t.eval(input, func() any { return r.contextObject(sr) })
	if miss != nil {
		return nil, r.fail(sr, "States.Runtime", miss.cause())
	}
	return v, nil
}

func (r *runner) selectPath(sr *stateRun, op optPath, v any) (any, error) {
	switch {
	case !op.set:
		return v, nil
	case op.null:
		return map[string]any{}, nil
	}
	out, ok := r.read(sr, op.p, v)
	if !ok {
		return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("Invalid path '%s' : No results for path: %s", op.p.src, op.p.normalized()))
	}
	return out, nil
}

func (r *runner) applyResultPath(sr *stateRun, op optPath, raw, result any) (any, error) {
	switch {
	case !op.set:
		return result, nil
	case op.null:
		return raw, nil
	}
	out, err := op.p.set(raw, result)
	if err != nil {
		return nil, r.fail(sr, "States.ResultPathMatchFailure", err.Error())
	}
	return out, nil
}

// checkSize enforces the 256 KiB payload limit; what is "input", "result" or "output".
func (r *runner) checkSize(sr *stateRun, v any, what string) error {
	b, err := encodeJSON(v)
	if err != nil {
		return r.fail(sr, "States.Runtime", err.Error())
	}
	if len(b) > maxPayload {
		verb := "has an " + what
		if what == "result" {
			verb = "returned a result"
		}
		return &failure{name: "States.DataLimitExceeded", cause: fmt.Sprintf("The state/task '%s' %s with a size exceeding the maximum number of bytes service limit.", sr.st.name, verb)}
	}
	return nil
}

// finish applies ResultSelector, ResultPath and OutputPath to a state's result.
func (r *runner) finish(sr *stateRun, raw, result any) (any, error) {
	var err error
	if sr.st.resultSelector != nil {
		if result, err = r.template(sr, sr.st.resultSelector, result); err != nil {
			return nil, err
		}
	}
	out, err := r.applyResultPath(sr, sr.st.resultPath, raw, result)
	if err != nil {
		return nil, err
	}
	if out, err = r.selectPath(sr, sr.st.outputPath, out); err != nil {
		return nil, err
	}
	return out, r.checkSize(sr, out, "output")
}

// runMachine runs states from StartAt until one ends the (sub-)machine.
func (r *runner) runMachine(ctx context.Context, m *machine, input any, th *thread) (any, error) {
	name := m.startAt
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := th.limit(); err != nil {
			return nil, err
		}
		out, next, err := r.runState(ctx, m.states[name], input, th)
		if err != nil {
			return nil, err
		}
		if next == "" {
			return out, nil
		}
		name, input = next, out
	}
}

// runState runs one state; next is "" when the state ends its machine.
func (r *runner) runState(ctx context.Context, st *state, raw any, th *thread) (out any, next string, err error) {
	sr := &stateRun{st: st, entered: time.Now()}
	sr.enteredID = th.add(st.typ+"StateEntered", enteredDetails(st.name, raw))
	if err := th.limit(); err != nil {
		return nil, "", err
	}
	if th.keeps() {
		r.e.log.Debug("state entered", "execution", r.x.name, "state", st.name, "type", st.typ)
	}
	switch st.typ {
	case "Task", "Map":
		return r.withRetry(ctx, sr, raw, th)
	case "Fail":
		return nil, "", r.failState(sr, raw)
	case "Pass":
		out, err = r.pass(sr, raw)
		next = st.next
	case "Choice":
		out, next, err = r.choose(sr, raw)
	case "Wait":
		out, err = r.wait(ctx, sr, raw)
		next = st.next
	case "Succeed":
		if out, err = r.selectPath(sr, st.inputPath, raw); err == nil {
			if out, err = r.selectPath(sr, st.outputPath, out); err == nil {
				err = r.checkSize(sr, out, "output")
			}
		}
	}
	if err != nil {
		return nil, "", err
	}
	th.add(st.typ+"StateExited", exitedDetails(st.name, out))
	return out, next, nil
}

func (r *runner) pass(sr *stateRun, raw any) (any, error) {
	st := sr.st
	eff, err := r.selectPath(sr, st.inputPath, raw)
	if err != nil {
		return nil, err
	}
	if st.parameters != nil {
		if eff, err = r.template(sr, st.parameters, eff); err != nil {
			return nil, err
		}
	}
	if err := r.checkSize(sr, eff, "input"); err != nil {
		return nil, err
	}
	result := eff
	if st.hasResult {
		result = st.result
	}
	out, err := r.applyResultPath(sr, st.resultPath, raw, result)
	if err != nil {
		return nil, err
	}
	if out, err = r.selectPath(sr, st.outputPath, out); err != nil {
		return nil, err
	}
	return out, r.checkSize(sr, out, "output")
}

func (r *runner) choose(sr *stateRun, raw any) (any, string, error) {
	st := sr.st
	eff, err := r.selectPath(sr, st.inputPath, raw)
	if err != nil {
		return nil, "", err
	}
	next := st.dflt
	for _, rule := range st.choices {
		ok, err := rule.eval(eff, func() any { return r.contextObject(sr) })
		if err != nil {
			return nil, "", r.fail(sr, "States.Runtime", err.Error())
		}
		if ok {
			next = rule.next
			break
		}
	}
	if next == "" {
		return nil, "", &failure{name: "States.NoChoiceMatched", cause: "No Matches!"}
	}
	out, err := r.selectPath(sr, st.outputPath, eff)
	if err != nil {
		return nil, "", err
	}
	return out, next, r.checkSize(sr, out, "output")
}

func (r *runner) wait(ctx context.Context, sr *stateRun, raw any) (any, error) {
	st := sr.st
	eff, err := r.selectPath(sr, st.inputPath, raw)
	if err != nil {
		return nil, err
	}
	var d time.Duration
	switch {
	case st.waitSecondsPath != nil:
		v, ok := r.read(sr, st.waitSecondsPath, eff)
		if !ok {
			return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("Invalid path '%s' : No results for path: %s", st.waitSecondsPath.src, st.waitSecondsPath.normalized()))
		}
		n, isNum := v.(json.Number)
		secs, err := strconv.ParseInt(string(n), 10, 64)
		if !isNum || err != nil || secs < 0 {
			return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("The SecondsPath parameter does not reference a valid non-negative integer value: %s", jsonText(v)))
		}
		d = time.Duration(secs) * time.Second
	case st.waitTimestampPath != nil:
		v, ok := r.read(sr, st.waitTimestampPath, eff)
		if !ok {
			return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("Invalid path '%s' : No results for path: %s", st.waitTimestampPath.src, st.waitTimestampPath.normalized()))
		}
		s, _ := v.(string)
		t, ok := parseTimestamp(s)
		if !ok {
			return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: %s", jsonText(v)))
		}
		d = time.Until(t)
	case st.waitTimestamp != nil:
		d = time.Until(*st.waitTimestamp)
	default:
		d = time.Duration(st.waitSeconds) * time.Second
	}
	if d > 0 {
		if err := r.e.sleep(ctx, d); err != nil {
			return nil, err
		}
	}
	out, err := r.selectPath(sr, st.outputPath, eff)
	if err != nil {
		return nil, err
	}
	return out, r.checkSize(sr, out, "output")
}

func (r *runner) failState(sr *stateRun, raw any) error {
	st := sr.st
	f := &failure{name: st.failError, cause: st.failCause}
	for _, x := range []struct {
		p    *path
		dst  *string
		name string
	}{{st.failErrorPath, &f.name, "ErrorPath"}, {st.failCausePath, &f.cause, "CausePath"}} {
		if x.p == nil {
			continue
		}
		v, ok := r.read(sr, x.p, raw)
		if !ok {
			return r.fail(sr, "States.Runtime", fmt.Sprintf("Invalid path '%s' : No results for path: %s", x.p.src, x.p.normalized()))
		}
		s, ok := v.(string)
		if !ok {
			return r.fail(sr, "States.Runtime", fmt.Sprintf("The %s '%s' must point to a string, found %s", x.name, x.p.src, typeName(v)))
		}
		*x.dst = s
	}
	return f
}

// withRetry runs a Task or Map state, applying its retriers and catchers.
func (r *runner) withRetry(ctx context.Context, sr *stateRun, raw any, th *thread) (any, string, error) {
	st := sr.st
	counts := make([]int, len(st.retriers))
	for {
		var out any
		var err error
		if st.typ == "Task" {
			out, err = r.taskAttempt(ctx, sr, raw, th)
		} else {
			out, err = r.mapAttempt(ctx, sr, raw, th)
		}
		if err == nil {
			th.add(st.typ+"StateExited", exitedDetails(st.name, out))
			return out, st.next, nil
		}
		f, ok := asFailure(err)
		if !ok {
			return nil, "", err
		}
		if err := th.limit(); err != nil {
			return nil, "", err
		}
		if i := matchRetrier(st.retriers, f.name); i >= 0 && counts[i] < st.retriers[i].maxAttempts {
			d := st.retriers[i].delay(counts[i], r.e.random)
			r.e.log.Debug("retrying", "execution", r.x.name, "state", st.name, "error", f.name, "delay", d)
			if err := r.e.sleep(ctx, d); err != nil {
				return nil, "", err
			}
			counts[i]++
			sr.retries++
			continue
		}
		if st.typ == "Map" {
			th.add("MapStateFailed", nil)
		}
		for _, c := range st.catchers {
			if !matchesAny(c.errors, f.name) {
				continue
			}
			errOut := map[string]any{"Error": f.name}
			if f.cause != "" {
				errOut["Cause"] = f.cause
			}
			out, err := r.applyResultPath(sr, c.resultPath, raw, errOut)
			if err == nil {
				err = r.checkSize(sr, out, "output")
			}
			if err != nil {
				return nil, "", err
			}
			th.add(st.typ+"StateExited", exitedDetails(st.name, out))
			return out, c.next, nil
		}
		return nil, "", f
	}
}

// errorMatches applies ASL's error-name matching. States.Runtime is never retried or
// caught; States.ALL matches everything else except States.DataLimitExceeded, and
// States.TaskFailed additionally excludes States.Timeout.
func errorMatches(pattern, name string) bool {
	switch {
	case name == "States.Runtime":
		return false
	case pattern == "States.ALL":
		return name != "States.DataLimitExceeded"
	case pattern == "States.TaskFailed":
		return name != "States.DataLimitExceeded" && name != "States.Timeout"
	}
	return pattern == name
}

func matchesAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if errorMatches(p, name) {
			return true
		}
	}
	return false
}

// matchRetrier returns the first retrier matching name, or -1. Only that retrier is
// considered, even when it is exhausted.
func matchRetrier(rs []*retrier, name string) int {
	if name == "States.DataLimitExceeded" {
		return -1 // never retried, even when named
	}
	for i, r := range rs {
		if matchesAny(r.errors, name) {
			return i
		}
	}
	return -1
}

// delay is the wait before retry n+1 (n retries done): min(Interval × Backoff^n, MaxDelay),
// uniform in [0, d] with FULL jitter.
func (rt *retrier) delay(n int, random func() float64) time.Duration {
	d := rt.interval * math.Pow(rt.backoff, float64(n))
	if rt.maxDelay > 0 && d > rt.maxDelay {
		d = rt.maxDelay
	}
	if rt.jitterFull {
		d *= random()
	}
	if d >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d * float64(time.Second))
}

// taskAttempt runs one attempt of a Lambda Task: input processing, the invocation, and
// result processing.
func (r *runner) taskAttempt(ctx context.Context, sr *stateRun, raw any, th *thread) (any, error) {
	st, t := sr.st, sr.st.task
	if t.startSync {
		return r.startSyncAttempt(ctx, sr, raw, th)
	}
	eff, err := r.selectPath(sr, st.inputPath, raw)
	if err != nil {
		return nil, err
	}
	params := eff
	if st.parameters != nil {
		if params, err = r.template(sr, st.parameters, eff); err != nil {
			return nil, err
		}
	}
	if err := r.checkSize(sr, params, "input"); err != nil {
		return nil, err
	}
	ref, payload := fnRef{}, params
	resourceType, resource := "lambda", "invoke"
	if t.legacy != nil {
		ref = *t.legacy
		details := map[string]any{"resource": t.resource, "input": jsonText(params), "inputDetails": map[string]any{"truncated": false}}
		if t.timeoutSet {
			details["timeoutInSeconds"] = num(int64(t.timeout / time.Second))
		}
		th.add("LambdaFunctionScheduled", details)
	} else {
		details := map[string]any{"resourceType": resourceType, "resource": resource, "region": r.e.opts.Region, "parameters": jsonText(params)}
		if t.timeoutSet {
			details["timeoutInSeconds"] = num(int64(t.timeout / time.Second))
		}
		th.add("TaskScheduled", details)
		m, _ := params.(map[string]any)
		payload = map[string]any{}
		if p, ok := m["Payload"]; ok {
			payload = p
		}
		name, _ := m["FunctionName"].(string)
		var ok bool
		if ref, ok = parseFunctionName(name); !ok {
			ref = fnRef{name: name}
		}
	}
	event := func(kind string) string {
		if t.legacy != nil {
			return "LambdaFunction" + kind
		}
		return "Task" + kind
	}
	withResource := func(d map[string]any) map[string]any {
		if t.legacy == nil {
			d["resourceType"], d["resource"] = resourceType, resource
		}
		return d
	}
	if t.legacy != nil {
		th.add(event("Started"), nil)
	} else {
		th.add(event("Started"), withResource(map[string]any{}))
	}
	if err := th.limit(); err != nil {
		return nil, err // the function is not invoked: its events were never recorded
	}
	arn := ref.arn(r.e.opts.Region, r.e.opts.Account)
	fc, ok := r.e.opts.Functions[ref.name]
	if !ok {
		f := &failure{name: "Lambda.ResourceNotFoundException", cause: fmt.Sprintf(
			"Function not found: %s (Service: AWSLambda; Status Code: 404; Error Code: ResourceNotFoundException; Request ID: %s; Proxy: null)", arn, uuid.NewString())}
		th.add(event("Failed"), withResource(errorDetails(f, nil)))
		return nil, f
	}
	body, err := encodeJSON(payload)
	if err != nil {
		return nil, r.fail(sr, "States.Runtime", err.Error())
	}
	tctx, cancel := context.WithTimeoutCause(ctx, t.timeout, errTaskTimeout)
	defer cancel()
	requestID := uuid.NewString()
	resp, f, err := invoke(tctx, fc, r.e.gates[ref.name], requestID, arn, body)
	if err != nil {
		if ctx.Err() == nil && context.Cause(tctx) == errTaskTimeout {
			f := &failure{name: "States.Timeout"}
			th.add(event("TimedOut"), withResource(errorDetails(f, nil)))
			return nil, f
		}
		return nil, err
	}
	if f != nil {
		th.add(event("Failed"), withResource(errorDetails(f, nil)))
		return nil, f
	}
	var respVal any = string(resp)
	if v, err := decodeJSON(resp); err == nil {
		respVal = v
	}
	result := respVal
	if t.legacy == nil {
		result = map[string]any{
			"ExecutedVersion": ref.executedVersion(),
			"Payload":         respVal,
			"SdkHttpMetadata": map[string]any{
				"HttpHeaders":    lambdaHeaders(requestID, ref.executedVersion(), len(resp)),
				"HttpStatusCode": num(200),
			},
			"SdkResponseMetadata": map[string]any{"RequestId": requestID},
			"StatusCode":          num(200),
		}
	}
	if err := r.checkSize(sr, result, "result"); err != nil {
		th.add(event("Succeeded"), withResource(map[string]any{"output": "", "outputDetails": map[string]any{"truncated": true}}))
		return nil, err
	}
	th.add(event("Succeeded"), withResource(map[string]any{"output": jsonText(result), "outputDetails": map[string]any{"truncated": false}}))
	return r.finish(sr, raw, result)
}

func lambdaHeaders(requestID, version string, size int) map[string]any {
	return map[string]any{
		"Connection":                     "keep-alive",
		"Content-Length":                 strconv.Itoa(size),
		"Content-Type":                   "application/json",
		"Date":                           time.Now().UTC().Format(http.TimeFormat),
		"X-Amz-Executed-Version":         version,
		"x-amzn-Remapped-Content-Length": "0",
		"x-amzn-RequestId":               requestID,
	}
}
