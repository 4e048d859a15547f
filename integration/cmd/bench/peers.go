package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// peer is another tool that copies one bucket into another.
type peer struct {
	name    string
	version string
	run     func(ctx context.Context, d *dataset, dst string) (measurement, string, error)
}

// findPeers returns rclone and the AWS CLI when they are on PATH, and the names of those missing.
func (b *bench) findPeers(ctx context.Context) (found []peer, missing []string) {
	if path, err := exec.LookPath("rclone"); err == nil {
		found = append(found, peer{name: "rclone copy", version: toolVersion(ctx, path, "version"), run: b.rclone(path)})
	} else {
		missing = append(missing, "rclone")
	}
	if path, err := exec.LookPath("aws"); err == nil {
		found = append(found, peer{name: "aws s3 sync", version: toolVersion(ctx, path, "--version"), run: b.awsSync(path)})
	} else {
		missing = append(missing, "aws")
	}
	return found, missing
}

func toolVersion(ctx context.Context, path, arg string) string {
	out, err := exec.CommandContext(ctx, path, arg).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// rcloneServerSide is what rclone -v logs for each object it copied server-side (1.60 has no
// server-side total in its final stats).
const rcloneServerSide = "Copied (server-side copy)"

// rclone copies with a remote configured entirely from the environment; a copy within one remote
// is a server-side copy, which its log must confirm for every object.
func (b *bench) rclone(path string) func(ctx context.Context, d *dataset, dst string) (measurement, string, error) {
	return func(ctx context.Context, d *dataset, dst string) (measurement, string, error) {
		src := d.bucket
		args := []string{"copy", "bvbench:" + src, "bvbench:" + dst,
			"--transfers", strconv.Itoa(b.cfg.rcloneXfers), "--checkers", strconv.Itoa(b.cfg.rcloneChecks),
			"--fast-list", "--s3-no-check-bucket", "-v", "--stats", "1h", "--stats-log-level", "NOTICE",
			"--config", filepath.Join(b.tmp, "rclone.conf")}
		// rclone 1.60 fails on AWS_CA_BUNDLE even for plain http ("unable to load custom CA
		// bundle, HTTPClient's transport unsupported type"); the loopback server needs no CA.
		env := append(withoutVar(os.Environ(), "AWS_CA_BUNDLE"),
			"RCLONE_CONFIG_BVBENCH_TYPE=s3", "RCLONE_CONFIG_BVBENCH_PROVIDER=Minio",
			"RCLONE_CONFIG_BVBENCH_ENDPOINT="+b.srv.Endpoint, "RCLONE_CONFIG_BVBENCH_REGION=us-east-1",
			"RCLONE_CONFIG_BVBENCH_ACCESS_KEY_ID="+b.srv.AccessKey, "RCLONE_CONFIG_BVBENCH_SECRET_ACCESS_KEY="+b.srv.SecretKey,
			"RCLONE_CONFIG_BVBENCH_FORCE_PATH_STYLE=true")
		m, out, err := b.runTool(ctx, "rclone", path, args, env)
		if err != nil {
			return measurement{}, "", err
		}
		if n := int64(bytes.Count(out, []byte(rcloneServerSide))); n != d.count() {
			return measurement{}, "", fmt.Errorf("rclone logged %d server-side copies, want %d: %s", n, d.count(), lastBytes(out, 2048))
		}
		return m, fmt.Sprintf("%d server-side copies, --transfers %d --checkers %d --fast-list", d.count(), b.cfg.rcloneXfers, b.cfg.rcloneChecks), nil
	}
}

// awsSync runs aws s3 sync with max_concurrent_requests from a private config file.
func (b *bench) awsSync(path string) func(ctx context.Context, d *dataset, dst string) (measurement, string, error) {
	return func(ctx context.Context, d *dataset, dst string) (measurement, string, error) {
		src := d.bucket
		conf := filepath.Join(b.tmp, "aws-config")
		body := fmt.Sprintf("[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = %d\n  max_queue_size = 10000\n", b.cfg.awsRequests)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return measurement{}, "", err
		}
		args := []string{"s3", "sync", "s3://" + src, "s3://" + dst, "--endpoint-url", b.srv.Endpoint, "--only-show-errors", "--no-progress"}
		env := append(os.Environ(), "AWS_CONFIG_FILE="+conf, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(b.tmp, "none"),
			"AWS_ACCESS_KEY_ID="+b.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+b.srv.SecretKey, "AWS_DEFAULT_REGION=us-east-1")
		m, _, err := b.runTool(ctx, "aws", path, args, env)
		if err != nil {
			return measurement{}, "", err
		}
		return m, fmt.Sprintf("max_concurrent_requests %d", b.cfg.awsRequests), nil
	}
}

// runTool runs one timed peer command with its output captured; a failure carries the output's
// tail.
func (b *bench) runTool(ctx context.Context, name, path string, args, env []string) (measurement, []byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	sp := b.begin()
	err := cmd.Run()
	m := sp.end(cmd.ProcessState)
	if err != nil {
		return measurement{}, nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastBytes(out.Bytes(), 2048))
	}
	return m, out.Bytes(), nil
}

func withoutVar(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
