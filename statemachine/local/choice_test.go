package local

import (
	"strings"
	"testing"
)

func TestChoiceRules(t *testing.T) {
	input := `{"s":"beta","n":10,"f":2.5,"b":true,"z":null,"ts":"2024-03-01T10:00:00Z","ts2":"2024-03-01T12:00:00+02:00",
		"o":{"k":1},"other":"beta","big":12345678901234567890,"star":"a*b","path":"logs/2024/app.log"}`
	tests := []struct {
		rule  string
		want  bool
		cause string // a States.Runtime cause instead of a result
	}{
		{`{"Variable":"$.s","StringEquals":"beta"}`, true, ""},
		{`{"Variable":"$.s","StringEquals":"Beta"}`, false, ""},
		{`{"Variable":"$.s","StringLessThan":"gamma"}`, true, ""},
		{`{"Variable":"$.s","StringGreaterThan":"alpha"}`, true, ""},
		{`{"Variable":"$.s","StringLessThanEquals":"beta"}`, true, ""},
		{`{"Variable":"$.s","StringGreaterThanEquals":"betb"}`, false, ""},
		{`{"Variable":"$.s","StringEqualsPath":"$.other"}`, true, ""},
		{`{"Variable":"$.path","StringMatches":"logs/*.log"}`, true, ""},
		{`{"Variable":"$.path","StringMatches":"*/2024/*"}`, true, ""},
		{`{"Variable":"$.path","StringMatches":"logs/*.txt"}`, false, ""},
		{`{"Variable":"$.star","StringMatches":"a\\*b"}`, true, ""},
		{`{"Variable":"$.s","StringMatches":"b\\*a"}`, false, ""},
		{`{"Variable":"$.n","NumericEquals":10}`, true, ""},
		{`{"Variable":"$.n","NumericEquals":10.0}`, true, ""},
		{`{"Variable":"$.f","NumericLessThan":3}`, true, ""},
		{`{"Variable":"$.n","NumericGreaterThan":9.99}`, true, ""},
		{`{"Variable":"$.n","NumericLessThanEquals":10}`, true, ""},
		{`{"Variable":"$.n","NumericGreaterThanEquals":11}`, false, ""},
		{`{"Variable":"$.big","NumericGreaterThan":12345678901234567889}`, true, ""},
		{`{"Variable":"$.n","NumericGreaterThanPath":"$.f"}`, true, ""},
		{`{"Variable":"$.b","BooleanEquals":true}`, true, ""},
		{`{"Variable":"$.b","BooleanEqualsPath":"$.b"}`, true, ""},
		{`{"Variable":"$.ts","TimestampEquals":"2024-03-01T10:00:00Z"}`, true, ""},
		{`{"Variable":"$.ts","TimestampEqualsPath":"$.ts2"}`, true, ""}, // same instant, other offset
		{`{"Variable":"$.ts","TimestampLessThan":"2024-03-01T10:00:01Z"}`, true, ""},
		{`{"Variable":"$.ts","TimestampGreaterThanEquals":"2024-03-02T00:00:00Z"}`, false, ""},
		// type mismatch is false, not an error
		{`{"Variable":"$.n","StringEquals":"10"}`, false, ""},
		{`{"Variable":"$.s","NumericEquals":10}`, false, ""},
		{`{"Variable":"$.s","BooleanEquals":true}`, false, ""},
		{`{"Variable":"$.s","TimestampEquals":"2024-03-01T10:00:00Z"}`, false, ""},
		{`{"Variable":"$.o","StringEqualsPath":"$.s"}`, false, ""},
		// type tests
		{`{"Variable":"$.z","IsNull":true}`, true, ""},
		{`{"Variable":"$.s","IsNull":false}`, true, ""},
		{`{"Variable":"$.missing","IsPresent":false}`, true, ""},
		{`{"Variable":"$.z","IsPresent":true}`, true, ""},
		{`{"Variable":"$.f","IsNumeric":true}`, true, ""},
		{`{"Variable":"$.s","IsString":true}`, true, ""},
		{`{"Variable":"$.b","IsBoolean":true}`, true, ""},
		{`{"Variable":"$.ts","IsTimestamp":true}`, true, ""},
		{`{"Variable":"$.s","IsTimestamp":true}`, false, ""},
		// combinations
		{`{"And":[{"Variable":"$.n","NumericEquals":10},{"Variable":"$.b","BooleanEquals":true}]}`, true, ""},
		{`{"And":[{"Variable":"$.n","NumericEquals":10},{"Variable":"$.b","BooleanEquals":false}]}`, false, ""},
		{`{"Or":[{"Variable":"$.n","NumericEquals":1},{"Variable":"$.b","BooleanEquals":true}]}`, true, ""},
		{`{"Not":{"Variable":"$.s","StringEquals":"beta"}}`, false, ""},
		{`{"And":[{"Variable":"$.n","NumericEquals":1},{"Variable":"$.missing","NumericEquals":1}]}`, false, ""}, // short-circuit
		{`{"Or":[{"Variable":"$.n","NumericEquals":10},{"Variable":"$.missing","NumericEquals":1}]}`, true, ""},
		{`{"Not":{"Variable":"$.missing","IsPresent":true}}`, true, ""},
		// missing variable or operand path
		{`{"Variable":"$.missing","StringEquals":"x"}`, false, "Invalid path '$.missing': The choice state's condition path references an invalid value."},
		{`{"Variable":"$.missing","IsNull":true}`, false, "Invalid path '$.missing': The choice state's condition path references an invalid value."},
		{`{"Variable":"$.s","StringEqualsPath":"$.nope"}`, false, "Invalid path '$.nope': The choice state's comparison path references an invalid value."},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r, err := parseRule(`state "C"`, "Choices[0]", []byte(tt.rule), false)
			if err != nil {
				t.Fatal(err)
			}
			in, _ := decodeJSON([]byte(input))
			got, err := r.eval(in, func() any { return map[string]any{} })
			if tt.cause != "" {
				if err == nil || err.Error() != tt.cause {
					t.Fatalf("err = %v, want %q", err, tt.cause)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestChoiceState(t *testing.T) {
	def := func(withDefault bool) string {
		dflt, small := "", ""
		if withDefault {
			dflt, small = `,"Default":"Small"`, `,"Small":{"Type":"Pass","Result":"small","End":true}`
		}
		return `{"StartAt":"C","States":{"C":{"Type":"Choice","InputPath":"$.in","OutputPath":"$.v",
			"Choices":[{"Variable":"$.v","NumericGreaterThan":5,"Next":"Big"},{"Variable":"$.v","NumericLessThan":0,"Next":"Neg"}]` + dflt + `},
			"Big":{"Type":"Pass","Result":"big","End":true},"Neg":{"Type":"Pass","End":true}` + small + `}}`
	}
	tests := []struct {
		name        string
		withDefault bool
		input, want string
		err, cause  string
	}{
		{name: "first matching rule", withDefault: true, input: `{"in":{"v":7}}`, want: `"big"`},
		{name: "second rule; OutputPath applies to the effective input", withDefault: true, input: `{"in":{"v":-1}}`, want: `-1`},
		{name: "default", withDefault: true, input: `{"in":{"v":3}}`, want: `"small"`},
		{name: "no match and no default", input: `{"in":{"v":3}}`, err: "States.NoChoiceMatched", cause: "No Matches!"},
		{name: "missing variable", withDefault: true, input: `{"in":{}}`, err: "States.Runtime",
			cause: "An error occurred while executing the state 'C' (entered at the event id #2). Invalid path '$.v': The choice state's condition path references an invalid value."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := mustRun(t, mustNew(t, def(tt.withDefault), testOptions(nil)), tt.input)
			if tt.err != "" {
				if x.Status != "FAILED" || x.Error != tt.err || x.Cause != tt.cause {
					t.Fatalf("got %s %s %q", x.Status, x.Error, x.Cause)
				}
				return
			}
			if x.Status != "SUCCEEDED" || string(x.Output) != tt.want {
				t.Errorf("got %s %s %s", x.Status, x.Output, x.Cause)
			}
		})
	}
}

func TestWaitState(t *testing.T) {
	tests := []struct {
		name, fields, input, err string
		wantSleep                float64
	}{
		{name: "Seconds", fields: `"Seconds":5`, input: `{}`, wantSleep: 5},
		{name: "SecondsPath", fields: `"SecondsPath":"$.s"`, input: `{"s":7}`, wantSleep: 7},
		{name: "Timestamp in the past", fields: `"Timestamp":"2001-01-01T00:00:00Z"`, input: `{}`},
		{name: "TimestampPath in the past", fields: `"TimestampPath":"$.t"`, input: `{"t":"2001-01-01T00:00:00Z"}`},
		{name: "SecondsPath not an integer", fields: `"SecondsPath":"$.s"`, input: `{"s":"7"}`, err: "States.Runtime"},
		{name: "TimestampPath not a timestamp", fields: `"TimestampPath":"$.t"`, input: `{"t":"tomorrow"}`, err: "States.Runtime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl := &sleeps{}
			opts := testOptions(nil)
			opts.Sleep = sl.sleep
			def := `{"StartAt":"W","States":{"W":{"Type":"Wait",` + tt.fields + `,"End":true}}}`
			x := mustRun(t, mustNew(t, def, opts), tt.input)
			if tt.err != "" {
				if x.Error != tt.err {
					t.Fatalf("got %s %s", x.Status, x.Error)
				}
				return
			}
			if x.Status != "SUCCEEDED" || string(x.Output) != tt.input {
				t.Fatalf("got %s %s", x.Status, x.Output)
			}
			var want []float64
			if tt.wantSleep > 0 {
				want = []float64{tt.wantSleep}
			}
			if got := sl.seconds(); len(got) != len(want) || (len(got) == 1 && got[0] != want[0]) {
				t.Errorf("slept %v, want %v", got, want)
			}
			if got := strings.Join(eventTypes(x), " "); got != "ExecutionStarted WaitStateEntered WaitStateExited ExecutionSucceeded" {
				t.Errorf("events %s", got)
			}
		})
	}
}
