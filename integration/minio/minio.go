// Package minio starts a real MinIO server for integration tests and the demo: the binary the
// Makefile builds at a pinned version, bound to loopback on a free port, with random credentials,
// a random KMS key (so that buckets may use SSE-KMS) and a fresh data directory.
package minio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Server is one running MinIO.
type Server struct {
	Endpoint  string // http://127.0.0.1:<port>
	AccessKey string
	SecretKey string
	// KMSKeyID names the server's KMS key (MINIO_KMS_SECRET_KEY, random per Start): a bucket whose
	// default encryption is aws:kms with this key gives every write a fresh, non-MD5 ETag, as
	// SSE-KMS does on AWS. Buckets without default encryption are not encrypted.
	KMSKeyID  string
	kmsSecret string // base64 of the key's 32 random bytes
	Dir       string
	bin, addr string
	logPath   string
	cmd       *exec.Cmd
	done      chan struct{}
}

// ErrNoBinary means the MinIO binary is not built; `make minio` builds it.
var ErrNoBinary = errors.New("MinIO binary not found: run `make minio` (or set MINIO_BIN)")

// Binary finds the MinIO binary: $MINIO_BIN (the Makefile sets it), else the newest
// .cache/minio-*/minio in the module root.
func Binary() (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MINIO_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			matches, _ := filepath.Glob(filepath.Join(dir, ".cache", "minio-*", "minio"))
			if len(matches) == 0 {
				return "", ErrNoBinary
			}
			return matches[len(matches)-1], nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoBinary
		}
		dir = parent
	}
}

// Start starts MinIO in a new temporary directory and waits until it is ready.
func Start(ctx context.Context) (*Server, error) { return StartIn(ctx, "") }

// StartIn starts MinIO in a new directory under parent (the system's temporary directory when
// empty) and waits until it is ready.
func StartIn(ctx context.Context, parent string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "bucketvault-minio-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		AccessKey: "bv" + randomHex(9),
		SecretKey: randomHex(20),
		KMSKeyID:  "bucketvault-" + randomHex(4),
		kmsSecret: randomBase64(32),
		Dir:       dir,
		bin:       bin,
		addr:      "127.0.0.1:" + strconv.Itoa(port),
		logPath:   filepath.Join(dir, "minio.log"),
	}
	s.Endpoint = "http://" + s.addr
	if err := s.start(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	consolePort, err := freePort()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr,
		"--console-address", "127.0.0.1:"+strconv.Itoa(consolePort), filepath.Join(s.Dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1",
		"MINIO_KMS_SECRET_KEY="+s.KMSKeyID+":"+s.kmsSecret)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start minio: %w", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(s.done) }()
	return s.waitReady(ctx)
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("minio exited during start: %s", log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(s.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("minio at %s not ready after 60s", s.Endpoint)
}

// Kill stops the server abruptly, keeping its data, as a crash or network loss would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Pid is the server process's id, or 0 when it is not running.
func (s *Server) Pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Restart starts the server again on the same address with the same data.
func (s *Server) Restart(ctx context.Context) error {
	s.Kill()
	return s.start(ctx)
}

// Stop stops the server and removes its data.
func (s *Server) Stop() {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.Kill()
		}
		s.cmd = nil
	}
	_ = os.RemoveAll(s.Dir)
}

// Env is the standard AWS environment that points a client at this server.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL_S3":   s.Endpoint,
		"AWS_ACCESS_KEY_ID":     s.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s.SecretKey,
		"AWS_REGION":            "us-east-1",
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
