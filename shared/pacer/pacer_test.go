package pacer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// clock is a fake clock: Sleep advances it and records the wait.
type clock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *clock) Now() time.Time { return c.now }

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func newFake(opts Options) (*Pacer, *clock) {
	c := &clock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts.Now, opts.Sleep = c.Now, c.Sleep
	return New(opts), c
}

// start starts n requests, none of which may wait.
func start(t *testing.T, p *Pacer, n int) []Token {
	t.Helper()
	var toks []Token
	for range n {
		tok, err := p.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	return toks
}

// full reports whether a request would have to wait for one in flight to be done.
func full(p *Pacer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit > 0 && p.inFlight >= p.limit
}

func TestUnthrottledChangesNothing(t *testing.T) {
	p, c := newFake(Options{})
	toks := start(t, p, 500)
	for _, tok := range toks {
		tok.Done(false)
	}
	toks = start(t, p, 500)
	for _, tok := range toks {
		tok.Done(false)
	}
	if s := p.Stats(); s.Limit != 0 || s.Sleep != 0 || s.Started != 1000 || s.Decreases != 0 {
		t.Errorf("stats %+v, want no limit, no sleep, 1000 started", s)
	}
	if len(c.sleeps) != 0 {
		t.Errorf("slept %v without any throttle", c.sleeps)
	}
}

func TestThrottleHalvesInFlightAndSpacesStarts(t *testing.T) {
	tests := []struct {
		name       string
		inFlight   int
		throttled  int // of the requests in flight, how many are throttled
		wantLimit  int
		wantSleep  time.Duration
		wantDecr   int64
		wantThrott int64
	}{
		{"one throttle among 32", 32, 1, 16, DefaultMinSleep, 1, 1},
		{"every request of a burst throttled: one decrease", 32, 32, 16, DefaultMinSleep, 1, 32},
		{"one in flight keeps one", 1, 1, 1, DefaultMinSleep, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := newFake(Options{})
			toks := start(t, p, tt.inFlight)
			for i := range tt.throttled {
				toks[i].Done(true)
			}
			s := p.Stats()
			if s.Limit != tt.wantLimit || s.Sleep != tt.wantSleep || s.Decreases != tt.wantDecr || s.Throttled != tt.wantThrott {
				t.Errorf("stats %+v, want limit %d sleep %v decreases %d throttled %d", s, tt.wantLimit, tt.wantSleep, tt.wantDecr, tt.wantThrott)
			}
		})
	}
}

func TestStartWaitsForTheLimitAndTheSpacing(t *testing.T) {
	p, c := newFake(Options{})
	toks := start(t, p, 4)
	toks[0].Done(true) // limit (3 in flight + this one) / 2 = 2, spacing 10ms
	if !full(p) {
		t.Fatal("3 in flight under a limit of 2: a new request must wait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start at the limit with a cancelled context: %v, want context.Canceled", err)
	}
	toks[1].Done(false)
	toks[2].Done(false)
	// Two successes at a limit of 2 grow it to 3, and decay the spacing below MinSleep (none); the
	// next start still waits out the spacing set at the throttle.
	if s := p.Stats(); s.Limit != 3 || s.Sleep != 0 {
		t.Fatalf("stats %+v after 2 successes, want limit 3 and no spacing", s)
	}
	start(t, p, 2)
	if len(c.sleeps) != 1 || c.sleeps[0] != DefaultMinSleep {
		t.Fatalf("slept %v before the starts after the throttle, want [10ms]", c.sleeps)
	}
	if !full(p) {
		t.Fatal("3 in flight under a limit of 3: a new request must wait")
	}
}

func TestRepeatedThrottlesDoubleTheSpacingUpToMaxSleep(t *testing.T) {
	p, _ := newFake(Options{MinSleep: 100 * time.Millisecond, MaxSleep: time.Second})
	var got []time.Duration
	var limits []int
	for range 6 {
		tok := start(t, p, 1)[0] // starts after the previous decrease
		tok.Done(true)
		s := p.Stats()
		got = append(got, s.Sleep)
		limits = append(limits, s.Limit)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] || limits[i] != 1 {
			t.Fatalf("spacing after each throttle %v (limits %v), want %v and limit 1", got, limits, want)
		}
	}
}

func TestSuccessesGrowTheLimitBackAndLiftIt(t *testing.T) {
	p, _ := newFake(Options{MaxLimit: 8})
	toks := start(t, p, 8)
	toks[0].Done(true) // limit 4
	for _, tok := range toks[1:] {
		tok.Done(false)
	}
	// 7 successes at limit 4: 4 of them grow it to 5, 3 more count toward the next.
	if s := p.Stats(); s.Limit != 5 {
		t.Fatalf("limit %d after 7 successes from 4, want 5", s.Limit)
	}
	var limits []int
	for range 30 {
		tok := start(t, p, 1)[0]
		tok.Done(false)
		limits = append(limits, p.Stats().Limit)
	}
	// 2 more to 6, 6 more to 7, 7 more to 8 = MaxLimit: lifted (0).
	if limits[1] != 6 || limits[7] != 7 || limits[14] != 0 || limits[29] != 0 {
		t.Errorf("limits after each success %v: want 6 after 2, 7 after 8, lifted after 15", limits)
	}
}

func TestOnlyRequestsStartedAfterADecreaseDecreaseAgain(t *testing.T) {
	p, _ := newFake(Options{})
	old := start(t, p, 16)
	old[0].Done(true) // limit 8
	old[1].Done(false)
	old[2].Done(false)
	// 13 old requests still in flight; release them so that new ones may start.
	for _, tok := range old[3:] {
		tok.Done(false)
	}
	fresh := start(t, p, 2)
	// Started after the decrease: decreases again, from what was in flight with it (2, below the
	// limit of 8), halved.
	fresh[0].Done(true)
	if s := p.Stats(); s.Decreases != 2 || s.Limit != 1 {
		t.Fatalf("stats %+v, want 2 decreases and limit 1", s)
	}
	// Started before that second decrease: the same overload, no third decrease.
	fresh[1].Done(true)
	if s := p.Stats(); s.Decreases != 2 {
		t.Errorf("a throttle of a request started before the last decrease decreased again: %+v", s)
	}
}

func TestStartAtTheLimitGoesOnWhenARequestIsDone(t *testing.T) {
	p, _ := newFake(Options{})
	toks := start(t, p, 2)
	toks[0].Done(true) // limit 1, one in flight
	started := make(chan error, 1)
	go func() {
		tok, err := p.Start(context.Background())
		if err == nil {
			tok.Done(false)
		}
		started <- err
	}()
	toks[1].Done(false)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Started != 3 {
		t.Errorf("started %d, want 3", s.Started)
	}
}
