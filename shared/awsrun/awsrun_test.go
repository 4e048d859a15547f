package awsrun

// These tests run the real sfn and cloudformation clients against an httptest.Server that answers
// as the services do on the wire:
//   - Step Functions speaks awsJson1_0: POST / with X-Amz-Target AWSStepFunctions.<Operation> and a
//     JSON body; timestamps are epoch seconds; errors are HTTP 400 with {"__type", "message"}. The
//     request and response shapes are those of the Step Functions API reference pages
//     StartExecution, DescribeExecution, ListMapRuns and DescribeMapRun.
//   - CloudFormation speaks the query protocol: a form-encoded POST (Action=DescribeStacks,
//     Version=2010-05-15, StackName=…) answered with DescribeStacksResponse XML; a stack it does not
//     know is HTTP 400 ErrorResponse/Error/Code ValidationError (API reference DescribeStacks: "If the
//     stack doesn't exist, a ValidationError is returned").
// The clients are built with New and static credentials, so no shared config, profile,
// AWS_CA_BUNDLE or instance metadata is read, and nothing leaves the loopback.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

const (
	testStateMachine = "arn:aws:states:us-east-1:123456789012:stateMachine:BackupStateMachine"
	testExecution    = "arn:aws:states:us-east-1:123456789012:execution:BackupStateMachine:nightly-1"
	testMapRun       = "arn:aws:states:us-east-1:123456789012:mapRun:BackupStateMachine/Copy:4e1b3c2a-0f5e-4d7a-9a61-2f3f5c1e8b11"
	// 2026-01-01T00:00:00Z and one hour and a half second later, as epoch seconds.
	testStart = 1767225600
	testStop  = 1767229200.5
)

func newSFN(t *testing.T, url string) *sfn.Client {
	t.Helper()
	return sfn.New(sfn.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:      aws.NopRetryer{},
	})
}

func newCFN(t *testing.T, url string) *cloudformation.Client {
	t.Helper()
	return cloudformation.New(cloudformation.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:      aws.NopRetryer{},
	})
}

// sfnCall is one request the fake Step Functions received.
type sfnCall struct {
	Target string         // X-Amz-Target
	Body   map[string]any // the JSON body
}

// maxCalls bounds the requests of one test.
const maxCalls = 50

// fakeSFN answers each operation with the next of its scripted responses (the last one repeats).
type fakeSFN struct {
	t       *testing.T
	replies map[string][]string // operation → JSON bodies; a body starting with "400 " is an error
	mu      sync.Mutex
	calls   []sfnCall
}

func (f *fakeSFN) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.Header.Get("Content-Type") != "application/x-amz-json-1.0" {
		f.t.Errorf("request %s %s Content-Type %q: want POST / application/x-amz-json-1.0", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/") || !strings.Contains(r.Header.Get("Authorization"), "/us-east-1/states/aws4_request") {
		f.t.Errorf("Authorization %q: want a SigV4 signature for states in us-east-1", r.Header.Get("Authorization"))
	}
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		f.t.Errorf("%s body %q: %v", target, raw, err)
	}
	op := strings.TrimPrefix(target, "AWSStepFunctions.")
	f.mu.Lock()
	f.calls = append(f.calls, sfnCall{Target: target, Body: body})
	if len(f.calls) > maxCalls { // a Run that never stops polling fails instead of hanging
		f.mu.Unlock()
		f.t.Errorf("more than %d requests", maxCalls)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"__type":"ValidationException","message":"too many requests in this test"}`)
		return
	}
	replies := f.replies[op]
	var reply string
	switch len(replies) {
	case 0:
		f.mu.Unlock()
		f.t.Errorf("unexpected %s", target)
		http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
		return
	case 1:
		reply = replies[0]
	default:
		reply, f.replies[op] = replies[0], replies[1:]
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", "0c4e5e6e-1d1b-4e55-9a4c-6b2a3f1f7c01")
	if rest, ok := strings.CutPrefix(reply, "400 "); ok {
		w.WriteHeader(http.StatusBadRequest)
		reply = rest
	}
	_, _ = io.WriteString(w, reply)
}

func (f *fakeSFN) targets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, strings.TrimPrefix(c.Target, "AWSStepFunctions."))
	}
	return out
}

// describe is a DescribeExecution response (API reference, Response Syntax).
func describe(status, extra string) string {
	return fmt.Sprintf(`{"executionArn":%q,"stateMachineArn":%q,"name":"nightly-1","status":%q,"startDate":%d,`+
		`"input":"{\"dryRun\":false}","inputDetails":{"included":true}%s}`, testExecution, testStateMachine, status, testStart, extra)
}

// describeMapRun is a DescribeMapRun response with these item counts (API reference, Response Syntax).
func describeMapRun(status string, pending, running, succeeded, failed, timedOut, total int) string {
	counts := fmt.Sprintf(`{"pending":%d,"running":%d,"succeeded":%d,"failed":%d,"timedOut":%d,"aborted":0,"total":%d,"resultsWritten":%d,"failuresNotRedrivable":0,"pendingRedrive":0}`,
		pending, running, succeeded, failed, timedOut, total, succeeded+failed)
	return fmt.Sprintf(`{"mapRunArn":%q,"executionArn":%q,"status":%q,"startDate":%d,"maxConcurrency":40,`+
		`"toleratedFailurePercentage":0.0,"toleratedFailureCount":0,"itemCounts":%s,"executionCounts":%s}`,
		testMapRun, testExecution, status, testStart+60, counts, counts)
}

var (
	startReply  = fmt.Sprintf(`{"executionArn":%q,"startDate":%d}`, testExecution, testStart)
	noMapRuns   = `{"mapRuns":[]}`
	oneMapRun   = fmt.Sprintf(`{"mapRuns":[{"executionArn":%q,"mapRunArn":%q,"stateMachineArn":%q,"startDate":%d}]}`, testExecution, testMapRun, testStateMachine, testStart+60)
	reportJSON  = `{"status":"SUCCEEDED","copied":9,"failed":0}`
	succeeded   = describe("SUCCEEDED", fmt.Sprintf(`,"stopDate":%v,"output":%q,"outputDetails":{"included":true}`, testStop, reportJSON))
	failedDescr = describe("FAILED", fmt.Sprintf(`,"stopDate":%v,"error":"BackupIncomplete","cause":"2 objects were not backed up: see report.json"`, testStop))
)

func TestRun(t *testing.T) {
	startTime := time.Unix(testStart, 0)
	stopTime := time.Unix(testStart, 0).Add(time.Hour + 500*time.Millisecond)
	input := []byte(`{"dryRun":false}`)
	tests := []struct {
		name     string
		replies  map[string][]string
		progress bool
		want     Execution
		// wantProgress are the snapshots progress gets; Elapsed is checked apart (see below).
		wantProgress []Progress
		wantTargets  []string
	}{
		{
			name: "running twice then succeeded, with map run counts",
			replies: map[string][]string{
				"StartExecution":    {startReply},
				"DescribeExecution": {describe("RUNNING", ""), describe("RUNNING", ""), succeeded},
				// The first poll comes before the Distributed Map has started.
				"ListMapRuns":    {noMapRuns, oneMapRun},
				"DescribeMapRun": {describeMapRun("RUNNING", 3, 2, 4, 1, 0, 10), describeMapRun("SUCCEEDED", 0, 0, 8, 1, 1, 10)},
			},
			progress: true,
			want: Execution{Arn: testExecution, Name: "nightly-1", Status: "SUCCEEDED", Output: json.RawMessage(reportJSON),
				Start: startTime, Stop: stopTime},
			wantProgress: []Progress{
				{Status: "RUNNING"},
				{Status: "RUNNING", BatchesTotal: 10, BatchesDone: 4, BatchesFailed: 1},
				{Status: "SUCCEEDED", BatchesTotal: 10, BatchesDone: 8, BatchesFailed: 2, Elapsed: time.Hour + 500*time.Millisecond},
			},
			wantTargets: []string{"StartExecution",
				"DescribeExecution", "ListMapRuns",
				"DescribeExecution", "ListMapRuns", "DescribeMapRun",
				"DescribeExecution", "ListMapRuns", "DescribeMapRun"},
		},
		{
			name: "failed: error and cause in the Execution, not a Go error",
			replies: map[string][]string{
				"StartExecution":    {startReply},
				"DescribeExecution": {describe("RUNNING", ""), failedDescr},
			},
			want: Execution{Arn: testExecution, Name: "nightly-1", Status: "FAILED", Error: "BackupIncomplete",
				Cause: "2 objects were not backed up: see report.json", Start: startTime, Stop: stopTime},
			// Without a progress function no map run is asked for.
			wantTargets: []string{"StartExecution", "DescribeExecution", "DescribeExecution"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeSFN{t: t, replies: tt.replies}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			var got []Progress
			var progress func(Progress)
			if tt.progress {
				progress = func(p Progress) { got = append(got, p) }
			}
			exec, err := Run(context.Background(), newSFN(t, srv.URL), testStateMachine, "nightly-1", input, time.Millisecond, progress)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !exec.Start.Equal(tt.want.Start) || !exec.Stop.Equal(tt.want.Stop) {
				t.Errorf("Start, Stop = %v, %v; want %v, %v", exec.Start, exec.Stop, tt.want.Start, tt.want.Stop)
			}
			exec.Start, exec.Stop, tt.want.Start, tt.want.Stop = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			if !reflect.DeepEqual(exec, tt.want) {
				t.Errorf("Execution = %+v\nwant %+v", exec, tt.want)
			}
			// A running execution's Elapsed is measured from its start date (in the past here): it is
			// at least the time from then to the test's start. A finished one's is stop − start.
			for i := range got {
				if got[i].Status == "RUNNING" {
					if got[i].Elapsed < time.Since(startTime)-time.Minute {
						t.Errorf("progress %d Elapsed = %v, want about %v", i, got[i].Elapsed, time.Since(startTime))
					}
					got[i].Elapsed = 0
				}
			}
			if !reflect.DeepEqual(got, tt.wantProgress) {
				t.Errorf("progress = %+v\nwant %+v", got, tt.wantProgress)
			}
			if targets := fake.targets(); !reflect.DeepEqual(targets, tt.wantTargets) {
				t.Errorf("requests = %v\nwant %v", targets, tt.wantTargets)
			}
			// What was sent: StartExecution's stateMachineArn, name and input; the execution ARN
			// from StartExecution in every later request, and the map run ARN from ListMapRuns.
			for _, c := range fake.calls {
				var want map[string]any
				switch c.Target {
				case "AWSStepFunctions.StartExecution":
					want = map[string]any{"stateMachineArn": testStateMachine, "name": "nightly-1", "input": string(input)}
				case "AWSStepFunctions.DescribeExecution", "AWSStepFunctions.ListMapRuns":
					want = map[string]any{"executionArn": testExecution}
				case "AWSStepFunctions.DescribeMapRun":
					want = map[string]any{"mapRunArn": testMapRun}
				}
				if !reflect.DeepEqual(c.Body, want) {
					t.Errorf("%s body = %v, want %v", c.Target, c.Body, want)
				}
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name        string
		replies     map[string][]string
		cancel      bool // cancel the context in the first progress call
		check       func(t *testing.T, exec Execution, err error)
		wantTargets []string
	}{
		{
			name: "execution name taken",
			// As Step Functions answers a name used before (StartExecution, Errors:
			// ExecutionAlreadyExists, HTTP 400).
			replies: map[string][]string{"StartExecution": {
				`400 {"__type":"com.amazonaws.swf.service.v2.model#ExecutionAlreadyExists","message":"Execution Already Exists: '` + testExecution + `'"}`}},
			check: func(t *testing.T, _ Execution, err error) {
				var exists *ExecutionAlreadyExists
				if !errors.As(err, &exists) || exists.Name != "nightly-1" {
					t.Fatalf("err = %v (%T), want *ExecutionAlreadyExists for nightly-1", err, err)
				}
				var cause *sfntypes.ExecutionAlreadyExists
				if !errors.As(err, &cause) {
					t.Errorf("err %v does not carry the SDK's *types.ExecutionAlreadyExists", err)
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, `"nightly-1"`) || !strings.Contains(msg, "already exists") {
					t.Errorf("message %q: want one line naming the execution", msg)
				}
			},
			wantTargets: []string{"StartExecution"},
		},
		{
			name: "state machine missing: the service's error is kept",
			replies: map[string][]string{"StartExecution": {
				`400 {"__type":"com.amazonaws.swf.service.v2.model#StateMachineDoesNotExist","message":"State Machine Does Not Exist: '` + testStateMachine + `'"}`}},
			check: func(t *testing.T, _ Execution, err error) {
				var missing *sfntypes.StateMachineDoesNotExist
				if !errors.As(err, &missing) || !strings.Contains(err.Error(), testStateMachine) {
					t.Fatalf("err = %v, want the StateMachineDoesNotExist naming the state machine", err)
				}
			},
			wantTargets: []string{"StartExecution"},
		},
		{
			name: "context cancelled: returns its error and leaves the execution running",
			replies: map[string][]string{
				"StartExecution":    {startReply},
				"DescribeExecution": {describe("RUNNING", "")},
				"ListMapRuns":       {noMapRuns},
			},
			cancel: true,
			check: func(t *testing.T, exec Execution, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
				if exec.Arn != testExecution || exec.Status != "RUNNING" || !strings.Contains(err.Error(), testExecution) {
					t.Errorf("exec = %+v, err = %v: want the running execution, named in the error", exec, err)
				}
			},
			// No StopExecution, and no poll after the cancel.
			wantTargets: []string{"StartExecution", "DescribeExecution", "ListMapRuns"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeSFN{t: t, replies: tt.replies}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var progress func(Progress)
			if tt.cancel {
				progress = func(Progress) { cancel() }
			}
			exec, err := Run(ctx, newSFN(t, srv.URL), testStateMachine, "nightly-1", []byte(`{}`), time.Millisecond, progress)
			tt.check(t, exec, err)
			if targets := fake.targets(); !reflect.DeepEqual(targets, tt.wantTargets) {
				t.Errorf("requests = %v, want %v", targets, tt.wantTargets)
			}
		})
	}
}

// describeStacks is a DescribeStacksResponse (CloudFormation API reference, DescribeStacks example)
// of one stack with these outputs.
func describeStacks(status string, outputs map[string]string) string {
	var b strings.Builder
	for _, k := range []string{"StateMachineArn", "RestoreStateMachineArn", "SourceBucketName", "BackupBucketName", "RunBucketName", "AlarmTopicArn", "ExecutionsConsoleUrl"} {
		if v, ok := outputs[k]; ok {
			fmt.Fprintf(&b, "<member><Description>d</Description><OutputKey>%s</OutputKey><OutputValue>%s</OutputValue></member>", k, v)
		}
	}
	return `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member>` +
		`<StackName>bucketvault</StackName><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/bucketvault/aaf549a0-a413-11df-adb3-5081b3858e83</StackId>` +
		`<CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>` + status + `</StackStatus><DisableRollback>false</DisableRollback>` +
		`<Outputs>` + b.String() + `</Outputs></member></Stacks></DescribeStacksResult>` +
		`<ResponseMetadata><RequestId>b9b4b068-3a41-11e5-94eb-example</RequestId></ResponseMetadata></DescribeStacksResponse>`
}

func cfnError(code, message string) string {
	return `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>` + code +
		`</Code><Message>` + message + `</Message></Error><RequestId>21113b58-b7e4-11e2-91fa-05ec834fa451</RequestId></ErrorResponse>`
}

func TestLoadStack(t *testing.T) {
	all := map[string]string{
		"StateMachineArn":        testStateMachine,
		"RestoreStateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:RestoreStateMachine",
		"SourceBucketName":       "bucketvault-source",
		"BackupBucketName":       "bucketvault-backup",
		"RunBucketName":          "bucketvault-run",
		"AlarmTopicArn":          "arn:aws:sns:us-east-1:123456789012:bucketvault-alarms",
		"ExecutionsConsoleUrl":   "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/statemachines/view/" + testStateMachine,
	}
	without := func(keys ...string) map[string]string {
		out := map[string]string{}
		for k, v := range all {
			out[k] = v
		}
		for _, k := range keys {
			delete(out, k)
		}
		return out
	}
	tests := []struct {
		name   string
		status int
		body   string
		want   Stack
		check  func(t *testing.T, err error)
	}{
		{
			name: "every output", status: 200, body: describeStacks("UPDATE_COMPLETE", all),
			want: Stack{Name: "bucketvault", StateMachineArn: all["StateMachineArn"], RestoreStateMachineArn: all["RestoreStateMachineArn"],
				SourceBucket: "bucketvault-source", BackupBucket: "bucketvault-backup", RunBucket: "bucketvault-run", ConsoleURL: all["ExecutionsConsoleUrl"]},
		},
		{
			name: "no console URL: not needed", status: 200, body: describeStacks("CREATE_COMPLETE", without("ExecutionsConsoleUrl")),
			want: Stack{Name: "bucketvault", StateMachineArn: all["StateMachineArn"], RestoreStateMachineArn: all["RestoreStateMachineArn"],
				SourceBucket: "bucketvault-source", BackupBucket: "bucketvault-backup", RunBucket: "bucketvault-run"},
		},
		{
			name: "stack does not exist", status: 400, body: cfnError("ValidationError", "Stack with id bucketvault does not exist"),
			check: func(t *testing.T, err error) {
				var nf *StackNotFound
				if !errors.As(err, &nf) || nf.Name != "bucketvault" {
					t.Fatalf("err = %v (%T), want *StackNotFound", err, err)
				}
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationError" {
					t.Errorf("err %v does not carry the service's ValidationError", err)
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, `stack "bucketvault" does not exist`) {
					t.Errorf("message %q: want one line saying the stack does not exist", msg)
				}
			},
		},
		{
			name: "outputs missing", status: 200, body: describeStacks("ROLLBACK_COMPLETE", without("RestoreStateMachineArn", "RunBucketName")),
			check: func(t *testing.T, err error) {
				var mo *MissingOutputs
				if !errors.As(err, &mo) || !reflect.DeepEqual(mo.Missing, []string{"RestoreStateMachineArn", "RunBucketName"}) || mo.Status != "ROLLBACK_COMPLETE" {
					t.Fatalf("err = %v (%#v), want *MissingOutputs of RestoreStateMachineArn, RunBucketName in ROLLBACK_COMPLETE", err, err)
				}
				if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "RestoreStateMachineArn, RunBucketName") || !strings.Contains(msg, "ROLLBACK_COMPLETE") {
					t.Errorf("message %q: want one line naming the missing outputs and the status", msg)
				}
			},
		},
		{
			name: "another ValidationError is not a missing stack", status: 400,
			body: cfnError("ValidationError", "1 validation error detected: Value 'bad name' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"),
			check: func(t *testing.T, err error) {
				var nf *StackNotFound
				var ae smithy.APIError
				if err == nil || errors.As(err, &nf) || !errors.As(err, &ae) || !strings.Contains(err.Error(), "stackName") {
					t.Fatalf("err = %v (%T), want the service's ValidationError as it is", err, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
					t.Errorf("request %s %q, form error %v: want a form-encoded POST", r.Method, r.Header.Get("Content-Type"), err)
				}
				got = append(got, r.PostForm.Encode())
				w.Header().Set("Content-Type", "text/xml")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			stack, err := LoadStack(context.Background(), newCFN(t, srv.URL), "bucketvault")
			if want := []string{"Action=DescribeStacks&StackName=bucketvault&Version=2010-05-15"}; !reflect.DeepEqual(got, want) {
				t.Errorf("requests = %q, want %q", got, want)
			}
			if tt.check != nil {
				tt.check(t, err)
				return
			}
			if err != nil {
				t.Fatalf("LoadStack: %v", err)
			}
			if stack != tt.want {
				t.Errorf("Stack = %+v\nwant %+v", stack, tt.want)
			}
		})
	}
}
