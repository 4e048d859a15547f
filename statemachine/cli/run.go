package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/shared/units"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// runOptions are the flags backup and restore share.
type runOptions struct {
	input      string // raw execution input, overriding the other flags
	name       string
	definition string
}

func (o *runOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.input, "input", "", "the execution input as JSON, instead of the flags (the state machine's own input format)")
	f.StringVar(&o.name, "name", "", "execution name (default: <kind>-<time>-<random>)")
	f.StringVar(&o.definition, "definition", "", "locally: run this edited copy of the state machine definition instead of the built-in one")
}

func (a *app) backupCmd() *cobra.Command {
	var o runOptions
	var prefix string
	var dryRun bool
	var maxDelete, maxChange float64
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Run one backup: copy what is new or changed, mark what was deleted",
		Long: `Run one backup execution and print its summary (the whole report with --json). The exit status
is 0 only when the execution SUCCEEDED. Locally it runs the backup state machine in-process; with
--stack, it starts the deployed state machine and follows it.`,
		Example: `  bucketvault backup
  bucketvault backup --prefix invoices/ --dry-run
  bucketvault backup --max-delete-percent 100   # the deletions are intended`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			input := o.input
			if input == "" {
				in := map[string]any{}
				if prefix != "" {
					in["prefix"] = prefix
				}
				if dryRun {
					in["dryRun"] = true
				}
				if cmd.Flags().Changed("max-delete-percent") {
					in["maxDeletePercent"] = maxDelete
				}
				if cmd.Flags().Changed("max-change-percent") {
					in["maxChangePercent"] = maxChange
				}
				b, _ := json.Marshal(in)
				input = string(b)
			}
			return a.execute(cmd.Context(), "backup", o, input, "")
		},
	}
	o.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&prefix, "prefix", "", "back up only keys starting with it")
	f.BoolVar(&dryRun, "dry-run", false, "list and count; copy and mark nothing")
	f.Float64Var(&maxDelete, "max-delete-percent", 0, "this run's deletion guard (0-100; 100 accepts any deletion)")
	f.Float64Var(&maxChange, "max-change-percent", 0, "this run's change guard (0-100)")
	return cmd
}

func (a *app) restoreCmd() *cobra.Command {
	var o runOptions
	var in restoreinput.Options
	var noOverwrite bool
	var thawSeconds int
	var confirmRemovals int64
	cmd := &cobra.Command{
		Use:   "restore --at TIME|RUN [--prefix P]... [--key K]... [--to BUCKET] [--to-prefix P] [--exact --confirm-removals N]",
		Short: "Restore files, folders or the whole bucket as they were at a moment",
		Long: `Restore as of --at (an RFC 3339 time, or a backup run's name: the moment it finished) the keys under
each --prefix, each --key, or the whole bucket, into --to (default: the source bucket) under
--to-prefix. By default an object that differs is replaced; --no-overwrite leaves existing objects
alone. Archived versions are thawed first. A restore never deletes, except an exact one.

--exact (where the deployment allows it: ALLOW_EXACT_ROLLBACK=true) makes the selection exactly
what it was: it also removes every object in it that the backup did not hold at the moment (created
since, or deleted by then), with a delete marker, so the target must have versioning enabled. Run
it with --dry-run first: the preview counts and names the objects it would remove; then run it
with --confirm-removals set to that count. A different count refuses the restore, and nothing is
copied or removed.`,
		Example: `  bucketvault restore --at 2026-11-17T09:00:00Z --key reports/q3.xlsx --to-prefix restored/
  bucketvault restore --at backup-20261117T020000Z-1a2b3c4d --prefix invoices/ --to scratch --no-overwrite
  bucketvault restore --key reports/q3.xlsx --version-id 3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY
  bucketvault restore --at 2026-11-20T10:00:00Z --to primary-restored --dry-run
  bucketvault restore --at backup-20261117T020000Z-1a2b3c4d --prefix invoices/ --exact --dry-run
  bucketvault restore --at backup-20261117T020000Z-1a2b3c4d --prefix invoices/ --exact --confirm-removals 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			input := o.input
			if input == "" {
				if noOverwrite {
					in.Overwrite = new(bool)
				}
				if cmd.Flags().Changed("thaw-check-seconds") {
					in.ThawCheckSeconds = &thawSeconds
				}
				if cmd.Flags().Changed("confirm-removals") {
					in.ConfirmRemovals = &confirmRemovals
				}
				b, err := json.Marshal(in)
				if err != nil {
					return err
				}
				input = string(b)
			}
			// Bad input is refused here, before anything runs or is written.
			parsed, err := restoreinput.Parse([]byte(input))
			if err != nil {
				return err
			}
			if parsed.At != "" {
				if err := a.cfg.need(a.configPath, "run"); err != nil {
					return err
				}
				if _, err := a.moment(cmd.Context(), parsed.At); err != nil {
					return err
				}
			}
			target := parsed.TargetBucket
			if target == "" {
				target = a.cfg.Source
			}
			return a.execute(cmd.Context(), "restore", o, input, target)
		},
	}
	o.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&in.At, "at", "", "the moment: an RFC 3339 time or a backup run's name")
	f.StringArrayVar(&in.Prefixes, "prefix", nil, "restore keys starting with it (repeatable)")
	f.StringArrayVar(&in.Keys, "key", nil, "restore this key (repeatable)")
	f.StringVar(&in.VersionID, "version-id", "", "restore this version of the single --key")
	f.StringVar(&in.TargetBucket, "to", "", "target bucket (default: the source bucket)")
	f.StringVar(&in.TargetPrefix, "to-prefix", "", "put this in front of every restored key")
	f.BoolVar(&noOverwrite, "no-overwrite", false, "never replace an object that exists in the target")
	f.BoolVar(&in.DryRun, "dry-run", false, "plan and count; copy and thaw nothing")
	f.StringVar(&in.ThawTier, "thaw-tier", "", "archived versions: Standard (default), Bulk or Expedited")
	f.IntVar(&in.ThawDays, "thaw-days", 0, "archived versions: days a thawed copy stays readable")
	f.IntVar(&thawSeconds, "thaw-check-seconds", 0, "archived versions: seconds between thaw checks (60-86400)")
	f.BoolVar(&in.Exact, "exact", false, "also remove what the selection did not hold at the moment (versioned target; see above)")
	f.Int64Var(&confirmRemovals, "confirm-removals", 0, "with --exact: the number of removals the --dry-run preview reported")
	return cmd
}

// execute runs one execution of kind (backup or restore), locally or on the configured stack,
// shows its progress on a terminal, prints its summary or report, and returns an ExitError unless
// it succeeded.
func (a *app) execute(ctx context.Context, kind string, o runOptions, input, target string) error {
	if a.cfg.Stack != "" {
		return a.executeOnAWS(ctx, kind, o, input)
	}
	if err := a.cfg.need(a.configPath, "source", "backup", "run"); err != nil {
		return err
	}
	env := a.functionEnv()
	if kind == "restore" && target != "" && !slices.Contains(strings.Split(env["RESTORE_TARGETS"], ","), target) {
		// Locally, the person who names a target allows it (on AWS the stack's restoreTargets do).
		if env["RESTORE_TARGETS"] != "" {
			env["RESTORE_TARGETS"] += ","
		}
		env["RESTORE_TARGETS"] += target
	}
	var def []byte
	if o.definition != "" {
		var err error
		if def, err = os.ReadFile(o.definition); err != nil {
			return err
		}
	}
	// The local executor shares one client among every function: size its pool for them all.
	client, err := s3client.New(ctx, s3client.Options{Endpoint: a.cfg.Endpoint, MaxConns: localrun.Connections(env, def)})
	if err != nil {
		return err
	}
	// A missing bucket is one line and nothing written (not a failed run with a report).
	buckets := []listing.Bucket{{Role: "source", Name: a.cfg.Source}, {Role: "backup", Name: a.cfg.Backup}, {Role: "run", Name: a.cfg.Run}}
	if kind == "restore" && target != "" {
		buckets = append(buckets, listing.Bucket{Role: "restore target", Name: target})
	}
	if err := listing.RequireBuckets(ctx, client, buckets...); err != nil {
		return err
	}
	runner := &localrun.Runner{S3: client, Env: env, Logger: a.logger, Definition: def}
	run, name := runner.Backup, o.name
	if kind == "restore" {
		run = runner.Restore
		if name == "" {
			name = localrun.NewRestoreName(time.Now())
		}
	} else if name == "" {
		name = localrun.NewExecutionName(time.Now())
	}
	stopProgress := a.showProgress(ctx, client, name)
	res, err := run(ctx, name, []byte(input))
	stopProgress()
	if res == nil {
		return err // the execution did not start: bad configuration or input
	}
	exec := res.Execution
	return a.finish(kind, name, exec.Status, exec.Error, exec.Cause, res.Report, res.ReportJSON, exec.StopDate.Sub(exec.StartDate))
}

// functionEnv is the functions' environment: the process's tuning variables and the configured
// buckets.
func (a *app) functionEnv() map[string]string {
	env := localrun.FunctionEnv(func(name string) (string, bool) {
		v := a.getenv(name)
		return v, v != ""
	})
	env["SOURCE_BUCKET"], env["BACKUP_BUCKET"], env["RUN_BUCKET"] = a.cfg.Source, a.cfg.Backup, a.cfg.Run
	if len(a.cfg.RestoreTargets) > 0 {
		env["RESTORE_TARGETS"] = strings.Join(a.cfg.RestoreTargets, ",")
	}
	return env
}

// finish prints a finished run: its report (JSON) or its summary, and its status.
func (a *app) finish(kind, name, status, errName, cause string, rep *report.Report, reportJSON []byte, took time.Duration) error {
	if a.jsonOut {
		if reportJSON != nil {
			fmt.Fprintln(a.out, strings.TrimSpace(string(reportJSON)))
		} else {
			_ = a.printJSON(map[string]any{"execution": name, "status": status, "error": errName, "cause": cause})
		}
	} else {
		a.printSummary(kind, name, status, errName, cause, rep, took)
	}
	if status != "SUCCEEDED" {
		return &ExitError{Code: 1}
	}
	return nil
}

func (a *app) printSummary(kind, name, status, errName, cause string, r *report.Report, took time.Duration) {
	fmt.Fprintf(a.out, "%s %s: %s", kind, name, status)
	if errName != "" {
		fmt.Fprintf(a.out, " (%s)", errName)
	}
	fmt.Fprintf(a.out, " in %s\n", took.Round(time.Millisecond))
	if r == nil {
		if cause != "" {
			fmt.Fprintln(a.out, "  ", cause)
		}
		return
	}
	tw := newTable(a.out)
	tw.row("  listed", r.Listed, "new", r.New, "changed", r.Changed, "unchanged", r.Unchanged)
	tw.row("  copied", r.Copied, "deleted", r.Deleted, "failed", r.Failed, "skipped", r.Skipped)
	if r.RestoredAt != "" && r.ToDelete > 0 {
		tw.row("  to remove (exact)", r.ToDelete, "", "", "", "", "", "")
	}
	if r.Withheld > 0 || r.Kept > 0 || r.Archived > 0 {
		tw.row("  deletions withheld", r.Withheld, "kept", r.Kept, "archived", r.Archived, "", "")
	}
	tw.row("  bytes copied", units.Bytes(r.BytesCopied), "retries", r.Retries, "batches", r.Batches, "", "")
	tw.flush()
	if r.Cause != "" {
		fmt.Fprintln(a.out, "  "+r.Cause)
	}
	for i, f := range r.Failures {
		if i == 10 {
			fmt.Fprintf(a.out, "  … and %d more failures\n", int64(len(r.Failures)-10)+r.FailuresOmitted)
			break
		}
		fmt.Fprintf(a.out, "  FAILED %s: %s\n", f.Key, f.Error)
	}
	if r.DryRun && r.ToDelete > 0 {
		for i, n := range r.Notes {
			if i == 10 {
				fmt.Fprintf(a.out, "  … and %d more\n", int64(len(r.Notes)-10)+r.NotesOmitted)
				break
			}
			fmt.Fprintf(a.out, "  %s: %s\n", n.Key, n.Note)
		}
		fmt.Fprintf(a.out, "  to run it: the same command without --dry-run, with --confirm-removals %d\n", r.ToDelete)
	}
	fmt.Fprintf(a.out, "  report: s3://%s/%s\n", a.cfg.Run, r.ReportKey)
}
