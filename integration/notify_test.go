//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/report"
)

// hooks is a test's notification listener: it records every request, answers /refuse with 500
// and holds /hang until the client gives up.
type hooks struct {
	mu       sync.Mutex
	requests []hookRequest
}

type hookRequest struct {
	method, path string
	body         []byte
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.requests = append(h.requests, hookRequest{r.Method, r.URL.Path, body})
	h.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/refuse"):
		http.Error(w, "refused", http.StatusInternalServerError)
	case strings.HasPrefix(r.URL.Path, "/hang"):
		<-r.Context().Done()
	}
}

func (h *hooks) to(path string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.requests {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// A run POSTs one JSON summary that matches its report, pings the heartbeat (at /fail when it
// failed), and a target that refuses or hangs changes nothing but its own line in the report.
func TestNotifyWebhook(t *testing.T) {
	cases := []struct {
		name        string
		unversioned bool
		wantStatus  string
		wantError   string
		wantPing    string
	}{
		{name: "success", wantStatus: report.Succeeded, wantPing: "/ping/check-SECRET"},
		{name: "failure", unversioned: true, wantStatus: report.Failed, wantError: "BackupNotVersioned", wantPing: "/ping/check-SECRET/fail"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &hooks{}
			srv := httptest.NewServer(h)
			defer srv.Close()
			e := newEnv(t, envOptions{vars: map[string]string{
				"NOTIFY_URLS":           srv.URL + "/hook/token-SECRET," + srv.URL + "/refuse/token-SECRET," + srv.URL + "/hang",
				"HEARTBEAT_URL":         srv.URL + "/ping/check-SECRET",
				"NOTIFY_BUDGET_SECONDS": "3",
			}})
			if tc.unversioned {
				other := e.backup + "-plain"
				if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(other)}); err != nil {
					t.Fatal(err)
				}
				e.runner.Env["BACKUP_BUCKET"] = other
			}
			e.put(e.source, object{key: "a.txt", body: "alpha"})
			e.put(e.source, object{key: "dir/b.txt", body: "bravo!"})
			res := e.backupRun(`{}`)
			if res.Execution.Status != tc.wantStatus || res.Execution.Error != tc.wantError || res.Report == nil {
				t.Fatalf("execution %s %s: %s; want %s %s (report %s)", res.Execution.Status, res.Execution.Error, res.Execution.Cause, tc.wantStatus, tc.wantError, res.ReportJSON)
			}
			rep := res.Report
			posts := h.to("/hook/token-SECRET")
			if len(posts) != 1 || posts[0].method != http.MethodPost {
				t.Fatalf("webhook got %d requests, want one POST: %+v", len(posts), posts)
			}
			var s notify.Summary
			if err := json.Unmarshal(posts[0].body, &s); err != nil {
				t.Fatalf("summary %s: %v", posts[0].body, err)
			}
			t.Logf("subject: %s", s.Subject)
			t.Logf("text:\n%s", s.Text())
			if s.Status != rep.Status || s.Error != rep.Error || s.Execution != rep.Execution || s.Kind != "backup" ||
				s.Counts.Copied != rep.Copied || s.Counts.Deleted != rep.Deleted || s.Counts.Failed != rep.Failed || s.Counts.Listed != rep.Listed ||
				s.Bytes != rep.BytesCopied || s.Cost.USD != rep.Cost.USD || s.Cost.Requests != rep.Cost.Requests ||
				s.Links.Report != "s3://"+e.run+"/"+rep.ReportKey || s.StartedAt != rep.StartedAt || s.FinishedAt != rep.FinishedAt {
				t.Errorf("summary does not match the report:\nsummary %s\nreport %s", posts[0].body, res.ReportJSON)
			}
			if tc.wantStatus == report.Succeeded && (rep.Copied != 2 || s.Bytes != 11 || !strings.HasPrefix(s.Subject, "✔ backup of "+e.source+": 2 copied, 0 deleted, 0 failed")) {
				t.Errorf("success summary: copied %d, bytes %d, subject %q", rep.Copied, s.Bytes, s.Subject)
			}
			if tc.wantStatus == report.Failed && !strings.HasPrefix(s.Subject, "✘ backup of "+e.source+": BackupNotVersioned") {
				t.Errorf("failure subject %q", s.Subject)
			}
			if pings := h.to(tc.wantPing); len(pings) != 1 || pings[0].method != http.MethodGet {
				t.Errorf("heartbeat %s: %+v (all: %+v)", tc.wantPing, pings, h.requests)
			}
			if rep.Cost.StateTransitions == 0 || rep.Cost.USD <= 0 || (tc.wantStatus == report.Succeeded && rep.Cost.Requests != report.Requests{List: 2, Put: 2 + 2 + 4, Get: 2 + 2}) {
				t.Errorf("report cost %+v", rep.Cost)
			}
			if len(rep.Notifications) != 4 {
				t.Fatalf("notifications %+v, want 4", rep.Notifications)
			}
			n := rep.Notifications
			if n[0].Target != srv.URL+"/… (NOTIFY_URLS #1)" || n[0].Status != report.NotificationSent ||
				n[1].Target != srv.URL+"/… (NOTIFY_URLS #2)" || n[1].Status != report.NotificationError || !strings.Contains(n[1].Error, "HTTP 500: refused") ||
				n[2].Target != srv.URL+"/… (NOTIFY_URLS #3)" || n[2].Status != report.NotificationError || !strings.Contains(n[2].Error, "deadline exceeded") ||
				n[3].Target != srv.URL+"/…" || n[3].Kind != notify.KindHeartbeat || n[3].Status != report.NotificationSent {
				t.Errorf("notifications %+v: want the hook sent, /refuse HTTP 500, /hang past its deadline, the heartbeat sent", n)
			}
			if strings.Contains(string(res.ReportJSON), "SECRET") {
				t.Errorf("report.json holds a target's secret: %s", res.ReportJSON)
			}
		})
	}
}

// goawsBinary is the pinned goaws the Makefile builds (GOAWS_BIN), or an error saying how to get it.
func goawsBinary() (string, error) {
	path := os.Getenv("GOAWS_BIN")
	if path == "" {
		path = filepath.Join("..", ".cache", "goaws-v0.4.5", "goaws")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("goaws not found at %s (make goaws): %w", path, err)
	}
	return path, nil
}

// The summary reaches an SNS topic (goaws, a real SNS/SQS server) with its subject, text and
// String attributes; a queue subscribed with the filter policy {"status": ["FAILED"]} gets the
// failed run only, one subscribed without a policy gets both.
func TestNotifySNS(t *testing.T) {
	bin, err := goawsBinary()
	if err != nil {
		if required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`Local:
  Host: 127.0.0.1
  Port: "%d"
  Region: us-east-1
  AccountId: "100010001000"
  LogToFile: false
  QueueAttributeDefaults:
    VisibilityTimeout: 30
    ReceiveMessageWaitTimeSeconds: 0
    MaximumMessageSize: 262144
  Queues:
    - Name: all-runs
    - Name: failures-only
  Topics:
    - Name: bucketvault-runs
      Subscriptions:
        - QueueName: all-runs
          Raw: true
        - QueueName: failures-only
          Raw: true
          FilterPolicy: '{"status": ["FAILED"]}'
`, port)
	if err := os.WriteFile(filepath.Join(dir, "goaws.yaml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-config", filepath.Join(dir, "goaws.yaml"))
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	ready := false
	for range 100 {
		if resp, err := http.PostForm(endpoint+"/", url.Values{"Action": {"ListTopics"}}); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = true
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // readiness polling, not an assertion
	}
	if !ready {
		t.Fatalf("goaws did not answer on %s", endpoint)
	}
	t.Setenv("AWS_ENDPOINT_URL_SNS", endpoint)
	topic := "arn:aws:sns:us-east-1:100010001000:bucketvault-runs"

	e := newEnv(t, envOptions{vars: map[string]string{"NOTIFY_TOPIC_ARN": topic}})
	e.put(e.source, object{key: "a.txt", body: "alpha"})
	ok := e.mustBackup(`{}`)
	plain := e.backup + "-plain"
	if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(plain)}); err != nil {
		t.Fatal(err)
	}
	e.runner.Env["BACKUP_BUCKET"] = plain
	bad := e.backupRun(`{}`)
	if bad.Succeeded() || bad.Report == nil {
		t.Fatalf("run into an unversioned bucket: %s", bad.Execution.Status)
	}
	for _, res := range []*struct{ r *report.Report }{{ok.Report}, {bad.Report}} {
		if n := res.r.Notifications; len(n) != 1 || n[0].Kind != notify.KindSNS || n[0].Status != report.NotificationSent || n[0].Target != topic {
			t.Errorf("%s notifications %+v", res.r.Execution, n)
		}
	}

	all := receive(t, endpoint, "all-runs")
	failures := receive(t, endpoint, "failures-only")
	if len(all) != 2 || len(failures) != 1 {
		t.Fatalf("all-runs got %d messages (want 2), failures-only %d (want 1)", len(all), len(failures))
	}
	wantAttrs := []map[string]string{
		{"status": "SUCCEEDED", "error": "none", "kind": "backup"},
		{"status": "FAILED", "error": "BackupNotVersioned", "kind": "backup"},
	}
	for i, m := range all {
		if fmt.Sprint(m.attrs) != fmt.Sprint(wantAttrs[i]) {
			t.Errorf("message %d attributes %v, want %v", i, m.attrs, wantAttrs[i])
		}
	}
	if !strings.HasPrefix(all[0].body, "✔ backup of "+e.source+": 1 copied") || !strings.Contains(all[0].body, "Report:    s3://"+e.run+"/"+ok.Report.ReportKey) {
		t.Errorf("success message:\n%s", all[0].body)
	}
	if fmt.Sprint(failures[0].attrs) != fmt.Sprint(wantAttrs[1]) || !strings.Contains(failures[0].body, "FAILED: BackupNotVersioned") {
		t.Errorf("filtered message %v:\n%s", failures[0].attrs, failures[0].body)
	}
}

type sqsMessage struct {
	body  string
	attrs map[string]string
}

// receive reads a goaws queue through the SQS query API (goaws v0.4.5 speaks no JSON protocol,
// which current SDK SQS clients use).
func receive(t *testing.T, endpoint, queue string) []sqsMessage {
	t.Helper()
	resp, err := http.PostForm(endpoint+"/", url.Values{
		"Action": {"ReceiveMessage"}, "QueueUrl": {endpoint + "/100010001000/" + queue},
		"MaxNumberOfMessages": {"10"}, "MessageAttributeName.1": {"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Messages []struct {
			Body  string `xml:"Body"`
			Attrs []struct {
				Name  string `xml:"Name"`
				Value string `xml:"Value>StringValue"`
			} `xml:"MessageAttribute"`
		} `xml:"ReceiveMessageResult>Message"`
	}
	data, _ := io.ReadAll(resp.Body)
	if err := xml.Unmarshal(data, &out); err != nil {
		t.Fatalf("receive %s: %v: %s", queue, err, data)
	}
	var msgs []sqsMessage
	for _, m := range out.Messages {
		a := map[string]string{}
		for _, at := range m.Attrs {
			a[at.Name] = at.Value
		}
		msgs = append(msgs, sqsMessage{m.Body, a})
	}
	return msgs
}
