package local

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const childArn = "arn:aws:states:us-east-1:123456789012:stateMachine:child"

// parentMachine starts the child with the parent's $.in as input, named $.name, and catches
// its failure into $.err.
const parentMachine = `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution.sync:2",
	"Parameters":{"StateMachineArn":"` + childArn + `","Name.$":"$.name","Input.$":"$.in"},
	"ResultSelector":{"status.$":"$.Status","output.$":"$.Output","input.$":"$.Input","start.$":"$.StartDate","stop.$":"$.StopDate","arn.$":"$.ExecutionArn"},
	"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.err","Next":"Caught"}],"End":true},
	"Caught":{"Type":"Pass","End":true}}}`

func childExecutor(t *testing.T, definition string) *Executor {
	t.Helper()
	e, err := New([]byte(definition), Options{StateMachineName: "child"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startExecution.sync:2 runs the child to its end: its Output and Input as JSON, its dates in
// epoch milliseconds, its ARN by the name given; a failed child fails the Task with
// States.TaskFailed and the child's description (its Error and Cause) as the cause.
func TestStartExecutionSync2(t *testing.T) {
	tests := []struct {
		name, child, input string
		check              func(t *testing.T, out map[string]any)
	}{
		{"succeeded", `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"doubled.$":"$.n"},"End":true}}}`, `{"name":"kid-1","in":{"n":21}}`,
			func(t *testing.T, out map[string]any) {
				want := `{"arn":"arn:aws:states:us-east-1:123456789012:execution:child:kid-1","input":{"n":21},"output":{"doubled":21},"status":"SUCCEEDED"}`
				start, stop := out["start"].(json.Number), out["stop"].(json.Number)
				s, _ := start.Int64()
				e, _ := stop.Int64()
				if s <= 0 || e < s {
					t.Fatalf("dates %v %v: want epoch milliseconds, stop ≥ start", start, stop)
				}
				delete(out, "start")
				delete(out, "stop")
				if got := jsonText(out); got != want {
					t.Fatalf("result %s\nwant   %s", got, want)
				}
			}},
		{"failed", `{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"BackupIncomplete","Cause":"3 objects not restored"}}}`, `{"name":"kid-2","in":{}}`,
			func(t *testing.T, out map[string]any) {
				e := out["err"].(map[string]any)
				if e["Error"] != "States.TaskFailed" {
					t.Fatalf("error %v", e)
				}
				var d map[string]any
				if err := json.Unmarshal([]byte(e["Cause"].(string)), &d); err != nil {
					t.Fatal(err)
				}
				if d["Status"] != "FAILED" || d["Error"] != "BackupIncomplete" || d["Cause"] != "3 objects not restored" || d["Name"] != "kid-2" || d["Output"] != nil {
					t.Fatalf("cause %v", d)
				}
			}},
		{"invalid name", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`, `{"name":"a b","in":{}}`,
			func(t *testing.T, out map[string]any) {
				if e := out["err"].(map[string]any); e["Error"] != "StepFunctions.InvalidNameException" {
					t.Fatalf("error %v", e)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{StateMachineName: "parent", StateMachines: map[string]StateMachine{childArn: childExecutor(t, tt.child)}}
			x := mustRun(t, mustNew(t, parentMachine, opts), tt.input)
			if x.Status != "SUCCEEDED" {
				t.Fatal(x.Error, x.Cause)
			}
			out, err := decodeJSON(x.Output)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, out.(map[string]any))
		})
	}
}

// The parent's TimeoutSeconds stops the child and times the Task out.
func TestStartExecutionSync2Timeout(t *testing.T) {
	child := childExecutor(t, `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}`)
	def := `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution.sync:2","TimeoutSeconds":1,
		"Parameters":{"StateMachineArn":"` + childArn + `"},"End":true}}}`
	x := mustRun(t, mustNew(t, def, Options{StateMachineName: "parent", StateMachines: map[string]StateMachine{childArn: child}}), `{}`)
	if x.Status != "FAILED" || x.Error != "States.Timeout" {
		t.Fatalf("%s %s %s", x.Status, x.Error, x.Cause)
	}
}

// What the executor does not implement, or a state machine it does not know, is refused at New.
func TestStartExecutionSync2Refused(t *testing.T) {
	tests := []struct{ name, params, want string }{
		{"unknown machine", `{"StateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:other"}`, "not in Options.StateMachines"},
		{"no arn", `{"Input":{}}`, "StateMachineArn"},
		{"trace header", `{"StateMachineArn":"` + childArn + `","TraceHeader":"x"}`, "Parameters.TraceHeader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := `{"StartAt":"S","States":{"S":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution.sync:2","Parameters":` + tt.params + `,"End":true}}}`
			_, err := New([]byte(def), Options{StateMachineName: "parent", StateMachines: map[string]StateMachine{childArn: childExecutor(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`)}})
			var de *DefinitionError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want a DefinitionError naming %s", err, tt.want)
			}
		})
	}
}
