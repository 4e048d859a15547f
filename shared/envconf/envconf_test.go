package envconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/fault"
)

func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		read    func(r *Reader) int64
		want    int64
		wantErr string
	}{
		{"default", nil, func(r *Reader) int64 { return r.Int("N", 7, 1, 10) }, 7, ""},
		{"set", map[string]string{"N": "9"}, func(r *Reader) int64 { return r.Int("N", 7, 1, 10) }, 9, ""},
		{"out of range", map[string]string{"N": "11"}, func(r *Reader) int64 { return r.Int("N", 7, 1, 10) }, 7, "N=\"11\""},
		{"not a number", map[string]string{"N": "x"}, func(r *Reader) int64 { return r.Int("N", 7, 1, 10) }, 7, "whole number"},
		{"bytes suffix", map[string]string{"B": "8MiB"}, func(r *Reader) int64 { return r.Bytes("B", 1, 1, 1<<40) }, 8 << 20, ""},
		{"bytes plain", map[string]string{"B": "5368709120"}, func(r *Reader) int64 { return r.Bytes("B", 1, 1, 1<<40) }, 5 << 30, ""},
		{"bytes bad suffix", map[string]string{"B": "8MB"}, func(r *Reader) int64 { return r.Bytes("B", 1, 1, 1<<40) }, 1, "suffixes"},
		{"word unset", nil, func(r *Reader) int64 { return r.IntOrWord("R", "auto", -1, -1, 0, 10) }, -1, ""},
		{"word", map[string]string{"R": " auto "}, func(r *Reader) int64 { return r.IntOrWord("R", "auto", -1, 5, 0, 10) }, -1, ""},
		{"word's number", map[string]string{"R": "0"}, func(r *Reader) int64 { return r.IntOrWord("R", "auto", -1, -1, 0, 10) }, 0, ""},
		{"word's number out of range", map[string]string{"R": "-1"}, func(r *Reader) int64 { return r.IntOrWord("R", "auto", -1, -1, 0, 10) }, -1, `R="-1" must be auto or a whole number from 0 to 10`},
		{"another word", map[string]string{"R": "Auto"}, func(r *Reader) int64 { return r.IntOrWord("R", "auto", -1, -1, 0, 10) }, -1, "must be auto"},
		{"required missing", nil, func(r *Reader) int64 { r.Required("SOURCE_BUCKET"); return 0 }, 0, "SOURCE_BUCKET is required"},
		{"required blank", map[string]string{"SOURCE_BUCKET": "  "}, func(r *Reader) int64 { r.Required("SOURCE_BUCKET"); return 0 }, 0, "SOURCE_BUCKET is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(Map(tt.env))
			got := tt.read(r)
			err := r.Err()
			if tt.wantErr != "" {
				var ce *fault.ConfigError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ConfigError mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestOneOf(t *testing.T) {
	tests := []struct {
		name, value, want, wantErr string
		set                        bool
	}{
		{name: "default", want: "skip"},
		{name: "blank", value: " ", set: true, want: "skip"},
		{name: "set", value: "fail", set: true, want: "fail"},
		{name: "trimmed", value: " fail ", set: true, want: "fail"},
		{name: "unknown", value: "thaw", set: true, want: "skip", wantErr: `MODE="thaw" must be one of skip, fail`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			if tt.set {
				env["MODE"] = tt.value
			}
			r := NewReader(Map(env))
			got := r.OneOf("MODE", "skip", "skip", "fail")
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			var ce *fault.ConfigError
			if tt.wantErr == "" && r.Err() != nil || tt.wantErr != "" && (!errors.As(r.Err(), &ce) || !strings.Contains(r.Err().Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", r.Err(), tt.wantErr)
			}
		})
	}
}
