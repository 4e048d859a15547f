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

// history numbers events and, for the top-level execution, keeps them. A Distributed Map's
// child executions only number theirs (ids appear in error causes), keeping nothing.
type history struct {
	mu     sync.Mutex
	keep   bool
	lastID int64
	events []HistoryEvent
}

// thread is one sequential strand of events (the execution, or one Map iteration);
// previousEventId links each event to the strand's previous one.
type thread struct {
	h    *history
	last int64
}

func (t *thread) add(typ string, details map[string]any) int64 {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	t.h.lastID++
	id := t.h.lastID
	if t.h.keep {
		t.h.events = append(t.h.events, HistoryEvent{Timestamp: time.Now(), Type: typ, ID: id, PreviousEventID: t.last, Details: details})
	}
	t.last = id
	return id
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
