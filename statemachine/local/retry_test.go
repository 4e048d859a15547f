package local

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// flaky fails with errs[i] on call i (nil: succeed) and records the RetryCount it was given.
type flaky struct {
	mu      sync.Mutex
	errs    []error
	calls   int
	retries []int
}

func (f *flaky) fn() FunctionConfig {
	return fn(func(_ context.Context, in struct{ Retry int }) (map[string]any, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.retries = append(f.retries, in.Retry)
		i := f.calls
		f.calls++
		if i < len(f.errs) && f.errs[i] != nil {
			return nil, f.errs[i]
		}
		return map[string]any{"ok": true}, nil
	})
}

func fails(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

func TestRetry(t *testing.T) {
	retryTask := func(retry string) string {
		return `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
			"Parameters":{"FunctionName":"f","Payload":{"Retry.$":"$$.State.RetryCount"}},"Retry":` + retry + `,
			"Catch":[{"ErrorEquals":["States.ALL"],"Next":"Caught"}],"End":true},"Caught":{"Type":"Succeed"}}}`
	}
	tests := []struct {
		name        string
		retry       string
		errs        []error
		wantSleeps  []float64
		wantCalls   int
		wantCaught  bool
		wantRetries []int
	}{
		{name: "backoff sequence", retry: `[{"ErrorEquals":["errNamed"],"IntervalSeconds":2,"MaxAttempts":5,"BackoffRate":2}]`,
			errs: fails(4, &errNamed{"x"}), wantSleeps: []float64{2, 4, 8, 16}, wantCalls: 5, wantRetries: []int{0, 1, 2, 3, 4}},
		{name: "defaults 1s x2, 3 attempts", retry: `[{"ErrorEquals":["errNamed"]}]`,
			errs: fails(9, &errNamed{"x"}), wantSleeps: []float64{1, 2, 4}, wantCalls: 4, wantCaught: true},
		{name: "MaxDelaySeconds caps", retry: `[{"ErrorEquals":["errNamed"],"IntervalSeconds":2,"MaxAttempts":5,"BackoffRate":3,"MaxDelaySeconds":10}]`,
			errs: fails(4, &errNamed{"x"}), wantSleeps: []float64{2, 6, 10, 10}, wantCalls: 5},
		{name: "fractional backoff", retry: `[{"ErrorEquals":["errNamed"],"IntervalSeconds":4,"BackoffRate":1.5}]`,
			errs: fails(3, &errNamed{"x"}), wantSleeps: []float64{4, 6, 9}, wantCalls: 4},
		{name: "MaxAttempts 0 never retries", retry: `[{"ErrorEquals":["errNamed"],"MaxAttempts":0},{"ErrorEquals":["States.ALL"]}]`,
			errs: fails(9, &errNamed{"x"}), wantCalls: 1, wantCaught: true},
		{name: "first matching retrier only", retry: `[{"ErrorEquals":["errNamed"],"MaxAttempts":1},{"ErrorEquals":["States.ALL"],"MaxAttempts":5}]`,
			errs: fails(9, &errNamed{"x"}), wantSleeps: []float64{1}, wantCalls: 2, wantCaught: true},
		{name: "each error its retrier", retry: `[{"ErrorEquals":["errNamed"],"IntervalSeconds":3},{"ErrorEquals":["States.TaskFailed"],"IntervalSeconds":5}]`,
			errs: []error{&errNamed{"x"}, errPlain, &errNamed{"x"}}, wantSleeps: []float64{3, 5, 6}, wantCalls: 4},
		{name: "unmatched error is not retried", retry: `[{"ErrorEquals":["Other"]}]`, errs: fails(1, errPlain), wantCalls: 1, wantCaught: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{errs: tt.errs}
			sl := &sleeps{}
			opts := testOptions(map[string]FunctionConfig{"f": f.fn()})
			opts.Sleep = sl.sleep
			x := mustRun(t, mustNew(t, retryTask(tt.retry), opts), `{}`)
			if x.Status != "SUCCEEDED" {
				t.Fatal(x.Error, x.Cause)
			}
			if got := sl.seconds(); !reflect.DeepEqual(got, tt.wantSleeps) {
				t.Errorf("sleeps %v, want %v", got, tt.wantSleeps)
			}
			if f.calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", f.calls, tt.wantCalls)
			}
			if caught := strings.Contains(string(x.Output), "Error"); caught != tt.wantCaught {
				t.Errorf("output %s, caught = %v", x.Output, caught)
			}
			if tt.wantRetries != nil && !reflect.DeepEqual(f.retries, tt.wantRetries) {
				t.Errorf("$$.State.RetryCount seen %v, want %v", f.retries, tt.wantRetries)
			}
		})
	}
}

func TestRetryJitter(t *testing.T) {
	r := &retrier{interval: 2, backoff: 2, maxAttempts: 10, jitterFull: true}
	if d := r.delay(2, func() float64 { return 0.25 }); d.Seconds() != 2 {
		t.Errorf("jittered delay %v, want 0.25 x 8s", d)
	}
	def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
		"Parameters":{"FunctionName":"f"},"Retry":[{"ErrorEquals":["errNamed"],"IntervalSeconds":2,"MaxAttempts":8,"JitterStrategy":"FULL","MaxDelaySeconds":60}],"End":true}}}`
	f := &flaky{errs: fails(8, &errNamed{"x"})}
	sl := &sleeps{}
	opts := testOptions(map[string]FunctionConfig{"f": f.fn()})
	opts.Sleep = sl.sleep
	mustRun(t, mustNew(t, def, opts), `{}`)
	bounds := []float64{2, 4, 8, 16, 32, 60, 60, 60}
	got := sl.seconds()
	if len(got) != len(bounds) {
		t.Fatalf("sleeps %v", got)
	}
	for i, d := range got {
		if d < 0 || d > bounds[i] {
			t.Errorf("retry %d slept %vs, outside [0, %v]", i+1, d, bounds[i])
		}
	}
}

func TestRetryCountsResetOnLeavingState(t *testing.T) {
	// The Task fails once on every visit; MaxAttempts 1 suffices only if counts reset.
	def := `{"StartAt":"T","States":{
		"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"f","Payload":{"Retry.$":"$$.State.RetryCount"}},
			"Retry":[{"ErrorEquals":["errNamed"],"MaxAttempts":1}],"ResultPath":null,"Next":"Count"},
		"Count":{"Type":"Choice","Choices":[{"Variable":"$.again","BooleanEquals":true,"Next":"Again"}],"Default":"Done"},
		"Again":{"Type":"Pass","Result":false,"ResultPath":"$.again","Next":"T"},
		"Done":{"Type":"Succeed"}}}`
	f := &flaky{errs: []error{&errNamed{"1"}, nil, &errNamed{"2"}, nil}}
	x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"f": f.fn()})), `{"again":true}`)
	if x.Status != "SUCCEEDED" {
		t.Fatalf("%s %s", x.Error, x.Cause)
	}
	if !reflect.DeepEqual(f.retries, []int{0, 1, 0, 1}) {
		t.Errorf("RetryCount seen %v, want [0 1 0 1]", f.retries)
	}
}

func TestCatch(t *testing.T) {
	def := func(catch string) string {
		return `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","InputPath":"$.sub",
			"Parameters":{"FunctionName":"f","Payload.$":"$"},"ResultSelector":{"x":1},"OutputPath":"$.never",
			"Retry":[{"ErrorEquals":["States.ALL"],"MaxAttempts":2}],
			"Catch":` + catch + `,"End":true},"A":{"Type":"Pass","Result":"A","ResultPath":"$.by","End":true},"B":{"Type":"Pass","Result":"B","ResultPath":"$.by","End":true}}}`
	}
	tests := []struct {
		name, catch, input string
		err                error
		want, wantError    string
	}{
		{name: "first matching catcher, ResultPath into raw input", catch: `[{"ErrorEquals":["errNamed"],"ResultPath":"$.err","Next":"A"},{"ErrorEquals":["States.ALL"],"Next":"B"}]`,
			input: `{"sub":{"k":1}}`, err: &errNamed{"bad"},
			want: `{"sub":{"k":1},"err":{"Error":"errNamed","Cause":"{\"errorMessage\":\"bad\",\"errorType\":\"errNamed\"}"},"by":"A"}`},
		{name: "States.ALL catches the rest; default ResultPath replaces", catch: `[{"ErrorEquals":["errNamed"],"Next":"A"},{"ErrorEquals":["States.ALL"],"Next":"B"}]`,
			input: `{"sub":{}}`, err: errPlain, want: `{"Error":"errorString","Cause":"{\"errorMessage\":\"plain\",\"errorType\":\"errorString\"}","by":"B"}`},
		{name: "ResultPath null keeps the raw input", catch: `[{"ErrorEquals":["States.TaskFailed"],"ResultPath":null,"Next":"A"},{"ErrorEquals":["Never"],"Next":"B"}]`,
			input: `{"sub":{}}`, err: errPlain, want: `{"sub":{},"by":"A"}`},
		{name: "no catcher matches", catch: `[{"ErrorEquals":["Other"],"Next":"A"},{"ErrorEquals":["Never"],"Next":"B"}]`, input: `{"sub":{}}`, err: errPlain, wantError: "errorString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fn(func(context.Context, any) (any, error) { return nil, tt.err })
			x := mustRun(t, mustNew(t, def(tt.catch), testOptions(map[string]FunctionConfig{"f": f})), tt.input)
			if tt.wantError != "" {
				if x.Status != "FAILED" || x.Error != tt.wantError {
					t.Fatalf("got %s %s", x.Status, x.Error)
				}
				return
			}
			if x.Status != "SUCCEEDED" {
				t.Fatalf("%s %s %s", x.Status, x.Error, x.Cause)
			}
			jsonEqual(t, x.Output, tt.want)
		})
	}
}

func TestRuntimeErrorsAreNotRetriedOrCaught(t *testing.T) {
	def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
		"Parameters":{"FunctionName":"f","Payload":{"x.$":"$.missing"}},
		"Retry":[{"ErrorEquals":["States.ALL"]}],"Catch":[{"ErrorEquals":["States.ALL"],"Next":"C"}],"End":true},"C":{"Type":"Succeed"}}}`
	sl := &sleeps{}
	opts := testOptions(map[string]FunctionConfig{"f": echo})
	opts.Sleep = sl.sleep
	x := mustRun(t, mustNew(t, def, opts), `{}`)
	if x.Status != "FAILED" || x.Error != "States.Runtime" || len(sl.ds) != 0 {
		t.Errorf("got %s %s, sleeps %v", x.Status, x.Error, sl.ds)
	}
}

func TestErrorMatching(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"States.ALL", "errorString", true},
		{"States.ALL", "States.Timeout", true},
		{"States.ALL", "States.Runtime", false},
		{"States.ALL", "States.DataLimitExceeded", false},
		{"States.TaskFailed", "Sandbox.Timedout", true},
		{"States.TaskFailed", "States.Timeout", false},
		{"States.TaskFailed", "States.DataLimitExceeded", false},
		{"States.Runtime", "States.Runtime", false},
		{"States.DataLimitExceeded", "States.DataLimitExceeded", true},
		{"States.Timeout", "States.Timeout", true},
		{"errNamed", "errNamed", true},
		{"errNamed", "errnamed", false},
	}
	for _, tt := range tests {
		if got := errorMatches(tt.pattern, tt.name); got != tt.want {
			t.Errorf("errorMatches(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}
