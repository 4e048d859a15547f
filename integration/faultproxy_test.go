//go:build integration

package integration

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy sits between the functions and MinIO and misbehaves the way real networks and real
// S3 do: a share of requests gets 503 SlowDown, a share has its connection reset before the
// server sees it, a share has the server act and then the connection reset before the answer
// (the response is lost), and every request gets some latency. With limitRate it also answers
// 503 SlowDown to every request above a rate, as S3 does while it scales a prefix.
type faultProxy struct {
	target                          *url.URL
	slowDown, resetBefore, lostResp float64
	maxLatency                      time.Duration
	transport                       *http.Transport

	mu  sync.Mutex
	rng *rand.Rand
	// A token bucket: rate tokens a second up to burst; a request that finds none is answered
	// SlowDown. rate 0: no limit.
	rate, burst, tokens float64
	refilled            time.Time

	requests, slowDowns, resetsBefore, lostResponses atomic.Int64
	// overRate counts the SlowDowns answered for going above the rate (also in slowDowns).
	overRate atomic.Int64
}

// limitRate makes the proxy answer SlowDown to requests above perSecond, bursts of up to burst
// requests allowed.
func (p *faultProxy) limitRate(perSecond float64, burst int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate, p.burst, p.tokens, p.refilled = perSecond, float64(burst), float64(burst), time.Now()
}

// admit takes a token from the bucket; false when the request is above the rate.
func (p *faultProxy) admit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rate == 0 {
		return true
	}
	now := time.Now()
	p.tokens = min(p.burst, p.tokens+now.Sub(p.refilled).Seconds()*p.rate)
	p.refilled = now
	if p.tokens < 1 {
		return false
	}
	p.tokens--
	return true
}

func newFaultProxy(t *testing.T, target string, slowDown, resetBefore, lostResp float64, maxLatency time.Duration) (*faultProxy, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		target: u, slowDown: slowDown, resetBefore: resetBefore, lostResp: lostResp, maxLatency: maxLatency,
		transport: &http.Transport{MaxIdleConnsPerHost: 128},
		rng:       rand.New(rand.NewPCG(1, 2)),
	}
	srv := httptest.NewServer(p) // loopback only
	t.Cleanup(func() { srv.Close(); p.transport.CloseIdleConnections() })
	return p, srv.URL
}

func (p *faultProxy) roll() (float64, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64(), time.Duration(p.rng.Int64N(int64(p.maxLatency) + 1))
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	roll, latency := p.roll()
	time.Sleep(latency)
	admitted := p.admit()
	if !admitted {
		p.overRate.Add(1)
	}
	switch {
	case roll < p.slowDown || !admitted:
		p.slowDowns.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		return
	case roll < p.slowDown+p.resetBefore:
		p.resetsBefore.Add(1)
		reset(w)
		return
	}
	resp, err := p.forward(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if roll < p.slowDown+p.resetBefore+p.lostResp {
		p.lostResponses.Add(1)
		_, _ = io.Copy(io.Discard, resp.Body) // the server has acted; the client never hears of it
		reset(w)
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// forward sends the request to MinIO unchanged, keeping the Host header the client signed.
func (p *faultProxy) forward(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = r.Host
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	return p.transport.RoundTrip(out)
}

// reset closes the client's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
