// Package execinput parses a backup execution's input: {} from the console, an EventBridge
// scheduled event, or an object of documented overrides.
package execinput

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"errors"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/filter"
)

// Options are the overrides an execution may carry. Every field is optional.
type Options struct {
	// Prefix limits the run to source keys starting with it (and backup keys, for deletions).
	Prefix string `json:"prefix"`
	// DryRun lists and counts what the run would do, and copies and marks nothing.
	DryRun bool `json:"dryRun"`
	// MaxDeletePercent overrides the deletion guard for this run: the largest share (0–100) of
	// the backup's current objects the run may mark deleted. 100 accepts any deletion.
	MaxDeletePercent *float64 `json:"maxDeletePercent"`
	// MaxChangePercent overrides the change guard for this run: the largest share (0–100) of the
	// backup's current objects that may have changed without the run ending MassChangeDetected.
	// 100 accepts any change. The copies are made either way.
	MaxChangePercent *float64 `json:"maxChangePercent"`
	// Filters, when present, replace the deployment's filters (FILTERS) for this run; {} runs
	// without any. Every rule is checked as the input is parsed (package filter).
	Filters *filter.Filter `json:"filters"`
}

// event is the part of an EventBridge event (rule target without Input) that we read.
type event struct {
	Source     string          `json:"source"`
	DetailType string          `json:"detail-type"`
	Detail     json.RawMessage `json:"detail"`
}

// Parse reads execution input. Empty input and null mean no overrides. An EventBridge event
// (source aws.events or aws.scheduler with a detail-type) takes its overrides from detail. Any
// other input must be an object of the fields of Options; an unknown field or a wrong type is a
// *fault.InvalidInput that names it.
func Parse(raw []byte) (Options, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return Options{}, nil
	}
	if raw[0] != '{' {
		return Options{}, &fault.InvalidInput{Msg: fmt.Sprintf("execution input must be a JSON object, got %s", clip(raw))}
	}
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return Options{}, &fault.InvalidInput{Msg: fmt.Sprintf("execution input is not valid JSON: %v", err)}
	}
	if (ev.Source == "aws.events" || ev.Source == "aws.scheduler") && ev.DetailType != "" {
		detail := bytes.TrimSpace(ev.Detail)
		if len(detail) == 0 || bytes.Equal(detail, []byte("null")) {
			return Options{}, nil
		}
		opts, err := decode(detail)
		if err != nil {
			return Options{}, &fault.InvalidInput{Msg: "event detail: " + err.Error()}
		}
		return opts, nil
	}
	opts, err := decode(raw)
	if err != nil {
		return Options{}, &fault.InvalidInput{Msg: "execution input: " + err.Error()}
	}
	return opts, nil
}

func decode(raw []byte) (Options, error) {
	var o Options
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		var invalid *fault.InvalidInput
		if errors.As(err, &invalid) { // a malformed filter rule, already named by package filter
			return Options{}, err
		}
		return Options{}, fmt.Errorf("%v (allowed fields: prefix, dryRun, maxDeletePercent, maxChangePercent, filters)", err)
	}
	if dec.More() {
		return Options{}, fmt.Errorf("trailing data after the JSON object")
	}
	switch {
	case !utf8.ValidString(o.Prefix):
		return Options{}, fmt.Errorf("prefix is not valid UTF-8")
	case len(o.Prefix) > 1024:
		return Options{}, fmt.Errorf("prefix of %d bytes is longer than an S3 key (1024)", len(o.Prefix))
	case o.MaxDeletePercent != nil && (*o.MaxDeletePercent < 0 || *o.MaxDeletePercent > 100):
		return Options{}, fmt.Errorf("maxDeletePercent %v must be from 0 to 100", *o.MaxDeletePercent)
	case o.MaxChangePercent != nil && (*o.MaxChangePercent < 0 || *o.MaxChangePercent > 100):
		return Options{}, fmt.Errorf("maxChangePercent %v must be from 0 to 100", *o.MaxChangePercent)
	}
	return o, nil
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
