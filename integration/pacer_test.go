//go:build integration

package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/bucketvault/bucketvault/shared/pacer"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// A fresh backup bucket's prefix answers 503 SlowDown above a request rate (the fault proxy's
// token bucket). The same backup runs twice, in two environments behind two such proxies: once
// with the functions' client unpaced (fixed concurrency: only retries), once paced (the default:
// one adaptive pacer for the client). The paced run copies every object exactly once, with fewer
// retries and fewer SlowDowns than the unpaced one.
func TestPacerBacksOffOnSlowDown(t *testing.T) {
	const (
		n     = 400
		rate  = 100 // requests a second the proxy lets through
		burst = 20
	)
	type outcome struct {
		status                  string
		copied, failed          int64
		retries                 int64
		requests, overRate      int64
		elapsed                 time.Duration
		versions, wrongVersions int
		pacer                   pacer.Stats
	}
	run := func(t *testing.T, paced bool) outcome {
		proxy, url := newFaultProxy(t, server.Endpoint, 0, 0, 0, 40*time.Millisecond)
		proxy.limitRate(rate, burst)
		e := newEnv(t, envOptions{functionEndpoint: url, vars: map[string]string{"BATCH_SIZE": "100"}})
		e.putMany(e.source, n, func(i int) string { return fmt.Sprintf("pace/%04d", i) }, func(i int) []byte { return []byte(fmt.Sprint("body ", i)) })
		opts := s3client.Options{
			MaxConns: 64, Endpoint: url, Unpaced: !paced,
			Credentials: credentials.NewStaticCredentialsProvider(e.srv.AccessKey, e.srv.SecretKey, ""),
		}
		var p *pacer.Pacer
		if paced {
			p = pacer.New(pacer.Options{MaxLimit: opts.MaxConns})
			opts.Pacer = p
		}
		client, err := s3client.New(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		e.runner.S3 = client
		// Retries wait for real, a tenth of the policy's backoff (at most a second), the same in
		// both runs, so that the fixed-concurrency run backs off per request as it would on AWS.
		e.runner.Sleep = func(ctx context.Context, d time.Duration) error {
			timer := time.NewTimer(min(d/10, time.Second))
			defer timer.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
				return nil
			}
		}
		start := time.Now()
		res := e.backupRun(`{}`)
		o := outcome{status: string(res.Execution.Status), elapsed: time.Since(start), requests: proxy.requests.Load(), overRate: proxy.overRate.Load()}
		if res.Report == nil {
			t.Fatalf("no report: %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
		}
		o.copied, o.failed, o.retries = res.Report.Copied, res.Report.Failed, res.Report.Retries
		for _, v := range e.versions(e.backup) {
			o.versions++
			if v.data != 1 || v.markers != 0 {
				o.wrongVersions++
			}
		}
		if p != nil {
			o.pacer = p.Stats()
		}
		if paced {
			if !res.Succeeded() || o.copied != int64(n) || o.failed != 0 {
				t.Fatalf("paced run: %s, copied %d of %d, failed %d\nreport: %s", o.status, o.copied, n, o.failed, res.ReportJSON)
			}
			e.checkConverged() // every object exactly once: one version, no marker
		}
		return o
	}
	var fixed, paced outcome
	t.Run("fixed", func(t *testing.T) { fixed = run(t, false) })
	t.Run("paced", func(t *testing.T) { paced = run(t, true) })
	for _, o := range []struct {
		name string
		o    outcome
	}{{"fixed concurrency", fixed}, {"paced", paced}} {
		t.Logf("%s: %s in %v; copied %d failed %d, %d keys in the backup (%d not exactly one version); report retries %d; proxy %d requests, %d SlowDown above %d/s; pacer %+v",
			o.name, o.o.status, o.o.elapsed.Round(time.Millisecond), o.o.copied, o.o.failed, o.o.versions, o.o.wrongVersions, o.o.retries, o.o.requests, o.o.overRate, rate, o.o.pacer)
	}
	if paced.retries >= fixed.retries {
		t.Errorf("paced run retried %d times, fixed concurrency %d: want fewer", paced.retries, fixed.retries)
	}
	if paced.overRate >= fixed.overRate {
		t.Errorf("paced run got %d SlowDowns, fixed concurrency %d: want fewer", paced.overRate, fixed.overRate)
	}
	if paced.pacer.Decreases == 0 {
		t.Error("the pacer never slowed down")
	}
}
