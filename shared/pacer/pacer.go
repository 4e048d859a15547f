// Package pacer paces the requests of one S3 client adaptively: after a throttling answer (503
// SlowDown, 429) it lets fewer requests be in flight and spaces their starts, and after successes
// it lets more through again, as rclone's lib/pacer does for its backends (the sleep between calls
// doubles on a throttle and decays on success) combined with an additive-increase,
// multiplicative-decrease limit on the requests in flight. Without throttling it changes nothing:
// no limit, no wait.
package pacer

import (
	"context"
	"sync"
	"time"
)

// Defaults of the Options.
const (
	DefaultMinSleep = 10 * time.Millisecond // the first spacing between starts after a throttle
	DefaultMaxSleep = 2 * time.Second       // the longest spacing between starts
	DefaultMaxLimit = 1024                  // a limit grown back to this lifts the limit altogether
)

// Options tune a Pacer; zero values mean the defaults.
type Options struct {
	// MinSleep is the spacing between request starts right after a first throttle; on success a
	// spacing that decays below it becomes none (DefaultMinSleep).
	MinSleep time.Duration
	// MaxSleep caps the spacing between request starts (DefaultMaxSleep).
	MaxSleep time.Duration
	// MaxLimit is the limit on requests in flight above which the pacer stops limiting them: a
	// limit that grows back to it is lifted (DefaultMaxLimit).
	MaxLimit int
	// Now tells the time; nil means time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends; nil sleeps for real.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Stats is what a Pacer has done so far.
type Stats struct {
	// Started counts the requests let through; Throttled the throttling answers among them.
	Started, Throttled int64
	// Decreases counts the times the pacer slowed down (throttles of requests that started
	// after the previous decrease; the others saw the same overload).
	Decreases int64
	// Limit is the current limit on requests in flight, 0 for none; Sleep the current spacing
	// between starts.
	Limit int
	Sleep time.Duration
}

// Pacer lets requests start. Make one with New; it is safe for concurrent use.
type Pacer struct {
	opts Options

	mu        sync.Mutex
	limit     int           // requests in flight allowed; 0: no limit
	inFlight  int           // requests started and not done
	sleep     time.Duration // spacing between starts; 0: none
	next      time.Time     // earliest start of the next request
	epoch     uint64        // incremented at each decrease
	successes int           // successes since the limit last grew
	changed   chan struct{} // closed and replaced when a request is done
	stats     Stats
}

// New returns a Pacer with opts' zero values set to the defaults.
func New(opts Options) *Pacer {
	if opts.MinSleep <= 0 {
		opts.MinSleep = DefaultMinSleep
	}
	if opts.MaxSleep <= 0 {
		opts.MaxSleep = DefaultMaxSleep
	}
	opts.MaxSleep = max(opts.MaxSleep, opts.MinSleep)
	if opts.MaxLimit <= 0 {
		opts.MaxLimit = DefaultMaxLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	return &Pacer{opts: opts, changed: make(chan struct{})}
}

// Token is one request let through; report its outcome with Done, once.
type Token struct {
	p     *Pacer
	epoch uint64
}

// Start waits until a request may start, or until ctx ends (its error). Call Done on the token
// when the request has its answer.
func (p *Pacer) Start(ctx context.Context) (Token, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Token{}, err
		}
		p.mu.Lock()
		if p.limit > 0 && p.inFlight >= p.limit {
			changed := p.changed
			p.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return Token{}, ctx.Err()
			}
		}
		now := p.opts.Now()
		if wait := p.next.Sub(now); wait > 0 {
			p.mu.Unlock()
			if err := p.opts.Sleep(ctx, wait); err != nil {
				return Token{}, err
			}
			continue
		}
		p.inFlight++
		p.next = now.Add(p.sleep)
		p.stats.Started++
		t := Token{p: p, epoch: p.epoch}
		p.mu.Unlock()
		return t, nil
	}
}

// Done reports the request's outcome: throttled when the server answered that requests come too
// fast (503 SlowDown, 429). Any other outcome, an error or not, counts as a success here: it is
// not a sign of too many requests.
func (t Token) Done(throttled bool) {
	p := t.p
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	close(p.changed)
	p.changed = make(chan struct{})
	if throttled {
		p.stats.Throttled++
		if t.epoch != p.epoch {
			return // started before the last decrease: that decrease answered this overload
		}
		p.epoch++
		p.stats.Decreases++
		base := p.limit
		if base == 0 || base > p.inFlight+1 {
			base = p.inFlight + 1 // what was in flight with this request
		}
		p.limit = max(1, base/2)
		p.successes = 0
		if p.sleep == 0 {
			p.sleep = p.opts.MinSleep
		} else {
			p.sleep = min(2*p.sleep, p.opts.MaxSleep)
		}
		p.next = p.opts.Now().Add(p.sleep)
		return
	}
	// rclone's decay constant 2: the spacing loses a quarter per success, and none below MinSleep.
	if p.sleep > 0 {
		if p.sleep = p.sleep * 3 / 4; p.sleep < p.opts.MinSleep {
			p.sleep = 0
		}
	}
	if p.limit > 0 {
		// One more in flight per limit's worth of successes: about one more per round trip.
		if p.successes++; p.successes >= p.limit {
			p.successes = 0
			if p.limit++; p.limit >= p.opts.MaxLimit {
				p.limit = 0
			}
		}
	}
}

// Stats returns what the pacer has done so far and its current limit and spacing.
func (p *Pacer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Limit, s.Sleep = p.limit, p.sleep
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
