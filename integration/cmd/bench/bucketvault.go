package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bucketvault/bucketvault/shared/report"
)

// buildLocal builds the bucketvault command once, into dir.
func buildLocal(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "bucketvault")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./statemachine/cmd/bucketvault")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build bucketvault (run from the module root): %w", err)
	}
	return bin, nil
}

// localRun is one `bucketvault backup` process: its measurement and verified report.
type localRun struct {
	measurement
	report report.Report
}

// want is what a run's report must say.
type want struct {
	listed, copied, unchanged, bytes int64
}

// runLocal runs one backup of source into backup as a separate process with the given extra
// environment and arguments, and checks its report against w.
func (b *bench) runLocal(ctx context.Context, source, backup string, extra, args []string, w want) (*localRun, error) {
	cmd := exec.CommandContext(ctx, b.localBin, append([]string{"backup", "--json", "--log-format", "json", "--verbose"}, args...)...)
	stdout, r, err := b.process(cmd, source, backup, extra)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(stdout, &r.report); err != nil {
		return nil, fmt.Errorf("bucketvault backup %s → %s: report is not JSON: %w: %.500s", source, backup, err, stdout)
	}
	if err := checkReport(&r.report, w, nil); err != nil {
		return nil, fmt.Errorf("bucketvault backup %s → %s: %w", source, backup, err)
	}
	return r, nil
}

// process runs one backup process: cmd with the server's environment, the buckets and extra,
// its stderr into the numbered log, timed and its peak RSS sampled. It returns its stdout.
func (b *bench) process(cmd *exec.Cmd, source, backup string, extra []string) ([]byte, *localRun, error) {
	cmd.Env = append(os.Environ(), b.serverEnv...)
	cmd.Env = append(cmd.Env, "SOURCE_BUCKET="+source, "BACKUP_BUCKET="+backup, "RUN_BUCKET="+runBucket)
	cmd.Env = append(cmd.Env, b.cfg.env...)
	cmd.Env = append(cmd.Env, extra...)
	var stdout bytes.Buffer
	b.runs++
	logPath := filepath.Join(b.logDir, fmt.Sprintf("%03d-%s.log", b.runs, backup))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = &stdout, logFile
	sp := b.begin()
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	hwm := watchHWM(cmd.Process.Pid)
	err = cmd.Wait()
	r := &localRun{measurement: sp.end(cmd.ProcessState)}
	r.maxRSSKiB = hwm()
	if err != nil {
		return nil, nil, fmt.Errorf("backup %s → %s: %w\nstdout: %.2000s\nlog tail: %s", source, backup, err, stdout.Bytes(), tail(logPath, 2048))
	}
	return stdout.Bytes(), r, nil
}

// checkReport checks a finished run's report against w, for the backup bucket and for each
// further destination named in dests (each must have been written exactly as the backup bucket).
func checkReport(rep *report.Report, w want, dests []string) error {
	if rep.Status != "SUCCEEDED" || rep.Failed != 0 || rep.Listed != w.listed || rep.Copied != w.copied || rep.Unchanged != w.unchanged || rep.BytesCopied != w.bytes {
		return fmt.Errorf("status %s, listed %d, copied %d (%d bytes), unchanged %d, failed %d; want SUCCEEDED, listed %d, copied %d (%d bytes), unchanged %d, failed 0",
			rep.Status, rep.Listed, rep.Copied, rep.BytesCopied, rep.Unchanged, rep.Failed, w.listed, w.copied, w.bytes, w.unchanged)
	}
	if len(rep.Destinations) != len(dests) {
		return fmt.Errorf("the report has %d destination sections, want %d (%v)", len(rep.Destinations), len(dests), dests)
	}
	for i, d := range rep.Destinations {
		if d.Name != dests[i] || d.Copied != w.copied || d.BytesCopied != w.bytes || d.Unchanged != w.unchanged || d.New+d.Changed != w.copied || d.Failed != 0 || d.Problem() != "" {
			return fmt.Errorf("destination %q: copied %d (%d bytes), new %d, changed %d, unchanged %d, failed %d, problem %q; want %q, copied %d (%d bytes), unchanged %d, failed 0",
				d.Name, d.Copied, d.BytesCopied, d.New, d.Changed, d.Unchanged, d.Failed, d.Problem(), dests[i], w.copied, w.bytes, w.unchanged)
		}
	}
	return nil
}

func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// watchHWM samples the process's peak resident set (VmHWM in /proc/<pid>/status, KiB) every
// 10 ms until the returned function is called, which returns the last sample.
//
// The rusage of the finished process (ProcessState.SysUsage().Maxrss) is not usable here: Go
// starts children with clone(CLONE_VM|CLONE_VFORK), and Linux carries the high-water RSS of the
// address space the child execs from — the benchmark's own — into the child's ru_maxrss, so it
// reports max(parent's RSS, child's RSS). VmHWM belongs to the child's own address space.
func watchHWM(pid int) func() int64 {
	var peak atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if kib := readHWM(path); kib > peak.Load() {
				peak.Store(kib)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

func readHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
