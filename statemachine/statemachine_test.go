package statemachine

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRenderBackup(t *testing.T) {
	subs := map[string]string{}
	for _, name := range BackupSubstitutions {
		subs[name] = "value-of-" + name
	}
	out, err := Render(Backup, subs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "${") {
		t.Fatal("placeholders left after rendering")
	}
	var def map[string]any
	if err := json.Unmarshal(out, &def); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"value-of-RunBucket"`) {
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
