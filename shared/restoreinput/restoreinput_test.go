package restoreinput

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/fault"
)

func TestParse(t *testing.T) {
	yes, no, hour := true, false, 3600
	long := strings.Repeat("k", MaxKeyBytes+1)
	tests := []struct {
		name, in string
		want     Options // when wantErr is empty
		wantErr  string  // a part of the InvalidInput message
	}{
		// Defaults.
		{name: "moment only: the defaults", in: `{"at": "2026-11-20T10:00:00Z"}`,
			want: Options{At: "2026-11-20T10:00:00Z", ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		{name: "execution name as the moment", in: ` {"at": "backup-20261120T100000Z-1a2b3c4d"} `,
			want: Options{At: "backup-20261120T100000Z-1a2b3c4d", ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		{name: "thawDays 0 means the default", in: `{"at": "x", "thawDays": 0}`,
			want: Options{At: "x", ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		// Every field.
		{name: "every field with prefixes", in: `{"at": "2026-11-20T10:00:00Z", "prefix": "a/", "prefixes": ["b/", "c/"],
			"targetBucket": "t", "targetPrefix": "restored/", "overwrite": false, "dryRun": true,
			"thawTier": "Bulk", "thawDays": 30, "thawCheckSeconds": 3600}`,
			want: Options{At: "2026-11-20T10:00:00Z", Prefix: "a/", Prefixes: []string{"b/", "c/"}, TargetBucket: "t", TargetPrefix: "restored/",
				Overwrite: &no, DryRun: true, ThawTier: "Bulk", ThawDays: 30, ThawCheckSeconds: &hour}},
		{name: "keys and overwrite true", in: `{"at": "x", "keys": ["b", "a"], "overwrite": true, "thawTier": "Expedited", "thawCheckSeconds": 60}`,
			want: Options{At: "x", Keys: []string{"b", "a"}, Overwrite: &yes, ThawTier: "Expedited", ThawDays: DefaultThawDays, ThawCheckSeconds: ptr(MinThawCheckSeconds)}},
		{name: "a version without a moment", in: `{"keys": ["doc.txt"], "versionId": "v1"}`,
			want: Options{Keys: []string{"doc.txt"}, VersionID: "v1", ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		{name: "bounds accepted", in: `{"at": "x", "thawDays": 365, "thawCheckSeconds": 86400, "keys": ["` + long[1:] + `"]}`,
			want: Options{At: "x", Keys: []string{long[1:]}, ThawTier: DefaultThawTier, ThawDays: MaxThawDays, ThawCheckSeconds: ptr(MaxThawCheckSeconds)}},
		{name: "requestedBy", in: `{"at": "x", "requestedBy": "Ana <ana@example.com>"}`,
			want: Options{At: "x", RequestedBy: "Ana <ana@example.com>", ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		{name: "requestedBy at its bound", in: `{"at": "x", "requestedBy": "` + strings.Repeat("é", MaxRequestedByBytes/2) + `"}`,
			want: Options{At: "x", RequestedBy: strings.Repeat("é", MaxRequestedByBytes/2), ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		{name: "exact dry run needs no confirmation", in: `{"at": "x", "prefix": "docs/", "exact": true, "dryRun": true}`,
			want: Options{At: "x", Prefix: "docs/", Exact: true, DryRun: true, ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		{name: "exact with its confirmation, overwrite true and a target prefix", in: `{"at": "x", "prefix": "docs/", "exact": true, "confirmRemovals": 2, "overwrite": true, "targetPrefix": "r/"}`,
			want: Options{At: "x", Prefix: "docs/", Exact: true, ConfirmRemovals: ptr64(2), Overwrite: &yes, TargetPrefix: "r/", ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		{name: "exact confirming no removals", in: `{"at": "x", "keys": ["a"], "exact": true, "confirmRemovals": 0}`,
			want: Options{At: "x", Keys: []string{"a"}, Exact: true, ConfirmRemovals: ptr64(0), ThawTier: DefaultThawTier, ThawDays: DefaultThawDays}},
		// Every error.
		{name: "exact without confirmRemovals", in: `{"at": "x", "exact": true}`, wantErr: "exact needs confirmRemovals"},
		{name: "exact with versionId", in: `{"keys": ["a"], "versionId": "v1", "exact": true, "dryRun": true}`, wantErr: "exact cannot be combined with versionId"},
		{name: "exact with overwrite false", in: `{"at": "x", "exact": true, "overwrite": false, "confirmRemovals": 1}`, wantErr: "exact cannot be combined with overwrite false"},
		{name: "confirmRemovals without exact", in: `{"at": "x", "confirmRemovals": 1}`, wantErr: "confirmRemovals is only for an exact restore"},
		{name: "negative confirmRemovals", in: `{"at": "x", "exact": true, "confirmRemovals": -1}`, wantErr: "confirmRemovals -1 must be 0 or more"},
		{name: "confirmRemovals not a number", in: `{"at": "x", "exact": true, "confirmRemovals": "2"}`, wantErr: "confirmRemovals"},
		{name: "exact not a boolean", in: `{"at": "x", "exact": "yes"}`, wantErr: "exact"},
		{name: "requestedBy too long", in: `{"at": "x", "requestedBy": "` + strings.Repeat("u", MaxRequestedByBytes+1) + `"}`, wantErr: "requestedBy must be"},
		{name: "requestedBy with a newline", in: `{"at": "x", "requestedBy": "ana\nFAKE LOG LINE"}`, wantErr: "requestedBy must be"},
		{name: "requestedBy not a string", in: `{"at": "x", "requestedBy": 7}`, wantErr: "requestedBy"},
		{name: "empty", in: ``, wantErr: "must be a JSON object"},
		{name: "blank", in: "  \n", wantErr: "must be a JSON object"},
		{name: "an array", in: `[{"at": "x"}]`, wantErr: "must be a JSON object"},
		{name: "a string", in: `"2026-11-20T10:00:00Z"`, wantErr: "must be a JSON object"},
		{name: "null", in: `null`, wantErr: "must be a JSON object"},
		{name: "unknown field", in: `{"at": "x", "target": "t"}`, wantErr: `unknown field "target"`},
		{name: "wrong type", in: `{"at": "x", "keys": "k"}`, wantErr: "keys"},
		{name: "wrong type of overwrite", in: `{"at": "x", "overwrite": "no"}`, wantErr: "overwrite"},
		{name: "broken JSON", in: `{"at": "x"`, wantErr: "restore input"},
		{name: "trailing data", in: `{"at": "x"} {"at": "y"}`, wantErr: "trailing data"},
		{name: "no moment", in: `{"targetBucket": "t"}`, wantErr: `needs "at"`},
		{name: "keys and prefix", in: `{"at": "x", "keys": ["a"], "prefix": "p/"}`, wantErr: "keys or prefixes, not both"},
		{name: "keys and prefixes", in: `{"at": "x", "keys": ["a"], "prefixes": ["p/"]}`, wantErr: "keys or prefixes, not both"},
		{name: "empty key", in: `{"at": "x", "keys": ["a", ""]}`, wantErr: "keys[1] is empty"},
		{name: "key too long", in: `{"at": "x", "keys": ["` + long + `"]}`, wantErr: "keys[0] is not a valid S3 key"},
		{name: "key twice", in: `{"at": "x", "keys": ["a", "a"]}`, wantErr: `key "a" is listed twice`},
		{name: "versionId without a key", in: `{"versionId": "v1"}`, wantErr: "exactly one key"},
		{name: "versionId with two keys", in: `{"versionId": "v1", "keys": ["a", "b"]}`, wantErr: "exactly one key"},
		{name: "prefix too long", in: `{"at": "x", "prefix": "` + long + `"}`, wantErr: "prefix is not a valid key prefix"},
		{name: "prefixes too long", in: `{"at": "x", "prefixes": ["` + long + `"]}`, wantErr: "prefixes[0] is not a valid key prefix"},
		{name: "targetPrefix too long", in: `{"at": "x", "targetPrefix": "` + long + `"}`, wantErr: "targetPrefix is not a valid key prefix"},
		{name: "unknown thaw tier", in: `{"at": "x", "thawTier": "Fast"}`, wantErr: `thawTier "Fast"`},
		{name: "thaw tier in the wrong case", in: `{"at": "x", "thawTier": "bulk"}`, wantErr: `thawTier "bulk"`},
		{name: "negative thawDays", in: `{"at": "x", "thawDays": -1}`, wantErr: "thawDays -1"},
		{name: "thawDays too many", in: `{"at": "x", "thawDays": 366}`, wantErr: "thawDays 366"},
		{name: "negative thawCheckSeconds", in: `{"at": "x", "thawCheckSeconds": -1}`, wantErr: "thawCheckSeconds -1"},
		{name: "thawCheckSeconds 0", in: `{"at": "x", "thawCheckSeconds": 0}`, wantErr: "thawCheckSeconds 0 must be from 60"},
		{name: "thawCheckSeconds below the floor", in: `{"at": "x", "thawCheckSeconds": 59}`, wantErr: "thawCheckSeconds 59 must be from 60"},
		{name: "thawCheckSeconds too long", in: `{"at": "x", "thawCheckSeconds": 86401}`, wantErr: "thawCheckSeconds 86401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				var invalid *fault.InvalidInput
				if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want InvalidInput containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func ptr(n int) *int { return &n }

func ptr64(n int64) *int64 { return &n }

func TestOverwriteAllowed(t *testing.T) {
	yes, no := true, false
	for _, tt := range []struct {
		overwrite *bool
		want      bool
	}{{nil, true}, {&yes, true}, {&no, false}} {
		if got := (Options{Overwrite: tt.overwrite}).OverwriteAllowed(); got != tt.want {
			t.Errorf("OverwriteAllowed(%v) = %v", tt.overwrite, got)
		}
	}
}

func TestScopes(t *testing.T) {
	tests := []struct {
		name      string
		o         Options
		want      []string
		wantExact bool
	}{
		{"whole bucket", Options{}, []string{""}, false},
		{"one prefix", Options{Prefix: "a/"}, []string{"a/"}, false},
		{"prefixes sorted, nested ones dropped", Options{Prefixes: []string{"b/", "a/x/", "a/"}, Prefix: "c"}, []string{"a/", "b/", "c"}, false},
		{"keys sorted", Options{Keys: []string{"z", "a/b", "a"}}, []string{"a", "a/b", "z"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, exact := tt.o.Scopes()
			if !reflect.DeepEqual(got, tt.want) || exact != tt.wantExact {
				t.Fatalf("Scopes = %q, %v; want %q, %v", got, exact, tt.want, tt.wantExact)
			}
		})
	}
}

func TestParseMoment(t *testing.T) {
	tests := []struct {
		at      string
		want    time.Time
		isTime  bool
		wantErr bool
	}{
		{"2026-11-20T10:00:00Z", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), true, false},
		{"2026-11-20T11:00:00.5+01:00", time.Date(2026, 11, 20, 10, 0, 0, 5e8, time.UTC), true, false},
		{"backup-20261120T100000Z-1a2b3c4d", time.Time{}, false, false},
		{"2026-11-20", time.Time{}, false, true},
		{"2026-13-45T99:00:00Z", time.Time{}, false, true},
		{"10:00", time.Time{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.at, func(t *testing.T) {
			got, isTime, err := ParseMoment(tt.at)
			if (err != nil) != tt.wantErr || isTime != tt.isTime || !got.Equal(tt.want) {
				t.Fatalf("ParseMoment = %v, %v, %v; want %v, %v, error %v", got, isTime, err, tt.want, tt.isTime, tt.wantErr)
			}
		})
	}
}
