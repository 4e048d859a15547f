// Command bench measures bucketvault's local backup against a private MinIO: the server's own
// CopyObject ceiling, the time to list both buckets, bucketvault's full, idle and 1%-changed runs
// (the bucketvault binary as a separate process, its report verified), rclone and aws s3 sync
// when present, peak memory at two object counts, and full runs to one and to two destinations
// (DESTINATIONS); on request memory at scale with one and two destinations (-scale) and listing at
// scale (-listing). It prints a Markdown table and writes the raw timings as JSON. `make bench`
// runs it. With -run-backup it is the child runner of the destination scenarios (child.go).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) == 2 && os.Args[1] == childFlag {
		// A child of the destinations or scale scenario (child.go).
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		return runBackupChild(ctx)
	}
	if len(os.Args) == 3 && os.Args[1] == "-report" {
		// Print the tables of an earlier run from its raw timings.
		res, err := readResults(os.Args[2])
		if err != nil {
			return err
		}
		printTable(os.Stdout, res)
		return nil
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	b, err := newBench(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.close()
	res, err := b.runAll(ctx)
	if res != nil {
		if werr := writeResults(cfg.out, res); werr != nil && err == nil {
			err = werr
		}
		printTable(os.Stdout, res)
	}
	return err
}
