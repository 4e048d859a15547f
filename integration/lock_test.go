//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/runlock"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// gateCopies holds the first copy (a PUT with x-amz-copy-source) until open is closed, closing
// started when it arrives, so that a test can start a second run while the first is copying.
// Every other request passes.
type gateCopies struct {
	next    s3.HTTPClient
	started chan struct{}
	once    *sync.Once
	open    chan struct{}
}

func (g gateCopies) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut && req.Header.Get("X-Amz-Copy-Source") != "" {
		first := false
		g.once.Do(func() { first = true; close(g.started) })
		if first {
			<-g.open
		}
	}
	return g.next.Do(req)
}

// Two backups of the same buckets at once: the second finds the first's lock, copies nothing and
// fails BackupAlreadyRunning naming it; the first completes; no object gets two versions. Once the
// first has written its report the lock is free; a lock left by a run that was killed (no report)
// holds until it expires, and is then taken over.
func TestOneBackupAtATime(t *testing.T) {
	gate := gateCopies{started: make(chan struct{}), once: &sync.Once{}, open: make(chan struct{})}
	e := newEnv(t, envOptions{wrapHTTP: func(next s3.HTTPClient) s3.HTTPClient { gate.next = next; return gate }})
	keys := []string{"a.txt", "b/c.txt", "d.txt"}
	for _, k := range keys {
		e.putBytes(e.source, k, []byte("content of "+k))
	}

	first := make(chan *localrun.Result)
	go func() {
		name := localrun.NewExecutionName(time.Now())
		res, err := e.runner.Backup(e.ctx, name, []byte(`{}`))
		if err != nil {
			t.Errorf("first run: %v", err)
		}
		first <- res
	}()
	<-gate.started // the first run holds the lock and is copying
	second := e.backupRun(`{}`)
	close(gate.open)
	one := <-first
	if one == nil || !one.Succeeded() || one.Report.Copied != int64(len(keys)) {
		t.Fatalf("first run: %+v", one)
	}
	if second.Execution.Status != "FAILED" || second.Execution.Error != "BackupAlreadyRunning" ||
		!strings.Contains(second.Execution.Cause, "execution "+one.Execution.Name+" has been backing up") {
		t.Fatalf("second run: %s %s: %s", second.Execution.Status, second.Execution.Error, second.Execution.Cause)
	}
	if second.Report == nil || second.Report.Copied != 0 || second.Report.Error != "BackupAlreadyRunning" {
		t.Fatalf("second run's report: %s", second.ReportJSON)
	}
	for _, k := range keys {
		if v := e.versions(e.backup)[k]; v == nil || v.data != 1 {
			t.Fatalf("%s: %+v, want exactly one version", k, v)
		}
	}

	// The first run wrote its report: the lock is free.
	third := e.mustBackup(`{}`)
	if third.Report.Copied != 0 || third.Report.Unchanged != int64(len(keys)) {
		t.Fatalf("third run: %s", third.ReportJSON)
	}

	// A run killed without a report leaves its lock: it holds until it expires.
	killed := func(expires time.Time) {
		t.Helper()
		body, _ := json.Marshal(runlock.Lock{Execution: "backup-killed", AcquiredAt: expires.Add(-runlock.DefaultTTL), ExpiresAt: expires})
		if _, err := e.s3.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.run), Key: aws.String(runlock.Key(e.source, e.backup)), Body: strings.NewReader(string(body))}); err != nil {
			t.Fatal(err)
		}
	}
	killed(time.Now().Add(time.Hour))
	if res := e.backupRun(`{}`); res.Execution.Error != "BackupAlreadyRunning" || !strings.Contains(res.Execution.Cause, "backup-killed") {
		t.Fatalf("a run with an unexpired lock of a killed run: %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	killed(time.Now().Add(-time.Minute))
	e.mustBackup(`{}`)
	// A dry run takes no lock.
	killed(time.Now().Add(time.Hour))
	if res := e.mustBackup(`{"dryRun": true}`); res.Report.Unchanged != int64(len(keys)) {
		t.Fatalf("dry run: %s", res.ReportJSON)
	}
}
