package local

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// historyLoop is three Pass states, then a Task that adds one to n and a Choice that loops back
// to it while n < k. Its history is 1 (ExecutionStarted) + 6 + 7 per loop + 2 (Succeed) + 1
// (ExecutionSucceeded) events: k = 3570 makes exactly 25,000. The Task retries and catches
// States.ALL, which the history limit must get past.
const historyLoop = `{"StartAt":"P1","States":{
	"P1":{"Type":"Pass","Next":"P2"},"P2":{"Type":"Pass","Next":"P3"},"P3":{"Type":"Pass","Next":"T"},
	"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"inc","Payload.$":"$"},
		"ResultSelector":{"n.$":"$.Payload.n","k.$":"$.Payload.k"},
		"Retry":[{"ErrorEquals":["States.ALL"],"MaxAttempts":3}],
		"Catch":[{"ErrorEquals":["States.ALL"],"Next":"Caught"}],"Next":"C"},
	"C":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericLessThanPath":"$.k","Next":"T"}],"Default":"Done"},
	"Caught":{"Type":"Succeed"},
	"Done":{"Type":"Succeed"}}}`

// An execution may have 25,000 history events, the last of which may only be ExecutionSucceeded;
// any other event past 24,999 fails it with States.Runtime, uncaught and not retried, and
// nothing runs whose events were not recorded.
func TestHistoryLimit(t *testing.T) {
	tests := []struct {
		name        string
		k           int
		status      string
		invocations int64
		lastType    string
	}{
		{name: "ExecutionSucceeded is event 25,000", k: 3570, status: "SUCCEEDED", invocations: 3570, lastType: "ExecutionSucceeded"},
		{name: "one loop more fails at event 25,000", k: 3571, status: "FAILED", invocations: 3570, lastType: "ExecutionFailed"},
		{name: "far more fails at event 25,000", k: 1000000, status: "FAILED", invocations: 3570, lastType: "ExecutionFailed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			inc := fn(func(in struct{ N, K int }) (map[string]int, error) {
				calls.Add(1)
				return map[string]int{"n": in.N + 1, "k": in.K}, nil
			})
			e := mustNew(t, historyLoop, testOptions(map[string]FunctionConfig{"inc": inc}))
			x := mustRun(t, e, `{"n":0,"k":`+strconv.Itoa(tt.k)+`}`)
			if x.Status != tt.status {
				t.Fatalf("status %s (%s: %s), want %s", x.Status, x.Error, x.Cause, tt.status)
			}
			if tt.status == "FAILED" && (x.Error != "States.Runtime" || x.Cause != HistoryLimitCause) {
				t.Errorf("error %s %q, want States.Runtime %q", x.Error, x.Cause, HistoryLimitCause)
			}
			if n := len(x.Events); n != MaxHistoryEvents {
				t.Errorf("%d events, want %d", n, MaxHistoryEvents)
			}
			last := x.Events[len(x.Events)-1]
			if last.Type != tt.lastType || last.ID != MaxHistoryEvents || last.PreviousEventID != MaxHistoryEvents-1 {
				t.Errorf("last event %s #%d (previous #%d), want %s #%d", last.Type, last.ID, last.PreviousEventID, tt.lastType, MaxHistoryEvents)
			}
			if got := calls.Load(); got != tt.invocations {
				t.Errorf("function invoked %d times, want %d (never for a TaskStarted the history refused)", got, tt.invocations)
			}
			for _, ev := range x.Events {
				if strings.HasPrefix(ev.Type, "Succeed") && ev.Details["name"] == "Caught" {
					t.Fatal("the Catch on States.ALL caught the history limit")
				}
			}
		})
	}
}
