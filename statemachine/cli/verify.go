package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/awsrun"
	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/shared/units"
	"github.com/bucketvault/bucketvault/shared/verify"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

func (a *app) verifyCmd() *cobra.Command {
	var name, input string
	var sample string
	var percent float64
	var seed, restoreSample int64
	var thaw bool
	cmd := &cobra.Command{
		Use:   "verify [--sample N|all | --sample-percent P] [--seed S] [--restore-sample N] [--thaw]",
		Short: "Run a restore drill: check a sample of the backup against the source and the last backup",
		Long: `Run one verify execution (a restore drill) and print its summary (the whole report with --json).
It lists the backup's current objects once and checks a random sample of them (--sample, default
100, or --sample-percent, or --sample all) plus every object the last successful backup copied:
that the backup still holds the version that backup wrote, and that each object unchanged in the
source since has identical content in the backup (by S3's additional checksum where both sides
have the same one, else by SHA-256 of both bodies). Archived objects are counted and skipped. The
exit status is 0 only when the execution SUCCEEDED; a mismatch or a missing version ends it FAILED
(VerifyMismatch), each one named in the report.

Where a drill bucket is configured (DRILL_BUCKET, one of RESTORE_TARGETS; the stack creates one),
a smaller sample of the verified objects (--restore-sample, default 20, 0 for none) is restored
through the restore state machine into the drill bucket under drill/<execution>/, each restored
copy compared with the source (bytes, metadata, content headers, tags), the restore timed, and
the scratch copies deleted. Archived objects in it are skipped unless --thaw (hours, and a
retrieval fee the report estimates).`,
		Example: `  bucketvault verify
  bucketvault verify --sample 1000 --seed 42
  bucketvault verify --sample-percent 5
  bucketvault verify --sample all --json
  bucketvault verify --restore-sample 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				in := map[string]any{}
				if cmd.Flags().Changed("sample") {
					var s verify.Sample
					if err := s.UnmarshalJSON([]byte(quoteAll(sample))); err != nil {
						return fmt.Errorf("--sample %s: want a number or all", sample)
					}
					in["sample"] = s
				}
				if cmd.Flags().Changed("sample-percent") {
					in["samplePercent"] = percent
				}
				if cmd.Flags().Changed("seed") {
					in["seed"] = seed
				}
				if cmd.Flags().Changed("restore-sample") {
					in["restoreSample"] = restoreSample
				}
				if thaw {
					in["thaw"] = true
				}
				b, _ := json.Marshal(in)
				input = string(b)
			}
			// Bad input is refused here, before anything runs or is written.
			if _, _, err := verify.ParseInput([]byte(input)); err != nil {
				return err
			}
			if name == "" {
				name = localrun.NewVerifyName(time.Now())
			}
			return a.verify(cmd.Context(), name, input)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sample, "sample", "", "how many of the backup's objects to pick at random (default 100), or all")
	f.Float64Var(&percent, "sample-percent", 0, "pick this share of the backup's objects at random (0-100)")
	f.Int64Var(&seed, "seed", 0, "random seed: the same seed over the same backup picks the same objects")
	f.Int64Var(&restoreSample, "restore-sample", verify.DefaultRestoreSample, "how many verified objects to restore into the drill bucket and compare (0: none)")
	f.BoolVar(&thaw, "thaw", false, "restore archived objects of the restore sample too (thawing them first)")
	f.StringVar(&input, "input", "", "the execution input as JSON, instead of the flags")
	f.StringVar(&name, "name", "", "execution name (default: verify-<time>-<random>)")
	return cmd
}

// quoteAll turns the flag's "all" into the input's JSON string; a number stays a number.
func quoteAll(s string) string {
	if s == "all" {
		return `"all"`
	}
	return s
}

// verify runs the drill locally or on the stack, then prints it as backup and restore do.
func (a *app) verify(ctx context.Context, name, input string) error {
	if a.cfg.Stack != "" {
		return a.verifyOnAWS(ctx, name, input)
	}
	if err := a.cfg.need(a.configPath, "source", "backup", "run"); err != nil {
		return err
	}
	env := a.functionEnv()
	client, err := s3client.New(ctx, s3client.Options{Endpoint: a.cfg.Endpoint, MaxConns: 2*verify.DefaultConcurrency + 8})
	if err != nil {
		return err
	}
	if err := listing.RequireBuckets(ctx, client, listing.Bucket{Role: "source", Name: a.cfg.Source},
		listing.Bucket{Role: "backup", Name: a.cfg.Backup}, listing.Bucket{Role: "run", Name: a.cfg.Run}); err != nil {
		return err
	}
	runner := &localrun.Runner{S3: client, Env: env, Logger: a.logger}
	res, err := runner.Verify(ctx, name, []byte(input))
	if res == nil {
		return err
	}
	x := res.Execution
	return a.finishVerify(name, x.Status, x.Error, x.Cause, res.Report, res.ReportJSON, x.StopDate.Sub(x.StartDate))
}

// verifyOnAWS starts the stack's verify state machine and follows it.
func (a *app) verifyOnAWS(ctx context.Context, name, input string) error {
	awsCfg, stack, err := a.loadStack(ctx)
	if err != nil {
		return err
	}
	arn := stack.VerifyStateMachineArn
	if arn == "" {
		return fmt.Errorf("stack %s has no %s output: deploy a version with the verify state machine", a.cfg.Stack, awsrun.OutputVerifyStateMachineArn)
	}
	fmt.Fprintf(a.errw, "started %s on %s\n", name, arn)
	x, err := awsrun.Run(ctx, sfn.NewFromConfig(awsCfg), arn, name, []byte(input), awsPoll, nil)
	if err != nil {
		return err
	}
	c, err := a.client(ctx, 0)
	if err != nil {
		return err
	}
	r, err := runlog.Get(ctx, c, a.cfg.Run, name)
	if err != nil || r.Status == runlog.NoReport {
		return a.finishVerify(name, x.Status, x.Error, x.Cause, nil, nil, x.Stop.Sub(x.Start))
	}
	raw, _ := json.MarshalIndent(r.Report, "", "  ")
	return a.finishVerify(name, x.Status, x.Error, x.Cause, &r.Report, raw, x.Stop.Sub(x.Start))
}

// finishVerify prints a finished drill: its report (JSON) or its summary, and its status.
func (a *app) finishVerify(name, status, errName, cause string, r *report.Report, reportJSON []byte, took time.Duration) error {
	if a.jsonOut || r == nil || r.Verify == nil {
		return a.finish("verify", name, status, errName, cause, r, reportJSON, took)
	}
	v := r.Verify
	fmt.Fprintf(a.out, "verify %s: %s", name, status)
	if errName != "" {
		fmt.Fprintf(a.out, " (%s)", errName)
	}
	fmt.Fprintf(a.out, " in %s\n", took.Round(time.Millisecond))
	against := v.AgainstBackup
	if against == "" {
		against = "(no successful backup recorded)"
	}
	fmt.Fprintf(a.out, "  against %s; sample %s (seed %d)\n", against, v.Sample, v.Seed)
	tw := newTable(a.out)
	tw.row("  backup objects", v.BackupObjects, "sampled", v.Sampled, "last copied", v.LastCopied, "checked", v.Checked)
	tw.row("  verified", v.Verified, "by checksum", v.ByChecksum, "by sha256", v.ByHash, "bytes", units.Bytes(v.BytesVerified))
	tw.row("  changed since", v.ChangedSince, "archived", v.Archived, "not in backup", v.NotInBackup, "", "")
	tw.row("  versions checked", v.VersionsChecked, "by ETag", v.VersionsByETag, "by time", v.VersionsByTime, "missing", v.MissingVersions)
	if rs := v.Restore; rs != nil {
		tw.row("  restored", rs.Restored, "identical", rs.Identical, "differ", rs.Mismatches, "seconds", fmt.Sprintf("%.3f", rs.Seconds))
		tw.row("  scratch removed", rs.ScratchDeleted, "left", rs.ScratchLeft, "archived", rs.Archived, "", "")
	}
	tw.flush()
	if rs := v.Restore; rs != nil && rs.Execution != "" {
		fmt.Fprintf(a.out, "  restore sample: %s (%s) into %s\n", rs.Execution, rs.Status, rs.Target)
	}
	if v.LastCopiedUnknown {
		fmt.Fprintf(a.out, "  the batches of %s are gone: its copies were not checked one by one\n", v.AgainstBackup)
	}
	if r.Cause != "" {
		fmt.Fprintln(a.out, "  "+r.Cause)
	}
	for i, m := range v.Mismatches {
		if i == 10 {
			fmt.Fprintf(a.out, "  … and %d more\n", int64(len(v.Mismatches)-10)+v.MismatchesOmitted)
			break
		}
		fmt.Fprintf(a.out, "  MISMATCH %s (%s): %s\n", m.Key, m.Kind, m.Detail)
	}
	fmt.Fprintf(a.out, "  report: s3://%s/%s\n", a.cfg.Run, r.ReportKey)
	if status != "SUCCEEDED" {
		return &ExitError{Code: 1}
	}
	return nil
}
