package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// taskMachine is one lambda:invoke Task calling function name with the whole input.
func taskMachine(name, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
		"Parameters":{"FunctionName":"` + name + `","Payload.$":"$"}` + extra + `,"End":true}}}`
}

// rawFunction is a Function that is not built with lambda.NewHandler.
type rawFunction func(ctx context.Context, payload []byte) ([]byte, error)

func (f rawFunction) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

func TestLambdaInvokeResult(t *testing.T) {
	var seen atomic.Value
	probe := fn(func(ctx context.Context, in map[string]any) (map[string]any, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		dl, _ := ctx.Deadline()
		seen.Store([]any{lc.AwsRequestID, lc.InvokedFunctionArn, time.Until(dl)})
		return map[string]any{"got": in}, nil
	})
	tests := []struct {
		name, functionName, wantArn, wantVersion string
	}{
		{"name", "probe", "arn:aws:lambda:us-east-1:123456789012:function:probe", "$LATEST"},
		{"arn with $LATEST", "arn:aws:lambda:eu-west-1:111122223333:function:probe:$LATEST", "arn:aws:lambda:eu-west-1:111122223333:function:probe:$LATEST", "$LATEST"},
		{"partial arn", "123456789012:function:probe", "arn:aws:lambda:us-east-1:123456789012:function:probe", "$LATEST"},
		{"version qualifier", "probe:7", "arn:aws:lambda:us-east-1:123456789012:function:probe:7", "7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(map[string]FunctionConfig{"probe": {Handler: probe.Handler, Timeout: 30 * time.Second}})
			x := mustRun(t, mustNew(t, taskMachine(tt.functionName, ""), opts), `{"a":1}`)
			if x.Status != "SUCCEEDED" {
				t.Fatal(x.Error, x.Cause)
			}
			var out struct {
				ExecutedVersion     string
				Payload             map[string]any
				SdkHTTPMetadata     map[string]any `json:"SdkHttpMetadata"`
				SdkResponseMetadata struct{ RequestId string }
				StatusCode          int
			}
			if err := json.Unmarshal(x.Output, &out); err != nil {
				t.Fatal(err)
			}
			s := seen.Load().([]any)
			if out.ExecutedVersion != tt.wantVersion || out.StatusCode != 200 || out.SdkHTTPMetadata["HttpStatusCode"] != float64(200) {
				t.Errorf("result %s", x.Output)
			}
			if fmt.Sprint(out.Payload) != "map[got:map[a:1]]" {
				t.Errorf("Payload %v", out.Payload)
			}
			if s[0] != out.SdkResponseMetadata.RequestId || s[1] != tt.wantArn {
				t.Errorf("lambda context %v, request id %s", s, out.SdkResponseMetadata.RequestId)
			}
			if d := s[2].(time.Duration); d < 29*time.Second || d > 30*time.Second {
				t.Errorf("deadline in %v, want the function's 30s timeout", d)
			}
		})
	}
}

func TestLambdaResponses(t *testing.T) {
	tests := []struct {
		name string
		f    Function
		want string
	}{
		{"non-JSON response stays a string", rawFunction(func(context.Context, []byte) ([]byte, error) { return []byte("hello"), nil }), `"hello"`},
		{"JSON string", rawFunction(func(context.Context, []byte) ([]byte, error) { return []byte(`"hi"`), nil }), `"hi"`},
		{"handler returning only an error", fn(func(context.Context) error { return nil }).Handler, `null`},
		{"numbers kept exactly", rawFunction(func(context.Context, []byte) ([]byte, error) { return []byte(`{"n":12345678901234567890}`), nil }), `{"n":12345678901234567890}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := taskMachine("f", `"OutputPath":"$.Payload"`)
			x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"f": {Handler: tt.f}})), `{}`)
			if x.Status != "SUCCEEDED" || string(x.Output) != tt.want {
				t.Errorf("got %s %s %s %s, want %s", x.Status, x.Output, x.Error, x.Cause, tt.want)
			}
		})
	}
}

func TestLegacyLambdaResource(t *testing.T) {
	def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:echo","End":true}}}`
	x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"echo": echo})), `{"a":1}`)
	if x.Status != "SUCCEEDED" {
		t.Fatal(x.Error, x.Cause)
	}
	jsonEqual(t, x.Output, `{"a":1}`)
	want := "ExecutionStarted TaskStateEntered LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionSucceeded TaskStateExited ExecutionSucceeded"
	if got := strings.Join(eventTypes(x), " "); got != want {
		t.Errorf("events %s", got)
	}
}

func TestFunctionErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		panicWith any
		wantError string
		wantCause string // regexp
	}{
		{name: "errors.New", err: errors.New("boom"), wantError: "errorString", wantCause: `^\{"errorMessage":"boom","errorType":"errorString"\}$`},
		{name: "fmt.Errorf %w", err: fmt.Errorf("copy: %w", errPlain), wantError: "wrapError", wantCause: `^\{"errorMessage":"copy: plain","errorType":"wrapError"\}$`},
		{name: "named pointer error", err: &errNamed{"bad <input>"}, wantError: "errNamed", wantCause: `^\{"errorMessage":"bad \\u003cinput\\u003e","errorType":"errNamed"\}$`},
		{name: "InvokeResponse_Error value", err: messages.InvokeResponse_Error{Type: "TransientError", Message: "try again"},
			wantError: "TransientError", wantCause: `^\{"errorMessage":"try again","errorType":"TransientError"\}$`},
		// aws-lambda-go recognizes only the value form; a pointer is named by its Go type.
		{name: "InvokeResponse_Error pointer", err: &messages.InvokeResponse_Error{Type: "TransientError", Message: "x"},
			wantError: "InvokeResponse_Error", wantCause: `"errorType":"InvokeResponse_Error"`},
		{name: "panic with a string", panicWith: "oops", wantError: "string", wantCause: `^\{"errorMessage":"oops","errorType":"string","stackTrace":\[\{"path":`},
		{name: "panic with an error", panicWith: &errNamed{"p"}, wantError: "errNamed", wantCause: `^\{"errorMessage":"p","errorType":"errNamed","stackTrace":`},
		{name: "runtime panic", panicWith: "index", wantError: "boundsError", wantCause: `"errorType":"boundsError"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fn(func(context.Context, map[string]any) (map[string]any, error) {
				if tt.panicWith == "index" {
					var s []int
					_ = s[3]
				}
				if tt.panicWith != nil {
					panic(tt.panicWith)
				}
				return nil, tt.err
			})
			x := mustRun(t, mustNew(t, taskMachine("f", ""), testOptions(map[string]FunctionConfig{"f": f})), `{}`)
			if x.Status != "FAILED" || x.Error != tt.wantError || !regexp.MustCompile(tt.wantCause).MatchString(x.Cause) {
				t.Errorf("got %s %q %s", x.Status, x.Error, x.Cause)
			}
			last := x.Events[len(x.Events)-2]
			if last.Type != "TaskFailed" || last.Details["error"] != tt.wantError || last.Details["resourceType"] != "lambda" {
				t.Errorf("event %+v", last)
			}
		})
	}
}

func TestFunctionTimeouts(t *testing.T) {
	cancelled := make(chan struct{})
	slow := func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		close(cancelled)
		time.Sleep(time.Hour) // a function that ignores its deadline is abandoned, not awaited
		return nil, nil
	}
	t.Run("Sandbox.Timedout", func(t *testing.T) {
		opts := testOptions(map[string]FunctionConfig{"slow": {Handler: rawFunction(slow), Timeout: 20 * time.Millisecond}})
		x := mustRun(t, mustNew(t, taskMachine("slow", ""), opts), `{}`)
		re := regexp.MustCompile(`^\{"errorMessage":"RequestId: [0-9a-f-]{36} Error: Task timed out after 0\.02 seconds","errorType":"Sandbox.Timedout"\}$`)
		if x.Status != "FAILED" || x.Error != "Sandbox.Timedout" || !re.MatchString(x.Cause) {
			t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
		}
		select {
		case <-cancelled:
		case <-time.After(time.Second):
			t.Error("the handler's context was not cancelled")
		}
	})
	t.Run("task TimeoutSeconds", func(t *testing.T) {
		wait := rawFunction(func(ctx context.Context, _ []byte) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() })
		def := taskMachine("wait", `"TimeoutSeconds":1,"Retry":[{"ErrorEquals":["States.TaskFailed"]}]`)
		x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"wait": {Handler: wait}})), `{}`)
		if x.Status != "FAILED" || x.Error != "States.Timeout" {
			t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
		}
		want := "ExecutionStarted TaskStateEntered TaskScheduled TaskStarted TaskTimedOut ExecutionFailed"
		if got := strings.Join(eventTypes(x), " "); got != want {
			t.Errorf("events %s (States.TaskFailed must not retry States.Timeout)", got)
		}
		if x.Events[2].Details["timeoutInSeconds"] != num(1) {
			t.Errorf("TaskScheduled %v", x.Events[2].Details)
		}
	})
}

func TestFunctionResolution(t *testing.T) {
	t.Run("unknown dynamic FunctionName", func(t *testing.T) {
		def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
			"Parameters":{"FunctionName.$":"$.fn"},"End":true}}}`
		x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"echo": echo})), `{"fn":"nope"}`)
		if x.Status != "FAILED" || x.Error != "Lambda.ResourceNotFoundException" || !strings.Contains(x.Cause, "function:nope") {
			t.Errorf("got %s %s %s", x.Status, x.Error, x.Cause)
		}
	})
	t.Run("dynamic FunctionName", func(t *testing.T) {
		def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
			"Parameters":{"FunctionName.$":"$.fn","Payload":{"k":"v"}},"OutputPath":"$.Payload","End":true}}}`
		x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"echo": echo})), `{"fn":"arn:aws:lambda:us-east-1:123456789012:function:echo"}`)
		if x.Status != "SUCCEEDED" || string(x.Output) != `{"k":"v"}` {
			t.Errorf("got %s %s %s", x.Status, x.Output, x.Cause)
		}
	})
	t.Run("response over 6 MB", func(t *testing.T) {
		huge := rawFunction(func(context.Context, []byte) ([]byte, error) {
			return []byte(`"` + strings.Repeat("x", maxResponse) + `"`), nil
		})
		x := mustRun(t, mustNew(t, taskMachine("huge", ""), testOptions(map[string]FunctionConfig{"huge": {Handler: huge}})), `{}`)
		if x.Status != "FAILED" || x.Error != "Function.ResponseSizeTooLarge" {
			t.Errorf("got %s %s %s", x.Status, x.Error, x.Cause)
		}
	})
}
