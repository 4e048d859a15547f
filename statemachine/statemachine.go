// Package statemachine holds the state machine definitions that AWS Step Functions runs (and the
// local executor runs unchanged), and renders their ${Name} substitutions.
package statemachine

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Backup is backup.asl.json as written, with its substitutions unrendered.
//
//go:embed backup.asl.json
var Backup []byte

// BackupSubstitutions are the names backup.asl.json expects.
var BackupSubstitutions = []string{"ListerFunctionArn", "CopierFunctionArn", "ReporterFunctionArn", "RunBucket"}

// Restore is restore.asl.json as written, with its substitutions unrendered.
//
//go:embed restore.asl.json
var Restore []byte

// RestoreSubstitutions are the names restore.asl.json expects.
var RestoreSubstitutions = []string{"PlannerFunctionArn", "CopierFunctionArn", "ReporterFunctionArn", "RunBucket"}

// Verify is verify.asl.json (the restore drill's verify run) as written, with its substitutions
// unrendered.
//
//go:embed verify.asl.json
var Verify []byte

// VerifySubstitutions are the names verify.asl.json expects.
var VerifySubstitutions = []string{"VerifierFunctionArn", "RestoreStateMachineArn"}

var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Render replaces every ${Name} with subs[Name], JSON-escaped, as CloudFormation's
// DefinitionSubstitutions does. A placeholder without a value is an error naming it.
func Render(definition []byte, subs map[string]string) ([]byte, error) {
	missing := map[string]bool{}
	out := placeholder.ReplaceAllFunc(definition, func(m []byte) []byte {
		name := string(placeholder.FindSubmatch(m)[1])
		v, ok := subs[name]
		if !ok {
			missing[name] = true
			return m
		}
		quoted, _ := json.Marshal(v)
		return quoted[1 : len(quoted)-1]
	})
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("definition substitutions without a value: %s", strings.Join(names, ", "))
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("rendered definition is not valid JSON")
	}
	return out, nil
}
