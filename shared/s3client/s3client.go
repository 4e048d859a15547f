// Package s3client builds the S3 client every function uses, from the standard AWS environment:
// credentials, region, and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL for S3-compatible servers.
// Every attempt of every request of one client passes one adaptive pacer (package pacer), so that
// a throttling answer (503 SlowDown, 429) slows the whole client, not just the request that got it.
package s3client

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/pacer"
)

// Options tunes the client.
type Options struct {
	// MaxConns is the number of connections kept open to the S3 endpoint; set it to at least the
	// function's request concurrency. Zero means 64.
	MaxConns int
	// MaxAttempts bounds SDK-level attempts of one request. Zero means 8.
	MaxAttempts int
	// WrapHTTP, when set, wraps the HTTP client (fault-injection tests).
	WrapHTTP func(s3.HTTPClient) s3.HTTPClient
	// Endpoint, when set, replaces AWS_ENDPOINT_URL_S3 (path-style addressing).
	Endpoint string
	// Region, when set, replaces the environment's Region.
	Region string
	// Credentials, when set, replace the environment's credentials.
	Credentials aws.CredentialsProvider
	// Pacer, when set, paces the client's requests; nil means a new pacer of the client's own,
	// whose limit on requests in flight is lifted once it grows back to MaxConns.
	Pacer *pacer.Pacer
	// Unpaced turns pacing off, whatever Pacer is: requests start at once whatever the server answered (a fixed
	// concurrency, for comparison in tests and benchmarks).
	Unpaced bool
}

// New returns an S3 client configured from the environment. It uses the SDK's buildable HTTP
// client, so a custom CA bundle (AWS_CA_BUNDLE) applies to https endpoints and never prevents
// talking to a plain-http loopback server.
func New(ctx context.Context, opts Options) (*s3.Client, error) {
	if opts.MaxConns == 0 {
		opts.MaxConns = 64
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 8
	}
	p := opts.Pacer
	switch {
	case opts.Unpaced:
		p = nil
	case p == nil:
		p = pacer.New(pacer.Options{MaxLimit: opts.MaxConns})
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = opts.MaxConns * 2
		t.MaxIdleConnsPerHost = opts.MaxConns * 2
		t.IdleConnTimeout = 90 * time.Second
	})
	loadOpts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, append(loadOpts,
		config.WithRetryer(func() aws.Retryer {
			standard := retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = 20 * time.Second
				// Throttling is expected under load; the token bucket would turn a burst of 503
				// SlowDown into hard failures. The pacer slows down instead.
				o.RateLimiter = ratelimit.None
			})
			if p == nil {
				return standard
			}
			return pacedRetryer{RetryerV2: standard, p: p}
		}))...,
	)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if opts.Region != "" {
		cfg.Region = opts.Region
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		if opts.Endpoint != "" || customEndpoint() {
			// S3-compatible servers on an address have no virtual-host buckets.
			o.UsePathStyle = true
		}
		// Only compute request checksums when an operation requires them: S3-compatible servers
		// differ in trailing-checksum support, and CopyObject has no body to check.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		if opts.WrapHTTP != nil {
			o.HTTPClient = opts.WrapHTTP(o.HTTPClient)
		}
	}), nil
}

func customEndpoint() bool {
	return os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
}

// RetryCounter counts the retries the SDK makes for the requests it is attached to.
type RetryCounter struct{ n atomic.Int64 }

// Count returns the retries counted so far.
func (c *RetryCounter) Count() int64 { return c.n.Load() }

// Add records n retries made outside the SDK.
func (c *RetryCounter) Add(n int64) { c.n.Add(n) }

// Option returns a per-request option that counts the SDK's retries of that request into c.
func (c *RetryCounter) Option() func(*s3.Options) {
	return func(o *s3.Options) {
		o.Retryer = countingRetryer{Retryer: o.Retryer, c: c}
	}
}

// NoRetry returns a per-request option that makes exactly one attempt; callers that must not
// repeat a non-idempotent request (CopyObject into a versioned bucket) retry it themselves.
func NoRetry() func(*s3.Options) {
	return func(o *s3.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) }
}

// pacedRetryer lets each attempt start only when its pacer allows, and tells the pacer whether
// the attempt was throttled (fault.Throttled). The SDK asks for an attempt token before every
// attempt, its own retries and the single attempt of a NoRetry request alike; the per-request
// wrappers (NoRetry, RetryCounter.Option) pass the request on to it.
type pacedRetryer struct {
	aws.RetryerV2
	p *pacer.Pacer
}

func (r pacedRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	tok, err := r.p.Start(ctx)
	if err != nil {
		return nil, err
	}
	release, err := r.RetryerV2.GetAttemptToken(ctx)
	if err != nil {
		tok.Done(false)
		return nil, err
	}
	return func(opErr error) error {
		tok.Done(fault.Throttled(opErr))
		return release(opErr)
	}, nil
}

type countingRetryer struct {
	aws.Retryer
	c *RetryCounter
}

var _ aws.RetryerV2 = countingRetryer{}

func (r countingRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if v2, ok := r.Retryer.(aws.RetryerV2); ok {
		return v2.GetAttemptToken(ctx)
	}
	return r.GetInitialToken(), nil
}

func (r countingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.Retryer.RetryDelay(attempt, err)
	if derr == nil {
		r.c.n.Add(1)
	}
	return d, derr
}
