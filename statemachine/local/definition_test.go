package local

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestNewRefuses(t *testing.T) {
	task := func(fields string) string {
		return `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",` + fields + `,"End":true}}}`
	}
	params := `"Parameters":{"FunctionName":"f","Payload.$":"$"}`
	dmap := func(fields string) string {
		return `{"StartAt":"Copy","States":{"Copy":{"Type":"Map",` + fields + `,"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
			"StartAt":"C","States":{"C":{"Type":"Pass","End":true}}},"End":true}}}`
	}
	tests := []struct {
		name, def    string
		where, field string
		msg          string // substring of the error
	}{
		{"unknown top-level field", `{"StartAt":"P","Foo":1,"States":{"P":{"Type":"Pass","End":true}}}`, "definition", "Foo", `unknown field "Foo"`},
		{"JSONata", `{"QueryLanguage":"JSONata","StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`, "definition", "QueryLanguage", "not implemented"},
		{"unknown state field", `{"StartAt":"P","States":{"P":{"Type":"Pass","Bogus":true,"End":true}}}`, `state "P"`, "Bogus", `unknown field "Bogus"`},
		{"field of another state type", `{"StartAt":"P","States":{"P":{"Type":"Pass","Retry":[],"End":true}}}`, `state "P"`, "Retry", "not valid in a Pass state"},
		{"state-level QueryLanguage", `{"StartAt":"P","States":{"P":{"Type":"Pass","QueryLanguage":"JSONPath","End":true}}}`, `state "P"`, "QueryLanguage", "not implemented"},
		{"Parallel", `{"StartAt":"P","States":{"P":{"Type":"Parallel","Branches":[],"End":true}}}`, `state "P"`, "Type", `state type "Parallel" is not implemented`},
		{"unknown state type", `{"StartAt":"P","States":{"P":{"Type":"Loop","End":true}}}`, `state "P"`, "Type", `unknown state type "Loop"`},
		{"ItemBatcher", dmap(`"ItemBatcher":{"MaxItemsPerBatch":10}`), `state "Copy"`, "ItemBatcher", `field "ItemBatcher" is not implemented by the local executor`},
		{"MaxConcurrencyPath with MaxConcurrency", dmap(`"MaxConcurrencyPath":"$.n","MaxConcurrency":2`), `state "Copy"`, "MaxConcurrencyPath", "cannot be used together with MaxConcurrency"},
		{"MaxConcurrencyPath not a path", dmap(`"MaxConcurrencyPath":"n"`), `state "Copy"`, "MaxConcurrencyPath", "must start with $"},
		{"ToleratedFailureCountPath", dmap(`"ToleratedFailureCountPath":"$.n"`), `state "Copy"`, "ToleratedFailureCountPath", "not implemented"},
		{"WriterConfig", dmap(`"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject","Parameters":{"Bucket":"b"},"WriterConfig":{"OutputType":"JSONL"}}`),
			`state "Copy"`, "ResultWriter.WriterConfig", "not implemented"},
		{"CSV reader", dmap(`"ItemReader":{"Resource":"arn:aws:states:::s3:getObject","Parameters":{"Bucket":"b","Key":"k"},"ReaderConfig":{"InputType":"CSV"}}`),
			`state "Copy"`, "ItemReader.ReaderConfig.InputType", "not implemented"},
		{"CSVHeaders", dmap(`"ItemReader":{"Resource":"arn:aws:states:::s3:getObject","Parameters":{"Bucket":"b","Key":"k"},"ReaderConfig":{"InputType":"JSON","CSVHeaders":["a"]}}`),
			`state "Copy"`, "ItemReader.ReaderConfig.CSVHeaders", "not implemented"},
		{"other reader resource", dmap(`"ItemReader":{"Resource":"arn:aws:states:::s3:listObjects","Parameters":{"Bucket":"b"}}`),
			`state "Copy"`, "ItemReader.Resource", "not implemented"},
		{"reader parameter", dmap(`"ItemReader":{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"b","StartAfter":"x"}}`),
			`state "Copy"`, "ItemReader.Parameters.StartAfter", "not implemented"},
		{"EXPRESS children", strings.Replace(dmap(`"Label":"L"`), "STANDARD", "EXPRESS", 1), `state "Copy"`, "ItemProcessor.ProcessorConfig.ExecutionType", "not implemented"},
		{"ItemReader in INLINE", strings.Replace(dmap(`"ItemReader":{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"b"}}`),
			`"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"`, `"Mode":"INLINE"`, 1), `state "Copy"`, "ItemReader", "only valid"},
		{"Label too long", dmap(`"Label":"` + strings.Repeat("x", 41) + `"`), `state "Copy"`, "Label", "1 to 40 characters"},
		{"intrinsic in Parameters", task(`"Parameters":{"FunctionName":"f","Payload":{"id.$":"States.UUID()"}}`), `state "T"`, "Parameters.Payload.id.$", `intrinsic function "States.UUID" is not implemented`},
		{"intrinsic in ResultSelector", task(params + `,"ResultSelector":{"s.$":"States.Format('{}', $.a)"}`), `state "T"`, "ResultSelector.s.$", `"States.Format"`},
		{"intrinsic in ErrorPath", `{"StartAt":"F","States":{"F":{"Type":"Fail","ErrorPath":"States.Format('x')"}}}`, `state "F"`, "ErrorPath", "intrinsic"},
		{"wildcard InputPath", `{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$.a[*]","End":true}}}`, `state "P"`, "InputPath", "wildcard"},
		{"filter in a template", `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"x.$":"$.a[?(@.b)]"},"End":true}}}`, `state "P"`, "Parameters.x.$", "filter"},
		{"recursive descent in Choice", `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$..a","IsPresent":true,"Next":"P"}]},"P":{"Type":"Pass","End":true}}}`,
			`state "C"`, "Choices[0].Variable", "recursive descent"},
		{"ResultPath on the context object", `{"StartAt":"P","States":{"P":{"Type":"Pass","ResultPath":"$$.x","End":true}}}`, `state "P"`, "ResultPath", "$$"},
		{"HeartbeatSeconds", task(params + `,"HeartbeatSeconds":10`), `state "T"`, "HeartbeatSeconds", "not implemented"},
		{"Credentials", task(params + `,"Credentials":{"RoleArn":"x"}`), `state "T"`, "Credentials", "not implemented"},
		{"waitForTaskToken", strings.Replace(task(params), "lambda:invoke", "lambda:invoke.waitForTaskToken", 1), `state "T"`, "Resource", "not implemented"},
		{"other resource", strings.Replace(task(params), "arn:aws:states:::lambda:invoke", "arn:aws:states:::dynamodb:putItem", 1), `state "T"`, "Resource", "not implemented"},
		{"InvocationType", task(`"Parameters":{"FunctionName":"f","InvocationType":"Event"}`), `state "T"`, "Parameters.InvocationType", "not implemented"},
		{"Qualifier", task(`"Parameters":{"FunctionName":"f","Qualifier":"1"}`), `state "T"`, "Parameters.Qualifier", "not implemented"},
		{"missing FunctionName", task(`"Parameters":{"Payload":{}}`), `state "T"`, "Parameters.FunctionName", "required"},
		{"unknown static function", task(`"Parameters":{"FunctionName":"arn:aws:lambda:us-east-1:123456789012:function:other"}`), `state "T"`, "Parameters.FunctionName", `"other"`},
		{"unknown legacy function", strings.Replace(task(`"Comment":"x"`), "arn:aws:states:::lambda:invoke", "arn:aws:lambda:us-east-1:123456789012:function:other", 1),
			`state "T"`, "Resource", `"other"`},
		{"unknown retrier field", task(params + `,"Retry":[{"ErrorEquals":["X"],"Foo":1}]`), `state "T"`, "Retry[0].Foo", "unknown field"},
		{"States.ALL not last", task(params + `,"Retry":[{"ErrorEquals":["States.ALL"]},{"ErrorEquals":["X"]}]`), `state "T"`, "Retry[0].ErrorEquals", "States.ALL"},
		{"unknown States error", task(params + `,"Retry":[{"ErrorEquals":["States.Nope"]}]`), `state "T"`, "Retry[0].ErrorEquals", "States.Nope"},
		{"BackoffRate below 1", task(params + `,"Retry":[{"ErrorEquals":["X"],"BackoffRate":0.5}]`), `state "T"`, "Retry[0].BackoffRate", ">= 1.0"},
		{"JitterStrategy", task(params + `,"Retry":[{"ErrorEquals":["X"],"JitterStrategy":"HALF"}]`), `state "T"`, "Retry[0].JitterStrategy", "FULL or NONE"},
		{"unknown Choice operator", `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.a","StringContains":"x","Next":"P"}]},"P":{"Type":"Pass","End":true}}}`,
			`state "C"`, "Choices[0].StringContains", "unknown field"},
		{"wrong operand type", `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.a","NumericEquals":"1","Next":"P"}]},"P":{"Type":"Pass","End":true}}}`,
			`state "C"`, "Choices[0].NumericEquals", "must be a number"},
		{"missing Next target", `{"StartAt":"P","States":{"P":{"Type":"Pass","Next":"Q"}}}`, `state "P"`, "Next", `"Q" does not exist`},
		{"missing Catch target", task(params + `,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"Q"}]`), `state "T"`, "Catch[0].Next", `"Q" does not exist`},
		{"missing StartAt target", `{"StartAt":"X","States":{"P":{"Type":"Pass","End":true}}}`, "definition", "StartAt", `"X" does not exist`},
		{"both Next and End", `{"StartAt":"P","States":{"P":{"Type":"Pass","Next":"P","End":true}}}`, `state "P"`, "", "exactly one of Next and End"},
		{"neither Next nor End", `{"StartAt":"P","States":{"P":{"Type":"Pass"}}}`, `state "P"`, "", "exactly one of Next and End"},
		{"unreachable state", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true},"Q":{"Type":"Pass","End":true}}}`, `state "Q"`, "", "not reachable"},
		{"Next on Succeed", `{"StartAt":"S","States":{"S":{"Type":"Succeed","Next":"S"}}}`, `state "S"`, "Next", "not valid in a Succeed state"},
		{"Wait with two durations", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"SecondsPath":"$.s","End":true}}}`, `state "W"`, "", "exactly one of Seconds"},
		{"duplicate state name in a Map", `{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"M","States":{"M":{"Type":"Pass","End":true}}},"End":true}}}`,
			`state "M"`, "", "unique"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(map[string]FunctionConfig{"f": echo})
			opts.S3 = newFakeS3()
			_, err := New([]byte(tt.def), opts)
			var de *DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DefinitionError", err)
			}
			if de.Where != tt.where || de.Field != tt.field || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got Where %q Field %q: %v\nwant Where %q Field %q containing %q", de.Where, de.Field, err, tt.where, tt.field, tt.msg)
			}
			if tt.field != "" && !strings.Contains(err.Error(), `"`+tt.field+`"`) && tt.field != "Type" {
				t.Errorf("error %q does not name the field %q", err, tt.field)
			}
		})
	}
}

func TestNewOptions(t *testing.T) {
	def := `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`
	if _, err := New([]byte(def), Options{}); err == nil {
		t.Error("New accepted an empty StateMachineName")
	}
	if _, err := New([]byte(def), Options{StateMachineName: "sm", Functions: map[string]FunctionConfig{"f": {}}}); err == nil {
		t.Error("New accepted a function without a Handler")
	}
	dist := `{"StartAt":"M","States":{"M":{"Type":"Map","ItemReader":{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"b"}},
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},"StartAt":"C","States":{"C":{"Type":"Pass","End":true}}},"End":true}}}`
	if _, err := New([]byte(dist), Options{StateMachineName: "sm"}); err == nil || !strings.Contains(err.Error(), "S3") {
		t.Errorf("err = %v, want a missing S3 client", err)
	}
}

func TestRunMisuse(t *testing.T) {
	e := mustNew(t, passMachine(""), testOptions(nil))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name, execName, input string
		ctx                   context.Context
	}{
		{"name too long", strings.Repeat("n", 81), `{}`, context.Background()},
		{"whitespace in name", "a b", `{}`, context.Background()},
		{"slash in name", "a/b", `{}`, context.Background()},
		{"control character", "a\x01", `{}`, context.Background()},
		{"invalid JSON", "ok", `{"a":`, context.Background()},
		{"two JSON values", "ok", `{} {}`, context.Background()},
		{"cancelled before start", "ok", `{}`, cancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var se *StartError
			if _, err := e.Run(tt.ctx, tt.execName, []byte(tt.input)); !errors.As(err, &se) {
				t.Errorf("err = %v, want *StartError", err)
			}
		})
	}
	x, err := e.Run(context.Background(), "", nil)
	if err != nil || len(x.Name) != 36 || string(x.Output) != `{}` {
		t.Errorf("empty name and input: %v %+v", err, x)
	}
}

func TestExecutionEnds(t *testing.T) {
	block := rawFunction(func(ctx context.Context, _ []byte) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() })
	t.Run("aborted", func(t *testing.T) {
		e := mustNew(t, taskMachine("block", ""), testOptions(map[string]FunctionConfig{"block": {Handler: block}}))
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		x, err := e.Run(ctx, "a", nil)
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if err == nil && (x.Status != "ABORTED" || eventTypes(x)[len(x.Events)-1] != "ExecutionAborted") {
			t.Errorf("status %s, events %v", x.Status, eventTypes(x))
		}
	})
	t.Run("timed out", func(t *testing.T) {
		def := strings.Replace(taskMachine("block", ""), `{"StartAt"`, `{"TimeoutSeconds":1,"StartAt"`, 1)
		x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"block": {Handler: block}})), `{}`)
		if x.Status != "TIMED_OUT" || x.Error != "States.Timeout" || eventTypes(x)[len(x.Events)-1] != "ExecutionTimedOut" {
			t.Errorf("status %s %s, events %v", x.Status, x.Error, eventTypes(x))
		}
	})
}

func TestHistoryJSON(t *testing.T) {
	x := mustRun(t, mustNew(t, passMachine(`"Result":{"r":1}`), testOptions(nil)), `{"a":"<b>"}`)
	h, err := x.HistoryJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Events []map[string]any `json:"events"`
	}
	if err := jsonUnmarshalStrict(h, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Events) != 4 {
		t.Fatalf("%s", h)
	}
	first := doc.Events[0]
	if first["type"] != "ExecutionStarted" || first["id"] != float64(1) || first["previousEventId"] != float64(0) ||
		!regexpMatch(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, first["timestamp"].(string)) {
		t.Errorf("first event %v", first)
	}
	started := first["executionStartedEventDetails"].(map[string]any)
	if started["input"] != `{"a":"<b>"}` || started["roleArn"] != "arn:aws:iam::123456789012:role/sm-role" ||
		started["inputDetails"].(map[string]any)["truncated"] != false {
		t.Errorf("executionStartedEventDetails %v", started)
	}
	entered := doc.Events[1]["stateEnteredEventDetails"].(map[string]any)
	exited := doc.Events[2]["stateExitedEventDetails"].(map[string]any)
	if doc.Events[1]["type"] != "PassStateEntered" || entered["name"] != "P" || entered["input"] != `{"a":"<b>"}` ||
		doc.Events[2]["type"] != "PassStateExited" || exited["output"] != `{"r":1}` || doc.Events[2]["previousEventId"] != float64(2) {
		t.Errorf("state events %v %v", doc.Events[1], doc.Events[2])
	}
	if out := doc.Events[3]["executionSucceededEventDetails"].(map[string]any); out["output"] != `{"r":1}` {
		t.Errorf("executionSucceededEventDetails %v", out)
	}
	if strings.Contains(string(h), `\u003c`) {
		t.Error("history escapes HTML characters; Step Functions does not")
	}
}
