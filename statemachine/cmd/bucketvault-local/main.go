// Command bucketvault-local runs one backup (or, with -restore, one restore) execution through the
// local executor against the S3 endpoint named by the standard AWS variables, prints the report
// JSON on stdout, logs JSON on stderr, and exits non-zero unless the execution succeeded.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bucketvault-local:", err)
		os.Exit(1)
	}
}

func run() error {
	restore := flag.Bool("restore", false, "run a restore: RESTORE_AT, RESTORE_PREFIX, TARGET_BUCKET, DRY_RUN (or -input)")
	input := flag.String("input", os.Getenv("EXECUTION_INPUT"), "execution input JSON (default {} for a backup; built from RESTORE_* for a restore)")
	name := flag.String("name", os.Getenv("EXECUTION_NAME"), "execution name (default: backup-<time>-<id> or restore-<time>-<id>)")
	definition := flag.String("definition", "", "run this state machine definition file instead of the embedded one (an edited copy of statemachine/backup.asl.json or restore.asl.json)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	env := localrun.FunctionEnv(os.LookupEnv)
	var def []byte
	if *definition != "" {
		var err error
		if def, err = os.ReadFile(*definition); err != nil {
			return err
		}
	}
	client, err := s3client.New(ctx, s3client.Options{MaxConns: localrun.Connections(env, def)})
	if err != nil {
		return err
	}
	runner := &localrun.Runner{S3: client, Env: env, Logger: logger, Definition: def}
	execute, newName := runner.Backup, localrun.NewExecutionName
	if *restore {
		execute, newName = runner.Restore, localrun.NewRestoreName
		if *input == "" {
			if *input, err = restoreInput(env); err != nil {
				return err
			}
		}
	}
	if *input == "" {
		*input = "{}"
	}
	if *name == "" {
		*name = newName(time.Now())
	}
	res, err := execute(ctx, *name, []byte(*input))
	if res == nil {
		return err // the execution did not start
	}
	out := res.ReportJSON
	if out == nil {
		// No report was written (the reporter itself failed): print what the execution says.
		out, _ = json.MarshalIndent(map[string]any{
			"status": res.Execution.Status, "execution": res.Execution.Name,
			"error": res.Execution.Error, "cause": res.Execution.Cause,
		}, "", "  ")
	}
	fmt.Println(string(out))
	if err != nil {
		return err
	}
	if !res.Succeeded() {
		return fmt.Errorf("execution %s %s: %s: %s", res.Execution.Name, res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	return nil
}

// restoreInput builds a restore's input from RESTORE_AT, RESTORE_PREFIX, TARGET_BUCKET and
// DRY_RUN, and lets the functions write to the target: locally, the user who names a target allows it.
func restoreInput(env map[string]string) (string, error) {
	at := os.Getenv("RESTORE_AT")
	if at == "" {
		return "", fmt.Errorf("RESTORE_AT is required: an RFC 3339 time (2026-11-20T10:00:00Z) or a backup execution name")
	}
	target := os.Getenv("TARGET_BUCKET")
	if target == "" {
		target = env["SOURCE_BUCKET"]
	}
	if target == "" {
		return "", fmt.Errorf("TARGET_BUCKET or SOURCE_BUCKET is required")
	}
	if env["SOURCE_BUCKET"] == "" {
		env["SOURCE_BUCKET"] = target
	}
	if env["RESTORE_TARGETS"] == "" {
		env["RESTORE_TARGETS"] = target
	}
	in := map[string]any{"at": at, "targetBucket": target}
	if p := os.Getenv("RESTORE_PREFIX"); p != "" {
		in["prefix"] = p
	}
	if v := os.Getenv("DRY_RUN"); v != "" {
		dry, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("DRY_RUN=%q: want true or false", v)
		}
		in["dryRun"] = dry
	}
	b, err := json.Marshal(in)
	return string(b), err
}
