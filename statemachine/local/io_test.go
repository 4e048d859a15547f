package local

import (
	"context"
	"strings"
	"testing"
)

// passMachine wraps one Pass state's fields in a definition.
func passMachine(fields string) string {
	if fields != "" {
		fields += ","
	}
	return `{"StartAt":"P","States":{"P":{"Type":"Pass",` + fields + `"End":true}}}`
}

func TestInputOutputProcessing(t *testing.T) {
	tests := []struct {
		name, fields, input string
		want                string // output JSON
		err, cause          string
	}{
		{name: "defaults pass input through", input: `{"a":1}`, want: `{"a":1}`},
		{name: "InputPath", fields: `"InputPath":"$.a"`, input: `{"a":{"b":1},"c":2}`, want: `{"b":1}`},
		{name: "InputPath null is {}", fields: `"InputPath":null`, input: `{"a":1}`, want: `{}`},
		{name: "Parameters on effective input", fields: `"InputPath":"$.a","Parameters":{"x.$":"$.b","k":"v"}`, input: `{"a":{"b":1}}`, want: `{"k":"v","x":1}`},
		{name: "Result with ResultPath merges into raw input", fields: `"Result":{"r":1},"ResultPath":"$.res"`, input: `{"a":1}`, want: `{"a":1,"res":{"r":1}}`},
		{name: "ResultPath into raw input, not InputPath's", fields: `"InputPath":"$.a","ResultPath":"$.copy"`, input: `{"a":{"b":1}}`, want: `{"a":{"b":1},"copy":{"b":1}}`},
		{name: "ResultPath null discards result", fields: `"Result":"x","ResultPath":null`, input: `{"a":1}`, want: `{"a":1}`},
		{name: "ResultPath absent replaces", fields: `"Result":"x"`, input: `{"a":1}`, want: `"x"`},
		{name: "ResultPath creates parents", fields: `"Result":1,"ResultPath":"$.a.b.c"`, input: `{"z":0}`, want: `{"a":{"b":{"c":1}},"z":0}`},
		{name: "OutputPath", fields: `"Result":{"r":[5,6]},"ResultPath":"$.x","OutputPath":"$.x.r[1]"`, input: `{}`, want: `6`},
		{name: "OutputPath null is {}", fields: `"OutputPath":null`, input: `{"a":1}`, want: `{}`},
		{name: "context object", fields: `"Parameters":{"id.$":"$$.Execution.Id","sm.$":"$$.StateMachine.Id","st.$":"$$.State.Name","in.$":"$$.Execution.Input.a","rc.$":"$$.State.RetryCount","tok.$":"$$.Task.Token"}`,
			input: `{"a":7}`, want: `{"id":"arn:aws:states:us-east-1:123456789012:execution:sm:test","in":7,"rc":0,"sm":"arn:aws:states:us-east-1:123456789012:stateMachine:sm","st":"P","tok":null}`},
		{name: "missing InputPath", fields: `"InputPath":"$.missing"`, input: `{"a":1}`, err: "States.Runtime",
			cause: `An error occurred while executing the state 'P' (entered at the event id #2). Invalid path '$.missing' : No results for path: $['missing']`},
		{name: "missing OutputPath", fields: `"OutputPath":"$.a.b"`, input: `{"a":1}`, err: "States.Runtime",
			cause: `An error occurred while executing the state 'P' (entered at the event id #2). Invalid path '$.a.b' : No results for path: $['a']['b']`},
		{name: "missing Parameters path", fields: `"Parameters":{"x":{"y.$":"$.nope"}}`, input: `{"a":1}`, err: "States.Runtime",
			cause: `An error occurred while executing the state 'P' (entered at the event id #2). The JSONPath '$.nope' specified for the field 'y.$' could not be found in the input '{"a":1}'`},
		{name: "ResultPath through a scalar", fields: `"Result":1,"ResultPath":"$.a.b"`, input: `{"a":"s"}`, err: "States.ResultPathMatchFailure",
			cause: `An error occurred while executing the state 'P' (entered at the event id #2). Unable to apply ReferencePath $.a.b to input "s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := mustRun(t, mustNew(t, passMachine(tt.fields), testOptions(nil)), tt.input)
			if tt.err != "" {
				if x.Status != "FAILED" || x.Error != tt.err || x.Cause != tt.cause {
					t.Fatalf("got %s %s %q\nwant FAILED %s %q", x.Status, x.Error, x.Cause, tt.err, tt.cause)
				}
				return
			}
			if x.Status != "SUCCEEDED" {
				t.Fatalf("%s: %s %s", x.Status, x.Error, x.Cause)
			}
			jsonEqual(t, x.Output, tt.want)
		})
	}
}

func TestDataLimits(t *testing.T) {
	big := strings.Repeat("x", 150*1024)
	tests := []struct {
		name, def, input string
	}{
		{name: "state input after Parameters", def: passMachine(`"Parameters":{"a.$":"$.s","b.$":"$.s"},"ResultPath":null`)},
		{name: "state output", def: passMachine(`"ResultPath":"$.copy"`)},
		{name: "task result", def: `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
			"Parameters":{"FunctionName":"double","Payload.$":"$"},"ResultSelector":{"n":1},
			"Retry":[{"ErrorEquals":["States.ALL"]}],"Catch":[{"ErrorEquals":["States.ALL"],"Next":"C"}],"End":true},
			"C":{"Type":"Succeed"}}}`},
		{name: "inline Map result", def: `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.l","ResultPath":null,
			"ItemSelector":{"v.$":"$.s"},"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}}}`,
			input: `{"l":[1,2],"s":"` + big + `"}`},
	}
	double := fn(func(in map[string]string) ([]string, error) { return []string{in["s"], in["s"]}, nil })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl := &sleeps{}
			opts := testOptions(map[string]FunctionConfig{"double": double})
			opts.Sleep = sl.sleep
			input := tt.input
			if input == "" {
				input = `{"s":"` + big + `"}`
			}
			x := mustRun(t, mustNew(t, tt.def, opts), input)
			if x.Status != "FAILED" || x.Error != "States.DataLimitExceeded" {
				t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
			}
			if len(sl.ds) != 0 {
				t.Errorf("States.DataLimitExceeded was retried: %v", sl.ds)
			}
		})
	}
	t.Run("execution input", func(t *testing.T) {
		e := mustNew(t, passMachine(""), testOptions(nil))
		_, err := e.Run(context.Background(), "big", []byte(`{"s":"`+strings.Repeat("x", maxPayload)+`"}`))
		var se *StartError
		if !asStartError(err, &se) {
			t.Fatalf("err = %v, want *StartError", err)
		}
	})
}
