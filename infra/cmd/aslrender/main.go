// Command aslrender writes statemachine/backup.asl.json with its ${Name} substitutions rendered
// as CloudFormation renders them, using the local runner's function ARNs and an example run
// bucket, so that asl-validator checks the definition Step Functions receives.
package main

import (
	"fmt"
	"os"

	"github.com/bucketvault/bucketvault/statemachine"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "aslrender:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: aslrender <output.json>")
	}
	def, err := statemachine.Render(statemachine.Backup, map[string]string{
		"ListerFunctionArn":   localrun.FunctionARN(localrun.ListerName),
		"CopierFunctionArn":   localrun.FunctionARN(localrun.CopierName),
		"ReporterFunctionArn": localrun.FunctionARN(localrun.ReporterName),
		"RunBucket":           "bucketvault-runs-example",
	})
	if err != nil {
		return err
	}
	return os.WriteFile(args[0], def, 0o644)
}
