package main

import (
	"context"
	"fmt"
	"github.com/bucketvault/bucketvault/shared/lister"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Listing at scale (issue 15): an idle run over listingObjects keys in source and backup, every
// ListObjectsV2 request delayed by listingDelay through a local proxy (AWS's page time), the
// lister in key-space ranges against the sequential lister (LISTER_RANGES=0), interleaved in the
// same run; then the same without the delay.

// delayProxy forwards every request to MinIO, holding each ListObjectsV2 request (a GET with
// list-type) for delay first. The Host header is kept, so the client's signature still holds.
type delayProxy struct {
	srv   *http.Server
	url   string
	delay atomic.Int64 // nanoseconds
}

func startDelayProxy(target string, delay time.Duration) (*delayProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second}
	p := &delayProxy{url: "http://" + l.Addr().String()}
	p.delay.Store(int64(delay))
	p.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(p.delay.Load()); d > 0 && r.Method == http.MethodGet && r.URL.Query().Has("list-type") {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *delayProxy) close() { _ = p.srv.Close() }

// listing runs the listing-at-scale scenario.
func (b *bench) listing(ctx context.Context) error {
	c := b.cfg
	n := c.listing
	src, bak := "src-listing", "bak-listing"
	fmt.Fprintf(logw, "== listing at scale: %d keys in source and backup (not measured: upload)\n", n)
	if err := createBucket(ctx, b.s3, src, false); err != nil {
		return err
	}
	if err := createBucket(ctx, b.s3, bak, true); err != nil {
		return err
	}
	// The same content on both sides: every key is unchanged, the run lists and copies nothing.
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			key, body := fmt.Sprintf("d%02d/obj-%07d", i%100, i), []byte(fmt.Sprintf("object %d", i))
			if err := put(gctx, b.s3, src, key, body, -1); err != nil {
				return err
			}
			return put(gctx, b.s3, bak, key, body, -1)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Fprintf(logw, "   uploaded %d objects twice in %s\n", n, since(start))
	proxy, err := startDelayProxy(b.srv.Endpoint, c.listingDelay)
	if err != nil {
		return err
	}
	defer proxy.close()
	idle := want{listed: int64(n), unchanged: int64(n)}
	endpoint := "AWS_ENDPOINT_URL_S3=" + proxy.url
	// The ranged runs are what a deployment gets by default (LISTER_RANGES=auto): a first run in
	// one sequence records the source's size; the next, seeing 100,000 keys or more, probes the
	// key space in ranges and leaves hints; the measured ones split at the hints (a range per
	// lister). The sequential runs turn ranges off (LISTER_RANGES=0), which leaves the hints.
	ranged := "LISTER_RANGES=auto"
	if n < lister.DefaultAutoRangeKeys {
		ranged = fmt.Sprintf("LISTER_RANGES=%d", lister.RecommendedRanges) // auto would not range
	}
	if _, err := b.runLocal(ctx, src, bak, []string{endpoint, "LISTER_RANGES=0"}, nil, idle); err != nil {
		return err
	}
	r, err := b.runLocal(ctx, src, bak, []string{endpoint, ranged}, nil, idle)
	if err != nil {
		return err
	}
	if r.report.ListInvocations < 3 {
		return fmt.Errorf("the first %s run was not listed in ranges (%d lister invocations)", ranged, r.report.ListInvocations)
	}
	fmt.Fprintf(logw, "   first ranged run (probing, %s per LIST): %s\n", c.listingDelay, r.wall.Round(time.Millisecond))
	b.res.add(fmt.Sprintf("listing-ranged-probing-%s", c.listingDelay), "listing", int64(n), 0, r.measurement)
	for _, delay := range []time.Duration{c.listingDelay, 0} {
		proxy.delay.Store(int64(delay))
		for rep := 1; rep <= c.reps; rep++ {
			runs := []struct {
				id    string
				extra []string
			}{
				{fmt.Sprintf("listing-sequential-%s", delay), []string{endpoint, "LISTER_RANGES=0"}},
				{fmt.Sprintf("listing-ranged-%s", delay), []string{endpoint, ranged}},
			}
			if rep%2 == 0 {
				runs[0], runs[1] = runs[1], runs[0]
			}
			for _, run := range runs {
				r, err := b.runLocal(ctx, src, bak, run.extra, nil, idle)
				if err != nil {
					return err
				}
				b.res.add(run.id, "listing", int64(n), 0, r.measurement)
				fmt.Fprintf(logw, "   %s rep %d: %s (%d lister invocations)\n", run.id, rep, r.wall.Round(time.Millisecond), r.report.ListInvocations)
			}
		}
		seq, rng := b.res.find(fmt.Sprintf("listing-sequential-%s", delay)), b.res.find(fmt.Sprintf("listing-ranged-%s", delay))
		ms, mr := median(seq.Seconds), median(rng.Seconds)
		// What this machine allows: the ranged run's CPU (bucketvault's and the server's) spread
		// over every core is the least time it can take, however many ranges list at once.
		var cpu []float64
		for i := range rng.ClientCPU {
			cpu = append(cpu, rng.ClientCPU[i]+rng.ServerCPU[i])
		}
		floor := median(cpu) / float64(runtime.NumCPU())
		d := fmt.Sprintf("ranged %.2f s vs sequential %.2f s (medians of %d): %.1f× faster; the ranged run's CPU over %d cores is %.2f s, so at most %.1f× on this machine",
			mr, ms, c.reps, ms/mr, runtime.NumCPU(), floor, ms/floor)
		b.res.detail(rng.ID, d)
		fmt.Fprintf(logw, "   %s per LIST: %s\n", delay, d)
	}
	return removeBucket(ctx, b.s3, bak)
}
