package s3client

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/pacer"
)

// fakeServer answers each request with the next status of its script (200 once it runs out):
// 503 and 429 with S3's SlowDown body, except to a HEAD, which gets no body.
type fakeServer struct {
	mu       sync.Mutex
	script   []int
	requests int
}

func (f *fakeServer) Do(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	status := http.StatusOK
	if f.requests < len(f.script) {
		status = f.script[f.requests]
	}
	f.requests++
	f.mu.Unlock()
	body := ""
	h := http.Header{}
	switch {
	case status != http.StatusOK && r.Method != http.MethodHead:
		body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`
		h.Set("Content-Type", "application/xml")
	case status == http.StatusOK && r.Method == http.MethodPut:
		body = `<?xml version="1.0" encoding="UTF-8"?><CopyObjectResult><ETag>"e"</ETag></CopyObjectResult>`
		h.Set("Content-Type", "application/xml")
	case status == http.StatusOK:
		h.Set("ETag", `"e"`)
		h.Set("Content-Length", "0")
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

func TestEveryAttemptPassesThePacer(t *testing.T) {
	quick := func(o *s3.Options) { o.Retryer = retry.AddWithMaxBackoffDelay(o.Retryer, time.Millisecond) }
	head := func(c *s3.Client, opts ...func(*s3.Options)) error {
		_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}, opts...)
		return err
	}
	cp := func(c *s3.Client, opts ...func(*s3.Options)) error {
		_, err := c.CopyObject(context.Background(), &s3.CopyObjectInput{Bucket: aws.String("b"), Key: aws.String("k"), CopySource: aws.String("s/k")}, opts...)
		return err
	}
	tests := []struct {
		name    string
		script  []int
		op      func(*s3.Client, ...func(*s3.Options)) error
		opts    func(*RetryCounter) []func(*s3.Options)
		wantErr bool
		// the pacer's counts
		wantStarted, wantThrottled, wantDecreases int64
		wantRetries                               int64
	}{
		{"HEAD 503 without a body, retried by the SDK", []int{503, 200}, head,
			func(c *RetryCounter) []func(*s3.Options) { return []func(*s3.Options){quick, c.Option()} }, false, 2, 1, 1, 1},
		{"CopyObject SlowDown, not retried (NoRetry), counted", []int{503}, cp,
			func(c *RetryCounter) []func(*s3.Options) { return []func(*s3.Options){c.Option(), NoRetry()} }, true, 1, 1, 1, 0},
		{"429 twice then success", []int{429, 429, 200}, cp,
			func(c *RetryCounter) []func(*s3.Options) { return []func(*s3.Options){quick, c.Option()} }, false, 3, 2, 2, 2},
		{"success", nil, head,
			func(c *RetryCounter) []func(*s3.Options) { return nil }, false, 1, 0, 0, 0},
		{"500 is not a throttle", []int{500}, head,
			func(c *RetryCounter) []func(*s3.Options) { return []func(*s3.Options){NoRetry()} }, true, 1, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeServer{script: tt.script}
			p := pacer.New(pacer.Options{Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }})
			c, err := New(context.Background(), Options{
				Endpoint: "http://127.0.0.1:9", Pacer: p,
				Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
				WrapHTTP:    func(s3.HTTPClient) s3.HTTPClient { return srv },
			})
			if err != nil {
				t.Fatal(err)
			}
			counter := &RetryCounter{}
			err = tt.op(c, tt.opts(counter)...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			s := p.Stats()
			if s.Started != tt.wantStarted || s.Throttled != tt.wantThrottled || int64(srv.requests) != tt.wantStarted {
				t.Errorf("pacer %+v, server %d requests; want %d started, %d throttled", s, srv.requests, tt.wantStarted, tt.wantThrottled)
			}
			if s.Decreases != tt.wantDecreases {
				t.Errorf("%d decreases, want %d (each throttled attempt started after the previous decrease)", s.Decreases, tt.wantDecreases)
			}
			if counter.Count() != tt.wantRetries {
				t.Errorf("retries %d, want %d", counter.Count(), tt.wantRetries)
			}
		})
	}
}

func TestUnpacedClientHasNoPacer(t *testing.T) {
	srv := &fakeServer{script: []int{503}}
	p := pacer.New(pacer.Options{})
	c, err := New(context.Background(), Options{
		Endpoint: "http://127.0.0.1:9", Pacer: p, Unpaced: true,
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		WrapHTTP:    func(s3.HTTPClient) s3.HTTPClient { return srv },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("k")}, NoRetry())
	if s := p.Stats(); s.Started != 0 || srv.requests != 1 {
		t.Errorf("pacer %+v, server %d requests: an unpaced client must not use a pacer", s, srv.requests)
	}
}
