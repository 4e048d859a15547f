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
			key, body := listingKey(i), []byte(fmt.Sprintf("object %d", i))
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
	if err := b.copyWhileListing(ctx, src, bak, endpoint, ranged, proxy); err != nil {
		return err
	}
	return removeBucket(ctx, b.s3, bak)
}

// listingKey is key number i of the listing set, in source and backup.
func listingKey(i int) string { return fmt.Sprintf("d%02d/obj-%07d", i%100, i) }

// listingChangedPercent of the keys change before each run of the copy-while-listing part.
const listingChangedPercent = 5

// copyWhileListing measures runs that find changes, with the LIST delay: before each run the
// same listingChangedPercent of the keys, spread over the key space, get new contents in the
// source (not measured). The sequential lister copies once the whole listing is done; in ranges
// each range's child copies its batches as soon as the range is listed, while others still list,
// so the ranged run should take less than its idle time plus the copies' time.
func (b *bench) copyWhileListing(ctx context.Context, src, bak, endpoint, ranged string, proxy *delayProxy) error {
	c := b.cfg
	n := c.listing
	every := 100 / listingChangedPercent
	proxy.delay.Store(int64(c.listingDelay))
	round := 0
	change := func() (want, error) {
		round++
		w := want{listed: int64(n)}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(uploadConcurrency)
		for i := 0; i < n; i += every {
			body := []byte(fmt.Sprintf("object %d", i))
			w.copied++
			w.bytes += int64(len(body))
			g.Go(func() error { return put(gctx, b.s3, src, listingKey(i), body, round) })
		}
		w.unchanged = w.listed - w.copied
		return w, g.Wait()
	}
	fmt.Fprintf(logw, "== copying while listing: %d%% of the %d keys changed before each run, %s per LIST\n", listingChangedPercent, n, c.listingDelay)
	for rep := 1; rep <= c.reps; rep++ {
		runs := []struct {
			id    string
			extra []string
		}{
			{"changed-sequential", []string{endpoint, "LISTER_RANGES=0"}},
			{"changed-ranged", []string{endpoint, ranged}},
		}
		if rep%2 == 0 {
			runs[0], runs[1] = runs[1], runs[0]
		}
		for _, run := range runs {
			w, err := change()
			if err != nil {
				return err
			}
			r, err := b.runLocal(ctx, src, bak, run.extra, nil, w)
			if err != nil {
				return err
			}
			id := fmt.Sprintf("listing-%s-%s", run.id, c.listingDelay)
			b.res.add(id, "listing", int64(n), w.bytes, r.measurement)
			fmt.Fprintf(logw, "   %s rep %d: %s (%d copied, %d lister invocations)\n", id, rep, r.wall.Round(time.Millisecond), r.report.Copied, r.report.ListInvocations)
		}
	}
	d := c.listingDelay
	med := func(id string) float64 { return median(b.res.find(fmt.Sprintf("listing-%s-%s", id, d)).Seconds) }
	seqIdle, rngIdle, seqChanged, rngChanged := med("sequential"), med("ranged"), med("changed-sequential"), med("changed-ranged")
	detail := fmt.Sprintf("with %d%% changed: sequential %.2f s (%.2f s idle: +%.2f s), ranged %.2f s (%.2f s idle: +%.2f s), %.1f× faster (medians of %d)",
		listingChangedPercent, seqChanged, seqIdle, seqChanged-seqIdle, rngChanged, rngIdle, rngChanged-rngIdle, seqChanged/rngChanged, c.reps)
	b.res.detail(fmt.Sprintf("listing-changed-ranged-%s", d), detail)
	fmt.Fprintf(logw, "   %s\n", detail)
	return nil
}
