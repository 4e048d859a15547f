package local

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// startSyncResource is how the history names arn:aws:states:::states:startExecution.sync:2.
const startSyncResource = "startExecution.sync:2"

// startSyncAttempt runs one attempt of a states:startExecution.sync:2 Task: it starts an
// execution of the state machine Parameters.StateMachineArn names (Options.StateMachines) with
// Parameters.Input (a JSON value, or a string of JSON text; default {}) and Parameters.Name
// (default a UUID), and waits for it to end. Its result is the child's DescribeExecution with
// Input and Output as JSON values (.sync:2; .sync would leave them strings) and the dates in
// epoch milliseconds. A child that does not succeed fails the Task with States.TaskFailed, the
// cause being that description as JSON text (with the child's Error and Cause). Task
// TimeoutSeconds stops the child (ABORTED) and times the Task out.
func (r *runner) startSyncAttempt(ctx context.Context, sr *stateRun, raw any, th *thread) (any, error) {
	st, t := sr.st, sr.st.task
	eff, err := r.selectPath(sr, st.inputPath, raw)
	if err != nil {
		return nil, err
	}
	params, err := r.template(sr, st.parameters, eff)
	if err != nil {
		return nil, err
	}
	if err := r.checkSize(sr, params, "input"); err != nil {
		return nil, err
	}
	withResource := func(d map[string]any) map[string]any {
		d["resourceType"], d["resource"] = "states", startSyncResource
		return d
	}
	details := withResource(map[string]any{"region": r.e.opts.Region, "parameters": jsonText(params)})
	if t.timeoutSet {
		details["timeoutInSeconds"] = num(int64(t.timeout.Seconds()))
	}
	th.add("TaskScheduled", details)
	th.add("TaskStarted", withResource(map[string]any{}))
	if err := th.limit(); err != nil {
		return nil, err
	}
	fail := func(f *failure) (any, error) {
		th.add("TaskFailed", withResource(errorDetails(f, nil)))
		return nil, f
	}
	m, _ := params.(map[string]any)
	arn, ok := m["StateMachineArn"].(string)
	if !ok {
		return fail(&failure{name: "States.Runtime", cause: fmt.Sprintf("StateMachineArn must be a string, not %s", typeName(m["StateMachineArn"]))})
	}
	sm, ok := r.e.opts.StateMachines[arn]
	if !ok {
		return fail(&failure{name: "StepFunctions.StateMachineDoesNotExistException", cause: fmt.Sprintf("State Machine Does Not Exist: '%s'", arn)})
	}
	name := uuid.NewString()
	if v, set := m["Name"]; set {
		if name, ok = v.(string); !ok {
			return fail(&failure{name: "StepFunctions.InvalidNameException", cause: fmt.Sprintf("Name must be a string, not %s", typeName(v))})
		}
	}
	input := []byte("{}")
	switch v := m["Input"].(type) {
	case nil:
	case string:
		input = []byte(v)
	default:
		if input, err = encodeJSON(v); err != nil {
			return nil, r.fail(sr, "States.Runtime", err.Error())
		}
	}
	tctx, cancel := context.WithTimeoutCause(ctx, t.timeout, errTaskTimeout)
	defer cancel()
	x, err := sm.Run(tctx, name, input)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		exc := "StepFunctions.InvalidExecutionInputException"
		if strings.Contains(err.Error(), "invalid execution name") {
			exc = "StepFunctions.InvalidNameException"
		}
		return fail(&failure{name: exc, cause: err.Error()})
	}
	th.add("TaskSubmitted", withResource(map[string]any{"output": jsonText(map[string]any{"ExecutionArn": x.Arn, "StartDate": epochMillis(x)}),
		"outputDetails": map[string]any{"truncated": false}}))
	desc := describe(x)
	switch {
	case x.Status == "SUCCEEDED":
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(context.Cause(tctx), errTaskTimeout):
		f := &failure{name: "States.Timeout"}
		th.add("TaskTimedOut", withResource(errorDetails(f, nil)))
		return nil, f
	default:
		return fail(&failure{name: "States.TaskFailed", cause: jsonText(desc)})
	}
	if err := r.checkSize(sr, desc, "result"); err != nil {
		th.add("TaskSucceeded", withResource(map[string]any{"output": "", "outputDetails": map[string]any{"truncated": true}}))
		return nil, err
	}
	th.add("TaskSucceeded", withResource(map[string]any{"output": jsonText(desc), "outputDetails": map[string]any{"truncated": false}}))
	return r.finish(sr, raw, desc)
}

func epochMillis(x *Execution) any { return num(x.StartDate.UnixMilli()) }

// describe is DescribeExecution of a finished child as .sync:2 returns it.
func describe(x *Execution) map[string]any {
	d := map[string]any{
		"ExecutionArn": x.Arn, "Name": x.Name, "StateMachineArn": x.StateMachineArn, "Status": x.Status,
		"InputDetails": map[string]any{"Included": true},
		"StartDate":    num(x.StartDate.UnixMilli()), "StopDate": num(x.StopDate.UnixMilli()),
		"RedriveCount": num(0), "RedriveStatus": "NOT_REDRIVABLE",
	}
	d["Input"] = string(x.Input)
	if v, err := decodeJSON(x.Input); err == nil {
		d["Input"] = v
	}
	if x.Status == "SUCCEEDED" {
		d["OutputDetails"] = map[string]any{"Included": true}
		d["Output"] = string(x.Output)
		if v, err := decodeJSON(x.Output); err == nil {
			d["Output"] = v
		}
		d["RedriveStatusReason"] = "Execution is SUCCEEDED and cannot be redriven"
		return d
	}
	if x.Error != "" {
		d["Error"] = x.Error
	}
	if x.Cause != "" {
		d["Cause"] = x.Cause
	}
	return d
}
