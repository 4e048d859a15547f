// Package strictjson decodes JSON that crosses a boundary between bucketvault's own parts (a
// cursor, a state, a manifest): an unknown field or trailing data is an error, so that a renamed
// field fails loudly instead of silently reading as zero.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// Unmarshal decodes data into v, refusing unknown fields and anything after the first value.
func Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
