//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/integration/minio"
	"github.com/bucketvault/bucketvault/statemachine/local"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// checkConverged asserts the backup holds every source object byte for byte (by content hash),
// nothing extra, and exactly one version of each.
func (e *env) checkConverged() {
	e.t.Helper()
	src := e.keys(e.source)
	if bak := e.keys(e.backup); strings.Join(bak, "\n") != strings.Join(src, "\n") {
		e.t.Fatalf("backup keys differ from source: %d vs %d", len(bak), len(src))
	}
	e.sameContent(src)
	for k, v := range e.versions(e.backup) {
		if v.data != 1 || v.markers != 0 {
			e.t.Errorf("%s has %d versions and %d delete markers; want exactly one version", k, v.data, v.markers)
		}
	}
}

// Throttling and a flaky network: 503 SlowDown, connections reset before and after the server
// acted, latency. The run completes with every object, no redundant version, and counts retries.
func TestSurvivesThrottlingAndFlakyNetwork(t *testing.T) {
	proxy, url := newFaultProxy(t, server.Endpoint, 0.10, 0.03, 0.03, 3*time.Millisecond)
	e := newEnv(t, envOptions{functionEndpoint: url, vars: map[string]string{"BATCH_SIZE": "50", "MULTIPART_THRESHOLD": "5MiB", "MULTIPART_PART_SIZE": "5MiB"}})
	const n = 400
	e.putMany(e.source, n, func(i int) string { return fmt.Sprintf("flaky/%04d", i) }, func(i int) []byte { return []byte(fmt.Sprint("body ", i)) })
	big := make([]byte, 11<<20)
	_, _ = rand.Read(big)
	e.uploadInParts(e.source, "flaky/big-multipart.bin", big, 5<<20, nil)
	res := e.mustBackup(`{}`)
	r := res.Report
	if r.Copied != n+1 || r.Failed != 0 || r.Retries == 0 {
		t.Fatalf("report: copied %d failed %d retries %d", r.Copied, r.Failed, r.Retries)
	}
	e.checkConverged()
	// And deletions through the same network.
	for i := range 10 {
		e.del(e.source, fmt.Sprintf("flaky/%04d", i))
	}
	del := e.mustBackup(`{}`)
	if del.Report.Deleted != 10 {
		t.Fatalf("deletions: %s", del.ReportJSON)
	}
	for i := range 10 {
		if v := e.versions(e.backup)[fmt.Sprintf("flaky/%04d", i)]; v.markers != 1 {
			t.Errorf("flaky/%04d has %d delete markers, want 1", i, v.markers)
		}
	}
	t.Logf("proxy: %d requests, %d SlowDown, %d reset before, %d responses lost; report retries %d (first run), %d (deletions)",
		proxy.requests.Load(), proxy.slowDowns.Load(), proxy.resetsBefore.Load(), proxy.lostResponses.Load(), r.Retries, del.Report.Retries)
	if proxy.slowDowns.Load() == 0 || proxy.resetsBefore.Load() == 0 || proxy.lostResponses.Load() == 0 {
		t.Fatal("the proxy did not inject every kind of fault")
	}
}

// The server goes away during the Copy phase: the execution fails with a report naming every
// object that was not backed up; the server comes back; the next run converges.
func TestServerGoneMidRun(t *testing.T) {
	srv, err := minio.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	e := newEnv(t, envOptions{server: srv, maxAttempts: 2, vars: map[string]string{"BATCH_SIZE": "100", "COPIER_CONCURRENCY": "4"}})
	const n = 2000
	e.putMany(e.source, n, func(i int) string { return fmt.Sprintf("gone/%05d", i) }, func(i int) []byte { return []byte(fmt.Sprint("payload ", i)) })

	var calls atomic.Int64
	back := make(chan struct{})
	var once sync.Once
	e.runner.Wrap = func(name string, h local.Function) local.Function {
		switch name {
		case localrun.CopierName:
			return funcHandler(func(ctx context.Context, payload []byte) ([]byte, error) {
				if calls.Add(1) == 12 { // after the first batches have finished (MaxConcurrency 8)
					once.Do(func() {
						srv.Kill() // gone, mid-Copy
						go func() {
							time.Sleep(3 * time.Second)
							if err := srv.Restart(context.Background()); err != nil {
								t.Error(err)
							}
							close(back)
						}()
					})
				}
				return h.Invoke(ctx, payload)
			})
		case localrun.ReporterName:
			return funcHandler(func(ctx context.Context, payload []byte) ([]byte, error) {
				<-back // the server is back by the time the run reports
				return h.Invoke(ctx, payload)
			})
		}
		return h
	}
	failed := e.backupRun(`{}`)
	if failed.Execution.Status != "FAILED" || failed.Report == nil || failed.Report.Failed == 0 || failed.Report.Copied == 0 {
		t.Fatalf("execution %s %s: %s\nreport: %.2000s", failed.Execution.Status, failed.Execution.Error, failed.Execution.Cause, failed.ReportJSON)
	}
	// Nothing is missing unnamed: every source key is in the backup or named in the report.
	named := map[string]bool{}
	for _, f := range failed.Report.Failures {
		named[f.Key] = true
	}
	inBackup := map[string]bool{}
	for _, k := range e.keys(e.backup) {
		inBackup[k] = true
	}
	for _, k := range e.keys(e.source) {
		if !inBackup[k] && !named[k] {
			t.Fatalf("%s is neither backed up nor named in the report", k)
		}
	}
	t.Logf("server gone: %s %s; %d copied, %d named as failed (%d batches)", failed.Execution.Status, failed.Execution.Error,
		failed.Report.Copied, failed.Report.Failed, failed.Report.FailedBatches)

	e.runner.Wrap = nil
	again := e.mustBackup(`{}`)
	if again.Report.Copied+int64(len(inBackup)) != n {
		t.Fatalf("second run copied %d, backup had %d of %d", again.Report.Copied, len(inBackup), n)
	}
	e.checkConverged()
}

type funcHandler func(ctx context.Context, payload []byte) ([]byte, error)

func (f funcHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// The copier dies part-way through a batch (as on a timeout or crash); the Map's retry completes
// the batch without a second version of the objects the first attempt had copied.
func TestCopierDiesMidBatch(t *testing.T) {
	var copies atomic.Int64
	kill := make(chan struct{})
	var once sync.Once
	countCopies := func(next s3.HTTPClient) s3.HTTPClient {
		return httpFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := next.Do(r)
			if err == nil && r.Method == http.MethodPut && r.Header.Get("X-Amz-Copy-Source") != "" && resp.StatusCode == 200 {
				if copies.Add(1) == 20 {
					once.Do(func() { close(kill) })
				}
			}
			return resp, err
		})
	}
	e := newEnv(t, envOptions{wrapHTTP: countCopies, vars: map[string]string{"BATCH_SIZE": "1000", "COPIER_CONCURRENCY": "2"}})
	const n = 60
	for i := range n {
		e.put(e.source, object{key: fmt.Sprintf("mid/%03d", i), body: fmt.Sprint(i)})
	}
	var attempts atomic.Int64
	e.runner.Wrap = func(name string, h local.Function) local.Function {
		if name != localrun.CopierName {
			return h
		}
		return funcHandler(func(ctx context.Context, payload []byte) ([]byte, error) {
			if attempts.Add(1) > 1 {
				return h.Invoke(ctx, payload)
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-kill:
					cancel() // the process dies: nothing after this point reaches S3
				case <-ctx.Done():
				}
			}()
			_, _ = h.Invoke(ctx, payload)
			return nil, messages.InvokeResponse_Error{Type: "Sandbox.Timedout", Message: "simulated: the function died after 20 copies"}
		})
	}
	res := e.mustBackup(`{}`)
	if attempts.Load() != 2 || res.Report.Copied != n || res.Report.AlreadyPresent < 20 {
		t.Fatalf("attempts %d; report: %s", attempts.Load(), res.ReportJSON)
	}
	e.checkConverged()
}

type httpFunc func(*http.Request) (*http.Response, error)

func (f httpFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// The source changes between listing and copying: an overwritten object is copied at its new
// content and reported so; a deleted one is named as vanished; nothing is silently wrong.
func TestSourceChangesDuringRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(e.source, object{key: "steady.txt", body: "steady"})
	e.put(e.source, object{key: "changing.txt", body: "old"})
	e.put(e.source, object{key: "vanishing.txt", body: "here for now"})
	var once sync.Once
	e.runner.Wrap = func(name string, h local.Function) local.Function {
		if name != localrun.CopierName {
			return h
		}
		return funcHandler(func(ctx context.Context, payload []byte) ([]byte, error) {
			once.Do(func() { // after listing, before copying
				e.put(e.source, object{key: "changing.txt", body: "brand new and longer"})
				e.del(e.source, "vanishing.txt")
			})
			return h.Invoke(ctx, payload)
		})
	}
	res := e.mustBackup(`{}`)
	r := res.Report
	if r.Copied != 2 || r.SourceChanged != 1 || r.Skipped != 1 || len(r.Skips) != 1 || r.Skips[0].Key != "vanishing.txt" || !strings.HasPrefix(r.Skips[0].Reason, "vanished") {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	if got := string(e.get(e.backup, "changing.txt")); got != "brand new and longer" {
		t.Fatalf("changing.txt backed up as %q", got)
	}
	e.runner.Wrap = nil
	idle := e.mustBackup(`{}`)
	if idle.Report.Copied != 0 || idle.Report.Deleted != 0 {
		t.Fatalf("next run: %s", idle.ReportJSON)
	}
	e.checkConverged()
}

// Odd objects — many metadata headers, tags, a multipart upload with both, zero bytes, long and
// encoded keys — are copied identically, and an idle run copies none of them again.
func TestOddObjectsCopiedIdentically(t *testing.T) {
	e := newEnv(t, envOptions{})
	meta := map[string]string{}
	for i := range 40 {
		meta[fmt.Sprintf("field-%02d", i)] = strings.Repeat("v", 20)
	}
	tags := "a=1&b=two&c=three%20words&d=x%2By&e=5&f=6&g=7&h=8&i=9&j=10" // MinIO refuses non-ASCII tag values
	e.put(e.source, object{key: "meta/many-headers.txt", body: "m", meta: meta, tags: tags, contentType: "text/x-custom", cacheControl: "no-store"})
	e.put(e.source, object{key: "meta/zero", body: ""})
	e.put(e.source, object{key: "enc/a b+c%d&e=f?g#h.txt", body: "encoded"})
	body := make([]byte, 12<<20)
	_, _ = rand.Read(body)
	etag := e.uploadInPartsWithTags(e.source, "multi/tagged.bin", body, 5<<20, map[string]string{"origin": "camera"}, "kind=raw&year=2026")
	res := e.mustBackup(`{}`)
	if res.Report.Copied != 4 {
		t.Fatalf("report: %s", res.ReportJSON)
	}
	for _, k := range []string{"meta/many-headers.txt", "meta/zero", "enc/a b+c%d&e=f?g#h.txt", "multi/tagged.bin"} {
		var src, bak map[string]any
		e.aws(&src, "s3api", "head-object", "--bucket", e.source, "--key", k)
		e.aws(&bak, "s3api", "head-object", "--bucket", e.backup, "--key", k)
		for _, f := range []string{"ETag", "ContentLength", "ContentType", "CacheControl", "Metadata"} {
			if fmt.Sprint(src[f]) != fmt.Sprint(bak[f]) {
				t.Errorf("%s: %s differs: %v vs %v", k, f, src[f], bak[f])
			}
		}
		var st, bt map[string]any
		e.aws(&st, "s3api", "get-object-tagging", "--bucket", e.source, "--key", k)
		e.aws(&bt, "s3api", "get-object-tagging", "--bucket", e.backup, "--key", k)
		sj, _ := json.Marshal(st["TagSet"])
		bj, _ := json.Marshal(bt["TagSet"])
		if string(sj) != string(bj) {
			t.Errorf("%s: tags differ: %s vs %s", k, sj, bj)
		}
	}
	if !strings.Contains(etag, "-3") {
		t.Fatalf("multipart source ETag %s", etag)
	}
	idle := e.mustBackup(`{}`)
	if idle.Report.Copied != 0 || idle.Report.Unchanged != 4 {
		t.Fatalf("idle: %s", idle.ReportJSON)
	}
	e.checkConverged()
}
