package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Values flowing through an execution are what encoding/json produces with UseNumber:
// map[string]any, []any, string, json.Number, bool and nil. They are never mutated in place;
// ResultPath copies the objects along the path it writes.

// maxPayload is Step Functions' limit on state input/output, task results and execution
// input/output: 256 KiB of UTF-8 JSON.
const maxPayload = 262144

// decodeJSON parses one JSON value, keeping numbers as json.Number.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

// encodeJSON renders v as compact JSON without HTML escaping, as Step Functions does.
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// jsonText renders a value of the execution's value model. Such values always encode; the
// fallback only guards against a foreign type slipping in.
func jsonText(v any) string {
	b, err := encodeJSON(v)
	if err != nil {
		return fmt.Sprintf("%q", err.Error())
	}
	return string(b)
}

func num(n int64) json.Number { return json.Number(strconv.FormatInt(n, 10)) }

// awsTime formats a time the way Step Functions renders dates in the context object and
// ResultWriter records: 2019-03-26T20:14:13.192Z.
func awsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// typeName names a value's JSON type for messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

// parseTimestamp accepts what Step Functions accepts as a timestamp: RFC 3339 with an
// uppercase T and either an uppercase Z or a numeric offset.
func parseTimestamp(s string) (time.Time, bool) {
	if len(s) < 20 || s[10] != 'T' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	if last := s[len(s)-1]; last == 'z' {
		return time.Time{}, false
	}
	return t, true
}
