package execinput

import (
	"errors"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/fault"
)

func TestParse(t *testing.T) {
	hundred, twelve := 100.0, 12.5
	tests := []struct {
		name, in string
		want     Options
		wantErr  string
	}{
		{name: "empty", in: ``},
		{name: "console default", in: `{}`},
		{name: "null", in: `null`},
		{name: "overrides", in: `{"prefix":"data/","dryRun":true,"maxDeletePercent":100,"maxChangePercent":12.5}`, want: Options{Prefix: "data/", DryRun: true, MaxDeletePercent: &hundred, MaxChangePercent: &twelve}},
		{name: "change guard alone", in: `{"maxChangePercent":100}`, want: Options{MaxChangePercent: &hundred}},
		{name: "eventbridge rule event", in: `{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"2026-01-01T02:00:00Z","region":"us-east-1","resources":[],"detail":{}}`},
		{name: "event detail overrides", in: `{"detail-type":"Scheduled Event","source":"aws.events","detail":{"prefix":"logs/"}}`, want: Options{Prefix: "logs/"}},
		{name: "unknown field", in: `{"prefx":"a"}`, wantErr: `unknown field "prefx"`},
		{name: "unknown field in event detail", in: `{"detail-type":"Scheduled Event","source":"aws.events","detail":{"dry":true}}`, wantErr: "event detail"},
		{name: "wrong type", in: `{"dryRun":"yes"}`, wantErr: "dryRun"},
		{name: "array", in: `[1]`, wantErr: "must be a JSON object"},
		{name: "string", in: `"x"`, wantErr: "must be a JSON object"},
		{name: "broken json", in: `{"prefix":`, wantErr: "not valid JSON"},
		{name: "guard above 100", in: `{"maxDeletePercent":101}`, wantErr: "from 0 to 100"},
		{name: "negative guard", in: `{"maxDeletePercent":-1}`, wantErr: "from 0 to 100"},
		{name: "change guard above 100", in: `{"maxChangePercent":150}`, wantErr: "maxChangePercent 150 must be from 0 to 100"},
		{name: "change guard not a number", in: `{"maxChangePercent":"all"}`, wantErr: "maxChangePercent"},
		{name: "filters", in: `{"filters":{"exclude":["glob:**/*.tmp"]}}`},
		{name: "malformed filter rule", in: `{"filters":{"exclude":["size>10MB"]}}`, wantErr: `execution input: filters: exclude[0] "size>10MB": size "10MB" is not a byte count`},
		{name: "unknown filter field", in: `{"filters":{"excludes":[]}}`, wantErr: `unknown field "excludes"`},
		{name: "prefix longer than a key", in: `{"prefix":"` + strings.Repeat("p", 1025) + `"}`, wantErr: "longer than an S3 key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				var invalid *fault.InvalidInput
				if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v (%T), want InvalidInput mentioning %q", err, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Prefix != tt.want.Prefix || got.DryRun != tt.want.DryRun || !samePercent(got.MaxDeletePercent, tt.want.MaxDeletePercent) ||
				!samePercent(got.MaxChangePercent, tt.want.MaxChangePercent) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func samePercent(a, b *float64) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}
