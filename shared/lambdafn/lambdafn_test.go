package lambdafn

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/fault"
)

type req struct {
	Name string `json:"name"`
}

func TestHandler(t *testing.T) {
	echo := func(_ context.Context, r req) (string, error) { return "hello " + r.Name, nil }
	tests := []struct {
		name      string
		configErr error
		payload   string
		want      string
		wantType  string
		wantMsg   string
	}{
		{name: "ok", payload: `{"name":"vault"}`, want: `"hello vault"`},
		{name: "unknown field refused", payload: `{"name":"x","nmae":"y"}`, wantMsg: `unknown field "nmae"`},
		{name: "config error on every invocation", configErr: &fault.ConfigError{Msg: "environment variable RUN_BUCKET is required and not set"},
			payload: `{"name":"x"}`, wantType: "ConfigError", wantMsg: "RUN_BUCKET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Handler(echo, tt.configErr).Invoke(context.Background(), []byte(tt.payload))
			if tt.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantMsg)
				}
				if tt.wantType != "" && reflect.TypeOf(err).Elem().Name() != tt.wantType {
					t.Fatalf("error type %T, want %s", err, tt.wantType)
				}
				return
			}
			if err != nil || strings.TrimSpace(string(out)) != tt.want {
				t.Fatalf("got %s, %v; want %s", out, err, tt.want)
			}
		})
	}
}
