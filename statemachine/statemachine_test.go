package statemachine

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestRenderDefinitions(t *testing.T) {
	for name, tc := range map[string]struct {
		def  []byte
		subs []string
	}{"backup": {Backup, BackupSubstitutions}, "restore": {Restore, RestoreSubstitutions}, "verify": {Verify, VerifySubstitutions}} {
		t.Run(name, func(t *testing.T) { testRender(t, tc.def, tc.subs) })
	}
}

func testRender(t *testing.T, def []byte, names []string) {
	t.Helper()
	subs := map[string]string{}
	for _, name := range names {
		subs[name] = "value-of-" + name
	}
	out, err := Render(def, subs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "${") {
		t.Fatal("placeholders left after rendering")
	}
	var parsed map[string]any
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, "RunBucket") && !strings.Contains(string(out), `"value-of-RunBucket"`) {
		t.Error("RunBucket not substituted")
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := Render(Backup, map[string]string{"RunBucket": "b"}); err == nil || !strings.Contains(err.Error(), "ListerFunctionArn") {
		t.Fatalf("missing substitutions: err = %v", err)
	}
	out, err := Render([]byte(`{"a":"${X}"}`), map[string]string{"X": `quote " and \ backslash`})
	if err != nil || string(out) != `{"a":"quote \" and \\ backslash"}` {
		t.Fatalf("escaping: %s, %v", out, err)
	}
}
