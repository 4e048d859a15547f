package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/bucketvault/bucketvault/shared/browse"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/shared/units"
)

func (a *app) runsCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List past backup and restore runs, newest first",
		Example: `  bucketvault runs
  bucketvault runs --limit 5 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.cfg.need(a.configPath, "run"); err != nil {
				return err
			}
			c, err := a.client(cmd.Context(), 0)
			if err != nil {
				return err
			}
			runs, err := runlog.List(cmd.Context(), c, a.cfg.Run, limit)
			if err != nil {
				return err
			}
			if a.jsonOut {
				if runs == nil {
					runs = []runlog.Run{}
				}
				return a.printJSON(runs)
			}
			t := newTable(a.out)
			t.row("STARTED", "KIND", "RUN", "STATUS", "COPIED", "DELETED", "FAILED", "BYTES", "DURATION")
			for _, r := range runs {
				status := r.Status
				if r.Error != "" {
					status += " " + r.Error
				}
				t.row(r.StartedAt, r.Kind, r.Execution, status, r.Copied, r.Deleted, r.Failed, units.Bytes(r.BytesCopied), duration(r.StartedAt, r.FinishedAt))
			}
			t.flush()
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many runs (0: all)")
	return cmd
}

func (a *app) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show RUN",
		Short:   "Show one run's report, with every object that failed",
		Example: `  bucketvault show backup-20261204T020000Z-1a2b3c4d`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.cfg.need(a.configPath, "run"); err != nil {
				return err
			}
			c, err := a.client(cmd.Context(), 0)
			if err != nil {
				return err
			}
			r, err := runlog.Get(cmd.Context(), c, a.cfg.Run, args[0])
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(r)
			}
			a.printSummary(r.Kind, r.Execution, r.Status, r.Error, r.Cause, &r.Report, parseDuration(r.StartedAt, r.FinishedAt))
			return nil
		},
	}
}

func (a *app) lsCmd() *cobra.Command {
	var at string
	cmd := &cobra.Command{
		Use:   "ls [--at TIME|RUN] [PREFIX]",
		Short: "List the backup as it stood at a moment, folder by folder",
		Long: `List the keys and sub-folders directly under PREFIX (like aws s3 ls) as the backup held them at
--at (an RFC 3339 time, or a run's name: the moment it finished; default: now).`,
		Example: `  bucketvault ls
  bucketvault ls reports/
  bucketvault ls --at backup-20261204T020000Z-1a2b3c4d reports/2026/`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.cfg.need(a.configPath, "backup", "run"); err != nil {
				return err
			}
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			t, err := a.moment(cmd.Context(), at)
			if err != nil {
				return err
			}
			c, err := a.client(cmd.Context(), 0)
			if err != nil {
				return err
			}
			entries := []browse.Entry{}
			tw := newTable(a.out)
			err = browse.Ls(cmd.Context(), c, a.cfg.Backup, prefix, t, func(e browse.Entry) error {
				if a.jsonOut {
					entries = append(entries, e)
					return nil
				}
				if e.Dir {
					tw.row("", "PRE", e.Key, "", "")
				} else {
					tw.row(e.LastModified.UTC().Format(time.RFC3339), e.Size, e.Key, e.StorageClass, e.VersionID)
				}
				return nil
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(entries)
			}
			tw.flush()
			return nil
		},
	}
	cmd.Flags().StringVar(&at, "at", "", "the moment: an RFC 3339 time or a run's name (default: now)")
	return cmd
}

func (a *app) versionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "versions KEY",
		Short:   "Show a key's history in the backup: every version and delete marker, and the run that wrote it",
		Example: `  bucketvault versions reports/q3.xlsx`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.cfg.need(a.configPath, "backup", "run"); err != nil {
				return err
			}
			c, err := a.client(cmd.Context(), 0)
			if err != nil {
				return err
			}
			vs, err := browse.Versions(cmd.Context(), c, a.cfg.Backup, args[0])
			if err != nil {
				return err
			}
			attribute, err := runlog.NewAttributor(cmd.Context(), c, a.cfg.Run)
			if err != nil {
				return err
			}
			type row struct {
				browse.Version
				Run string `json:"run,omitempty"`
			}
			rows := make([]row, len(vs))
			for i, v := range vs {
				run, err := attribute.Run(cmd.Context(), v.LastModified)
				if err != nil {
					return err
				}
				rows[i] = row{Version: v, Run: run}
			}
			if a.jsonOut {
				return a.printJSON(rows)
			}
			if len(rows) == 0 {
				return &fault.InvalidInput{Msg: fmt.Sprintf("s3://%s holds no version of %q", a.cfg.Backup, args[0])}
			}
			t := newTable(a.out)
			t.row("LAST MODIFIED", "LATEST", "KIND", "SIZE", "VERSION", "RUN")
			for _, r := range rows {
				kind, size := "version", fmt.Sprint(r.Size)
				if r.DeleteMarker {
					kind, size = "delete marker", "-"
				}
				t.row(r.LastModified.UTC().Format(time.RFC3339), r.IsLatest, kind, size, r.VersionID, r.Run)
			}
			t.flush()
			return nil
		},
	}
}

func (a *app) diffCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "diff FROM TO [PREFIX]",
		Short: "List what was added, changed and deleted between two moments or runs",
		Example: `  bucketvault diff backup-20261203T020000Z-aaaa1111 backup-20261204T020000Z-bbbb2222
  bucketvault diff 2026-12-01T00:00:00Z 2026-12-04T00:00:00Z reports/`,
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.cfg.need(a.configPath, "backup", "run"); err != nil {
				return err
			}
			from, err := a.moment(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			to, err := a.moment(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 3 {
				prefix = args[2]
			}
			c, err := a.client(cmd.Context(), 0)
			if err != nil {
				return err
			}
			changes := []browse.Change{}
			tw := newTable(a.out)
			err = browse.Diff(cmd.Context(), c, a.cfg.Backup, prefix, from, to, func(ch browse.Change) error {
				if a.jsonOut {
					changes = append(changes, ch)
					return nil
				}
				tw.row(ch.Change, ch.Key)
				return nil
			})
			if err != nil {
				return err
			}
			if a.jsonOut {
				return a.printJSON(changes)
			}
			tw.flush()
			return nil
		},
	}
}

// moment resolves --at: "" is now (the zero time); otherwise a time or a run's name, which must
// not lie before the first backup finished.
func (a *app) moment(ctx context.Context, at string) (time.Time, error) {
	if at == "" {
		return time.Time{}, nil
	}
	c, err := a.client(ctx, 0)
	if err != nil {
		return time.Time{}, err
	}
	t, err := runlog.Moment(ctx, c, a.cfg.Run, at)
	if err != nil {
		return time.Time{}, err
	}
	first, found, err := runlog.FirstBackup(ctx, c, a.cfg.Run)
	if err != nil {
		return time.Time{}, err
	}
	if !found {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("no backup has finished yet (no report in s3://%s/runs/)", a.cfg.Run)}
	}
	if t.Before(first) {
		return time.Time{}, &fault.InvalidInput{Msg: fmt.Sprintf("%s is before the first backup finished (%s): the backup holds nothing from then", at, first.Format(time.RFC3339))}
	}
	return t, nil
}

func parseDuration(start, end string) time.Duration {
	s, err1 := time.Parse(time.RFC3339Nano, start)
	e, err2 := time.Parse(time.RFC3339Nano, end)
	if err1 != nil || err2 != nil {
		return 0
	}
	return e.Sub(s)
}

func duration(start, end string) string {
	d := parseDuration(start, end)
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}
