// Package cli is the bucketvault command: backups and restores run locally (the state machine
// definitions through the local executor, against any S3 endpoint) or on AWS (the deployed state
// machines), and the read-only commands — runs, show, ls, versions, diff — go straight to S3 in
// both places. Commands print tables for people and, with --json, JSON for scripts.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bucketvault/bucketvault/shared/s3client"
)

// ExitError carries a command's exit status: a run that did not succeed exits 1 after printing
// its summary, without a second error line.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// app is what every command shares: the resolved configuration, the output and the clients.
type app struct {
	configPath string
	cfg        Config
	flags      Config
	jsonOut    bool
	logFormat  string
	verbose    bool
	out, errw  io.Writer
	getenv     func(string) string
	s3         *s3.Client
	logger     *slog.Logger
}

// New returns the bucketvault root command. getenv is the environment (os.Getenv in main).
func New(version string, getenv func(string) string) *cobra.Command {
	a := &app{getenv: getenv}
	root := &cobra.Command{
		Use:   "bucketvault",
		Short: "Scheduled, incremental, point-in-time-restorable backups of S3 buckets",
		Long: `bucketvault backs up an S3 bucket into a versioned backup bucket and restores any file, folder
or the whole bucket as it was at a moment.

Backups and restores run locally (the same state machine definitions through the local executor,
against the S3 endpoint of AWS_ENDPOINT_URL_S3 or --endpoint) or, with --stack, on AWS. The read-only
commands (runs, show, ls, versions, diff) read S3 directly in both places.

Configuration, the first that sets a value wins: flags; the environment (SOURCE_BUCKET,
BACKUP_BUCKET, RUN_BUCKET, RESTORE_TARGETS, AWS_ENDPOINT_URL_S3, BUCKETVAULT_STACK and the standard AWS
variables); a JSON file ($BUCKETVAULT_CONFIG or ~/.config/bucketvault/config.json):
  {"source": "my-data", "backup": "my-data-backup", "run": "my-data-runs", "stack": "BucketVault"}`,
		Example: `  bucketvault backup
  bucketvault runs
  bucketvault ls --at backup-20261204T020000Z-1a2b3c4d reports/
  bucketvault versions reports/q3.xlsx
  bucketvault restore --at 2026-11-17T09:00:00Z --key reports/q3.xlsx --to-prefix restored/`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.configPath, "config", ConfigPath(getenv), "config file (JSON)")
	pf.StringVar(&a.flags.Source, "source", "", "source bucket (SOURCE_BUCKET)")
	pf.StringVar(&a.flags.Backup, "backup", "", "versioned backup bucket (BACKUP_BUCKET)")
	pf.StringVar(&a.flags.Run, "run", "", "run bucket: batches, reports (RUN_BUCKET)")
	pf.StringVar(&a.flags.Endpoint, "endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:9000 (AWS_ENDPOINT_URL_S3)")
	pf.StringVar(&a.flags.Stack, "stack", "", "run backups and restores on this deployed CloudFormation stack (BUCKETVAULT_STACK)")
	pf.BoolVar(&a.jsonOut, "json", false, "print JSON instead of tables")
	pf.StringVar(&a.logFormat, "log-format", "auto", "logs on stderr: text, json, or auto (text on a terminal, json otherwise)")
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "log every function invocation")
	root.AddCommand(a.backupCmd(), a.restoreCmd(), a.runsCmd(), a.showCmd(), a.lsCmd(), a.versionsCmd(), a.diffCmd(), a.consoleCmd(), a.verifyCmd())
	return root
}

// setup resolves the configuration and the logger; the S3 client is made when first needed.
func (a *app) setup(cmd *cobra.Command) error {
	a.out, a.errw = cmd.OutOrStdout(), cmd.ErrOrStderr()
	cfg, err := resolve(a.configPath, a.getenv, a.flags)
	if err != nil {
		return err
	}
	a.cfg = cfg
	level := slog.LevelWarn
	if a.verbose {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	switch a.logFormat {
	case "json":
		a.logger = slog.New(slog.NewJSONHandler(a.errw, opts))
	case "text":
		a.logger = slog.New(slog.NewTextHandler(a.errw, opts))
	case "auto":
		if isTerminal(a.errw) {
			a.logger = slog.New(slog.NewTextHandler(a.errw, opts))
		} else {
			a.logger = slog.New(slog.NewJSONHandler(a.errw, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	default:
		return fmt.Errorf("--log-format %q: want text, json or auto", a.logFormat)
	}
	return nil
}

// client returns the S3 client of the read-only commands, made once.
func (a *app) client(ctx context.Context, maxConns int) (*s3.Client, error) {
	if a.s3 != nil {
		return a.s3, nil
	}
	c, err := s3client.New(ctx, s3client.Options{Endpoint: a.cfg.Endpoint, MaxConns: maxConns})
	if err != nil {
		return nil, err
	}
	a.s3 = c
	return c, nil
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Main runs the command with os.Args and returns the process's exit status, printing an error
// as one line on stderr.
func Main(version string) int {
	ctx, stop := signalContext()
	defer stop()
	root := New(version, os.Getenv)
	err := root.ExecuteContext(ctx)
	var exit *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	default:
		fmt.Fprintln(os.Stderr, "bucketvault:", err)
		return 1
	}
}
