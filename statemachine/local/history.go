package local

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// HistoryEvent is one event of an execution's history, shaped as GetExecutionHistory returns
// it. Details is rendered under the event type's details key: stateEnteredEventDetails for
// every *StateEntered event, stateExitedEventDetails for every *StateExited event, and
// "<type>EventDetails" with a lower-case first letter otherwise (taskFailedEventDetails, …).
type HistoryEvent struct {
	Timestamp       time.Time
	Type            string
	ID              int64
	PreviousEventID int64
	Details         map[string]any // nil for events without details
}

// DetailsKey is the JSON key Details is rendered under.
func (e HistoryEvent) DetailsKey() string {
	switch {
	case strings.HasSuffix(e.Type, "StateEntered"):
		return "stateEnteredEventDetails"
	case strings.HasSuffix(e.Type, "StateExited"):
		return "stateExitedEventDetails"
	}
	return strings.ToLower(e.Type[:1]) + e.Type[1:] + "EventDetails"
}

// MarshalJSON renders the event with AWS's keys.
func (e HistoryEvent) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"timestamp":`)
	ts, _ := json.Marshal(e.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"))
	b.Write(ts)
	typ, _ := json.Marshal(e.Type)
	b.WriteString(`,"type":`)
	b.Write(typ)
	b.WriteString(`,"id":`)
	b.WriteString(string(num(e.ID)))
	b.WriteString(`,"previousEventId":`)
	b.WriteString(string(num(e.PreviousEventID)))
	if e.Details != nil {
		d, err := encodeJSON(e.Details)
		if err != nil {
			return nil, err
		}
		b.WriteString(`,"` + e.DetailsKey() + `":`)
		b.Write(d)
	}
	b.WriteString("}")
	return b.Bytes(), nil
}

// MaxHistoryEvents is the hard quota on a Standard execution's history (Step Functions
// developer guide, "Avoid reaching the history quota"): once 24,999 events are recorded, event
// 25,000 may only be ExecutionSucceeded; any other event fails the execution instead, and
// ExecutionFailed is that last event. Each Distributed Map child execution has a history, and
// this quota, of its own.
const MaxHistoryEvents = 25000

// HistoryLimitCause is the cause of the failure when an execution reaches MaxHistoryEvents; the
// error is States.Runtime (not retried, not caught).
const HistoryLimitCause = "The execution reached the maximum number of history events (25000)."

// history numbers events and, for the top-level execution, keeps them. A Distributed Map's
// child executions only number theirs (ids appear in error causes), keeping nothing. It refuses
// an event past MaxHistoryEvents-1 and remembers that it did (full): the runner then ends the
// execution at its next step (see thread.limit), and the closing event takes the last id.
type history struct {
	mu     sync.Mutex
	keep   bool
	lastID int64
	full   bool
	events []HistoryEvent
}

// thread is one sequential strand of events (the execution, or one Map iteration);
// previousEventId links each event to the strand's previous one.
type thread struct {
	h    *history
	last int64
}

// add records an event of the running execution. Past MaxHistoryEvents-1 events it records
// nothing and marks the history full.
func (t *thread) add(typ string, details map[string]any) int64 {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	if t.h.full || t.h.lastID >= MaxHistoryEvents-1 {
		t.h.full = true
		return t.h.lastID
	}
	return t.record(typ, details)
}

// close records the execution's closing event (ExecutionSucceeded, ExecutionFailed, …), which
// may be event MaxHistoryEvents.
func (t *thread) close(typ string, details map[string]any) int64 {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	return t.record(typ, details)
}

// record appends the event; callers hold t.h.mu.
func (t *thread) record(typ string, details map[string]any) int64 {
	t.h.lastID++
	id := t.h.lastID
	if t.h.keep {
		t.h.events = append(t.h.events, HistoryEvent{Timestamp: time.Now(), Type: typ, ID: id, PreviousEventID: t.last, Details: details})
	}
	t.last = id
	return id
}

// limit is the execution's failure once its history is full, else nil. The runner checks it
// before each state, before any side effect (an invocation, a wait, a Map run) and before a
// retry, so that nothing runs that AWS would not have recorded.
func (t *thread) limit() error {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	if t.h.full {
		return &failure{name: "States.Runtime", cause: HistoryLimitCause}
	}
	return nil
}

// isFull reports whether the history refused an event.
func (t *thread) isFull() bool {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	return t.h.full
}

// fork starts a strand (a Map iteration) that follows this one's last event.
func (t *thread) fork() *thread { return &thread{h: t.h, last: t.last} }

func (t *thread) keeps() bool { return t.h.keep }

func enteredDetails(name string, input any) map[string]any {
	return map[string]any{"name": name, "input": jsonText(input), "inputDetails": map[string]any{"truncated": false}}
}

func exitedDetails(name string, output any) map[string]any {
	return map[string]any{"name": name, "output": jsonText(output), "outputDetails": map[string]any{"truncated": false}}
}

func errorDetails(f *failure, extra map[string]any) map[string]any {
	d := map[string]any{"error": f.name}
	if f.cause != "" {
		d["cause"] = f.cause
	}
	for k, v := range extra {
		d[k] = v
	}
	return d
}
