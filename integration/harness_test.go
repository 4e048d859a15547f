//go:build integration

// Package integration runs bucketvault end to end against a real MinIO: the production state
// machine definition through the local executor, checked with the SDK and with the AWS CLI.
package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/integration/minio"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

var server *minio.Server

// required is set by `make test` and in CI: a missing server or tool fails the run instead of skipping.
func required() bool {
	return os.Getenv("BUCKETVAULT_REQUIRE_SERVERS") == "1" || os.Getenv("CI") == "true"
}

func TestMain(m *testing.M) {
	if _, err := minio.Binary(); err != nil {
		if required() {
			fmt.Fprintln(os.Stderr, "integration: MinIO is required but missing:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "integration: SKIPPING every test:", err)
		os.Exit(0)
	}
	ctx := context.Background()
	var err error
	server, err = minio.Start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: start MinIO:", err)
		os.Exit(1)
	}
	for k, v := range server.Env() {
		os.Setenv(k, v)
	}
	os.Unsetenv("AWS_ENDPOINT_URL")
	os.Unsetenv("AWS_PROFILE")
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// env is one test's three buckets and a runner for them.
type env struct {
	t                   *testing.T
	ctx                 context.Context
	s3                  *s3.Client
	srv                 *minio.Server
	endpoint            string
	source, backup, run string
	runner              *localrun.Runner
}

type envOptions struct {
	vars     map[string]string // extra function environment
	wrapHTTP func(s3.HTTPClient) s3.HTTPClient
	// server is the MinIO to use (default: the shared one); functionEndpoint, when set, is where
	// the functions send their requests (a fault proxy in front of the server).
	server           *minio.Server
	functionEndpoint string
	// maxAttempts bounds the functions' SDK attempts per request (default 8).
	maxAttempts int
	// lock, when set, creates the backup bucket with Object Lock and this default retention.
	lock *types.DefaultRetention
}

// clientFor returns a client of srv through endpoint (default: srv itself).
func clientFor(t *testing.T, srv *minio.Server, endpoint string, maxAttempts int, wrap func(s3.HTTPClient) s3.HTTPClient) *s3.Client {
	t.Helper()
	if endpoint == "" {
		endpoint = srv.Endpoint
	}
	c, err := s3client.New(context.Background(), s3client.Options{
		MaxConns: 64, MaxAttempts: maxAttempts, WrapHTTP: wrap, Endpoint: endpoint,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	ctx := context.Background()
	srv := opts.server
	if srv == nil {
		srv = server
	}
	client := clientFor(t, srv, "", 0, nil)
	id := strings.ToLower(randomHex(4))
	e := &env{t: t, ctx: ctx, s3: client, srv: srv, endpoint: srv.Endpoint, source: "src-" + id, backup: "bak-" + id, run: "run-" + id}
	for _, b := range []string{e.source, e.backup, e.run} {
		in := &s3.CreateBucketInput{Bucket: aws.String(b)}
		if b == e.backup && opts.lock != nil {
			in.ObjectLockEnabledForBucket = aws.Bool(true) // turns versioning on too
		}
		if _, err := client.CreateBucket(ctx, in); err != nil {
			t.Fatalf("create bucket %s: %v", b, err)
		}
	}
	e.versioning(e.backup)
	if opts.lock != nil {
		if _, err := client.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{
			Bucket: aws.String(e.backup),
			ObjectLockConfiguration: &types.ObjectLockConfiguration{
				ObjectLockEnabled: types.ObjectLockEnabledEnabled,
				Rule:              &types.ObjectLockRule{DefaultRetention: opts.lock},
			},
		}); err != nil {
			t.Fatalf("object lock configuration of %s: %v", e.backup, err)
		}
	}
	fnClient := client
	if opts.wrapHTTP != nil || opts.functionEndpoint != "" || opts.maxAttempts != 0 {
		fnClient = clientFor(t, srv, opts.functionEndpoint, opts.maxAttempts, opts.wrapHTTP)
	}
	vars := map[string]string{"SOURCE_BUCKET": e.source, "BACKUP_BUCKET": e.backup, "RUN_BUCKET": e.run}
	for k, v := range opts.vars {
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	e.runner = &localrun.Runner{
		S3: fnClient, StateMachineS3: client, Env: vars,
		Logger: slog.New(slog.NewJSONHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Sleep:  func(ctx context.Context, d time.Duration) error { return ctx.Err() },
	}
	return e
}

func (e *env) versioning(bucket string) {
	e.t.Helper()
	if _, err := e.s3.PutBucketVersioning(e.ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}); err != nil {
		e.t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// backupRun runs one execution and returns it; it does not judge the outcome.
func (e *env) backupRun(input string) *localrun.Result {
	e.t.Helper()
	name := localrun.NewExecutionName(time.Now())
	res, err := e.runner.Backup(e.ctx, name, []byte(input))
	if err != nil {
		e.t.Fatalf("run %s: %v", name, err)
	}
	return res
}

// mustBackup runs one execution that must succeed with a report.
func (e *env) mustBackup(input string) *localrun.Result {
	e.t.Helper()
	res := e.backupRun(input)
	if !res.Succeeded() || res.Report == nil {
		e.t.Fatalf("execution %s: %s %s: %s\nreport: %s", res.Execution.Name, res.Execution.Status, res.Execution.Error, res.Execution.Cause, res.ReportJSON)
	}
	return res
}

type object struct {
	key, body                                                  string
	contentType, cacheControl, disposition, encoding, language string
	meta                                                       map[string]string
	tags                                                       string // url-encoded
}

func (e *env) put(bucket string, o object) {
	e.t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.key), Body: strings.NewReader(o.body), Metadata: o.meta}
	set := func(dst **string, v string) {
		if v != "" {
			*dst = aws.String(v)
		}
	}
	set(&in.ContentType, o.contentType)
	set(&in.CacheControl, o.cacheControl)
	set(&in.ContentDisposition, o.disposition)
	set(&in.ContentEncoding, o.encoding)
	set(&in.ContentLanguage, o.language)
	set(&in.Tagging, o.tags)
	if _, err := e.s3.PutObject(e.ctx, in); err != nil {
		e.t.Fatalf("put %s/%q: %v", bucket, o.key, err)
	}
}

func (e *env) putBytes(bucket, key string, body []byte) {
	e.t.Helper()
	if _, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)}); err != nil {
		e.t.Fatalf("put %s/%q: %v", bucket, key, err)
	}
}

// putMany uploads n small objects concurrently.
func (e *env) putMany(bucket string, n int, key func(i int) string, body func(i int) []byte) {
	e.t.Helper()
	g, ctx := errgroup.WithContext(e.ctx)
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			_, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key(i)), Body: bytes.NewReader(body(i))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) del(bucket, key string) {
	e.t.Helper()
	if _, err := e.s3.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) get(bucket, key string) []byte {
	e.t.Helper()
	out, err := e.s3.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		e.t.Fatalf("get %s/%q: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// versionsOf lists every version and delete marker, by key.
type versionInfo struct {
	data, markers int
	latestMarker  bool
}

func (e *env) versions(bucket string) map[string]*versionInfo {
	e.t.Helper()
	m := map[string]*versionInfo{}
	at := func(k string) *versionInfo {
		if m[k] == nil {
			m[k] = &versionInfo{}
		}
		return m[k]
	}
	p := s3.NewListObjectVersionsPaginator(e.s3, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, v := range page.Versions {
			at(aws.ToString(v.Key)).data++
		}
		for _, d := range page.DeleteMarkers {
			vi := at(aws.ToString(d.Key))
			vi.markers++
			if aws.ToBool(d.IsLatest) {
				vi.latestMarker = true
			}
		}
	}
	return m
}

// keys lists a bucket's current keys.
func (e *env) keys(bucket string) []string {
	e.t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// sameContent checks every source key is in the backup with identical bytes.
func (e *env) sameContent(keys []string) {
	e.t.Helper()
	for _, k := range keys {
		if a, b := sha(e.get(e.source, k)), sha(e.get(e.backup, k)); a != b {
			e.t.Errorf("key %q: backup content differs from source", k)
		}
	}
}

// aws runs the AWS CLI, an independent S3 client, against the test server and decodes its JSON.
func (e *env) aws(out any, args ...string) {
	e.t.Helper()
	path, err := exec.LookPath("aws")
	if err != nil {
		if required() {
			e.t.Fatal("the AWS CLI is required (apt-get install awscli): ", err)
		}
		e.t.Skip("AWS CLI not installed")
	}
	cmd := exec.CommandContext(e.ctx, path, append([]string{"--endpoint-url", e.endpoint, "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+e.srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+e.srv.SecretKey, "AWS_DEFAULT_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("aws %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("aws %s: decode %s: %v", strings.Join(args, " "), b, err)
		}
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// historyTypes returns the execution's event types in order.
func historyTypes(res *localrun.Result) []string {
	b, _ := res.Execution.HistoryJSON()
	var h struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	_ = json.Unmarshal(b, &h)
	var types []string
	for _, ev := range h.Events {
		types = append(types, ev.Type)
	}
	return types
}
