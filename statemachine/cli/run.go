package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/filter"
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
	var include, exclude []string
	var deleteExcluded bool
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Run one backup: copy what is new or changed, mark what was deleted",
		Long: `Run one backup execution and print its summary (the whole report with --json). The exit status
is 0 only when the execution SUCCEEDED. Locally it runs the backup state machine in-process; with
--stack, it starts the deployed state machine and follows it.

--include and --exclude (each repeatable) filter what this run backs up, replacing the
deployment's FILTERS: a rule is prefix:P, glob:PATTERN (doublestar: *, **, ?, [a-z], {a,b}; a glob
without / matches the file name at any depth), size<N (<, <=, >, >=; N in bytes or KiB, MiB, GiB,
TiB), age>D (D in s, m, h, d, w: 30d, 1d12h) or tag:KEY=VALUE / tag:KEY, or a JSON array of them
that must all hold. An object is backed up when it matches an include rule (or there are none)
and no exclude rule. An excluded key is neither copied nor marked deleted (its backup stays as it
is) unless --delete-excluded. Include prefixes and globs narrow the listing itself; tags are read
only for new or changed objects.`,
		Example: `  bucketvault backup
  bucketvault backup --prefix invoices/ --dry-run
  bucketvault backup --max-delete-percent 100   # the deletions are intended
  bucketvault backup --include prefix:data/ --include 'glob:**/*.parquet'
  bucketvault backup --exclude 'glob:**/*.tmp' --exclude 'size>5GiB' --exclude tag:backup=false
  bucketvault backup --exclude '["glob:logs/**", "age>30d"]' --delete-excluded --dry-run`,
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
				if len(include) > 0 || len(exclude) > 0 || deleteExcluded {
					flt, err := filtersInput(include, exclude, deleteExcluded)
					if err != nil {
						return err
					}
					in["filters"] = flt
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
	f.StringArrayVar(&include, "include", nil, "back up only what matches one of these rules (repeatable; see above)")
	f.StringArrayVar(&exclude, "exclude", nil, "leave out what matches one of these rules (repeatable; see above)")
	f.BoolVar(&deleteExcluded, "delete-excluded", false, "mark the backup of excluded keys deleted (the deletion guard counts them)")
	return cmd
}

// filtersInput builds the execution's "filters" from the flags, each rule one condition or a
// JSON array of conditions, checked here as the lister checks them (package filter): a malformed
// rule is one line on stderr and nothing runs.
func filtersInput(include, exclude []string, deleteExcluded bool) (*filter.Filter, error) {
	c := filter.Config{DeleteExcluded: deleteExcluded}
	for _, list := range []struct {
		flag  string
		rules []string
		dst   *[]filter.Rule
	}{{"--include", include, &c.Include}, {"--exclude", exclude, &c.Exclude}} {
		for _, r := range list.rules {
			rule := filter.Rule{r}
			if strings.HasPrefix(strings.TrimSpace(r), "[") {
				if err := json.Unmarshal([]byte(r), &rule); err != nil {
					return nil, fmt.Errorf("%s %s: %v", list.flag, r, err)
				}
			}
			*list.dst = append(*list.dst, rule)
		}
	}
	return filter.Compile(c)
}

func (a *app) restoreCmd() *cobra.Command {
	var o runOptions
	var in restoreinput.Options
	var noOverwrite bool
	var thawSeconds int
	var confirmRemovals int64
	cmd := &cobra.Command{
		Use:   "restore --at TIME|RUN [--prefix P]... [--key K]... [--to BUCKET] [--to-prefix P] [--from DESTINATION] [--exact --confirm-removals N]",
		Short: "Restore files, folders or the whole bucket as they were at a moment",
		Long: `Restore as of --at (an RFC 3339 time, or a backup run's name: the moment it finished) the keys under
each --prefix, each --key, or the whole bucket, into --to (default: the source bucket) under
--to-prefix. By default an object that differs is replaced; --no-overwrite leaves existing objects
alone. Archived versions are thawed first. A restore never deletes, except an exact one.
--from restores from a further destination (DESTINATIONS: another Region, account or provider),
which keeps its own history, instead of the backup bucket.

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
  bucketvault restore --at backup-20261117T020000Z-1a2b3c4d --from offsite --to primary-restored
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
	f.StringVar(&in.From, "from", "", "restore from this further destination (default: the backup bucket)")
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
	if r.Excluded > 0 || r.ExcludedDeletions > 0 || r.TagReads > 0 {
		tw.row("  excluded", r.Excluded, "gone, left alone", r.ExcludedDeletions, "tag reads", r.TagReads, "", "")
	}
	listedIn, listing := "", ""
	if kind == "backup" {
		// How the lister cut the key space (LISTER_RANGES): a big bucket's runs are ranged.
		listedIn, listing = "listed in", "one sequence"
		if r.ListRanges > 0 {
			listing = fmt.Sprintf("%d key-space ranges", r.ListRanges)
		}
	}
	tw.row("  bytes copied", units.Bytes(r.BytesCopied), "retries", r.Retries, "batches", r.Batches, listedIn, listing)
	for _, d := range r.Destinations {
		// A further destination: its own counts, beside the backup bucket's above.
		tw.row("  to "+d.Name, d.Bucket, "copied", d.Copied, "deleted", d.Deleted, "failed", d.Failed)
	}
	tw.flush()
	rules := slices.Sorted(maps.Keys(r.ExcludedByRule))
	for _, rule := range rules {
		fmt.Fprintf(a.out, "  excluded by %s: %d\n", rule, r.ExcludedByRule[rule])
	}
	if r.Cause != "" {
		fmt.Fprintln(a.out, "  "+r.Cause)
	}
	for i, f := range r.Failures {
		if i == 10 {
			fmt.Fprintf(a.out, "  … and %d more failures\n", int64(len(r.Failures)-10)+r.FailuresOmitted)
			break
		}
		if f.Destination != "" {
			fmt.Fprintf(a.out, "  FAILED %s (to %s): %s\n", f.Key, f.Destination, f.Error)
			continue
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
