package localrun

import "testing"

func TestConnections(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		def  string
		want int
	}{
		{name: "defaults", env: map[string]string{}, want: 8*(32+8) + 8},
		{name: "tuned", env: map[string]string{"COPIER_CONCURRENCY": "4", "PART_CONCURRENCY": "2"}, want: 8*(4+2) + 8},
		// The execution reports the bad value as a ConfigError; the pool is sized for the default.
		{name: "invalid counts at its default", env: map[string]string{"COPIER_CONCURRENCY": "lots"}, want: 8*(32+8) + 8},
		{name: "edited definition", env: map[string]string{}, def: `{"States":{"Copy":{"Type":"Map","MaxConcurrency":2}}}`, want: 2*(32+8) + 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var def []byte
			if tt.def != "" {
				def = []byte(tt.def)
			}
			if got := Connections(tt.env, def); got != tt.want {
				t.Fatalf("Connections(%v) = %d, want %d", tt.env, got, tt.want)
			}
		})
	}
}

func TestMaxConcurrencyFindsNestedMaps(t *testing.T) {
	def := `{"States":{"A":{"Type":"Map","MaxConcurrency":3,"ItemProcessor":{"States":{"B":{"Type":"Map","MaxConcurrency":5,
	"ItemProcessor":{"States":{"X":{"Type":"Task","Parameters":{"FunctionName":"${CopierFunctionArn}"}}}}}}}},
	"C":{"Type":"Task","MaxConcurrency":99},
	"L":{"Type":"Map","MaxConcurrency":50,"ItemProcessor":{"States":{"Y":{"Type":"Task","Parameters":{"FunctionName":"${ListerFunctionArn}"}}}}}}}`
	if got := maxConcurrency([]byte(def)); got != 5 {
		t.Fatalf("maxConcurrency = %d, want 5 (a Task's field is not a Map's, nor a lister Map's)", got)
	}
	if got := maxConcurrency([]byte("{")); got != 0 {
		t.Fatalf("maxConcurrency of a broken definition = %d, want 0", got)
	}
}

// The functions get DESTINATIONS and exactly the credentials its env: destinations name.
func TestFunctionEnvDestinations(t *testing.T) {
	all := map[string]string{
		"SOURCE_BUCKET": "src", "DESTINATIONS": `[{"name":"far","bucket":"b","endpoint":"http://127.0.0.1:9","credentials":"env:FAR"}]`,
		"FAR_ACCESS_KEY_ID": "id", "FAR_SECRET_ACCESS_KEY": "secret", "OTHER_SECRET_ACCESS_KEY": "not named", "HOME": "/root",
	}
	got := FunctionEnv(func(k string) (string, bool) { v, ok := all[k]; return v, ok })
	want := map[string]string{"SOURCE_BUCKET": "src", "DESTINATIONS": all["DESTINATIONS"], "FAR_ACCESS_KEY_ID": "id", "FAR_SECRET_ACCESS_KEY": "secret"}
	if len(got) != len(want) {
		t.Fatalf("env %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
