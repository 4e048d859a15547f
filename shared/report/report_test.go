package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Encode with streamed lists decodes into the same Report as json.Marshal of the whole report.
func TestEncodeStreamsLists(t *testing.T) {
	r := Report{Status: Failed, Error: "BackupIncomplete", Failed: 2, Guards: []Guard{{Name: "deletion"}},
		Failures: []Failure{{Key: "a\"<b>", Op: "copy", Error: "AccessDenied", Batch: "b0"}, {Key: "ü", Op: "delete", Error: "x"}},
		Skips:    []Skip{{Key: "c", Reason: "archived (GLACIER)"}}, Notes: []Note{}}
	stream := func(v any) func(io.Writer) error {
		return func(w io.Writer) error {
			rv := reflect.ValueOf(v)
			for i := range rv.Len() {
				b, _ := json.Marshal(rv.Index(i).Interface())
				if i > 0 {
					io.WriteString(w, ",")
				}
				w.Write(b)
			}
			return nil
		}
	}
	var buf bytes.Buffer
	empty := r
	empty.Failures, empty.Skips, empty.Notes = []Failure{}, []Skip{}, []Note{}
	if err := empty.Encode(&buf, map[string]func(io.Writer) error{"failures": stream(r.Failures), "skips": stream(r.Skips), "notes": stream(r.Notes)}); err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.Bytes())
	}
	b, _ := json.Marshal(r)
	json.Unmarshal(b, &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Encode:\n%s\njson.Marshal:\n%s", buf.Bytes(), b)
	}
}

func TestShorten(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…"},
		{"aüb", 2, "a…"}, // never cuts a character in two
	} {
		if got := Shorten(tt.in, tt.max); got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Shorten(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// Summary keeps the output's lists within DefaultOutputListBytes, failures first, and counts
// what it cuts.
func TestSummaryBoundedByBytes(t *testing.T) {
	var r Report
	for i := range 300 {
		k := fmt.Sprintf("%04d", i) + strings.Repeat("k", 1000)
		r.Failures = append(r.Failures, Failure{Key: k, Error: strings.Repeat("e", 2000)})
		r.Skips = append(r.Skips, Skip{Key: k})
	}
	s := r.Summary()
	b, _ := json.Marshal([]any{s.Failures, s.Skips, s.Notes})
	if len(b) > DefaultOutputListBytes+8 || len(s.Failures) == 0 || int64(len(s.Failures))+s.FailuresOmitted != 300 ||
		int64(len(s.Skips))+s.SkipsOmitted != 300 || len(s.Failures[0].Error) > MaxTextInOutput+len("…") {
		t.Fatalf("summary lists %d bytes: %d failures + %d omitted, %d skips + %d omitted", len(b), len(s.Failures), s.FailuresOmitted, len(s.Skips), s.SkipsOmitted)
	}
}
