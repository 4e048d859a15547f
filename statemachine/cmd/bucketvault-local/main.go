// Command bucketvault-local runs one backup execution through the local executor against the S3
// endpoint named by the standard AWS variables, prints the report JSON on stdout, logs JSON on
// stderr, and exits non-zero unless the execution succeeded.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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
	input := flag.String("input", envOr("EXECUTION_INPUT", "{}"), "execution input JSON (overrides: prefix, dryRun, maxDeletePercent)")
	name := flag.String("name", os.Getenv("EXECUTION_NAME"), "execution name (default: backup-<time>-<id>)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	client, err := s3client.New(ctx, s3client.Options{})
	if err != nil {
		return err
	}
	if *name == "" {
		*name = localrun.NewExecutionName(time.Now())
	}
	runner := &localrun.Runner{S3: client, Env: localrun.FunctionEnv(os.LookupEnv), Logger: logger}
	res, err := runner.Backup(ctx, *name, []byte(*input))
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

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
