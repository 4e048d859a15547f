package runlock

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// conditional adds S3's conditional writes to the fake: If-None-Match: * fails with 412 when the
// key exists, If-Match with 412 when its ETag differs. A mutex makes check and write one step, as
// S3 does.
type conditional struct {
	*s3fake.S3
	mu sync.Mutex
	// beforePut, when set, runs before each write (another execution's move).
	beforePut func(in *s3.PutObjectInput)
}

func (c *conditional) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if c.beforePut != nil {
		c.beforePut(in)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: in.Bucket, Key: in.Key})
	exists := err == nil
	if exists {
		cur.Body.Close()
	}
	switch {
	case in.IfNoneMatch != nil && exists:
		return nil, s3fake.APIError("PreconditionFailed")
	case in.IfMatch != nil && (!exists || aws.ToString(cur.ETag) != aws.ToString(in.IfMatch)):
		return nil, s3fake.APIError("PreconditionFailed")
	}
	return c.S3.PutObject(ctx, in, opts...)
}

func newLocker() (*conditional, *Locker) {
	f := s3fake.New()
	f.AddBucket("run", false)
	c := &conditional{S3: f}
	return c, &Locker{S3: c, RunBucket: "run", Source: "src", Backup: "bak", TTL: time.Hour}
}

var t0 = time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)

func TestAcquire(t *testing.T) {
	tests := []struct {
		name string
		// before takes the lock (or not) for other executions before "this" tries at t0+at.
		before  func(t *testing.T, c *conditional, l *Locker)
		at      time.Duration
		wantErr bool // BackupAlreadyRunning naming "first"
	}{
		{name: "free", before: func(*testing.T, *conditional, *Locker) {}},
		{name: "held by a running execution", before: takeFirst, at: 10 * time.Minute, wantErr: true},
		{name: "held by an execution that wrote its report", at: 10 * time.Minute, before: func(t *testing.T, c *conditional, l *Locker) {
			takeFirst(t, c, l)
			c.Put("run", batch.ReportKey("first"), []byte(`{"status":"FAILED"}`))
		}},
		{name: "expired", before: takeFirst, at: time.Hour},
		{name: "retried by the same execution", before: func(t *testing.T, c *conditional, l *Locker) {
			if err := l.Acquire(context.Background(), "this", t0); err != nil {
				t.Fatal(err)
			}
		}, at: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, l := newLocker()
			tt.before(t, c, l)
			err := l.Acquire(context.Background(), "this", t0.Add(tt.at))
			var running *fault.BackupAlreadyRunning
			if tt.wantErr {
				if !errors.As(err, &running) || !strings.Contains(err.Error(), "execution first has been backing up s3://src into s3://bak") {
					t.Fatalf("error %v, want BackupAlreadyRunning naming first", err)
				}
				if got := holder(t, l); got != "first" {
					t.Fatalf("the lock names %q after a refused run, want first", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := holder(t, l); got != "this" {
				t.Fatalf("the lock names %q, want this", got)
			}
		})
	}
}

// Two executions that find the same finished holder race for the takeover: exactly one wins,
// and the loser names the winner.
func TestTakeoverRace(t *testing.T) {
	c, l := newLocker()
	takeFirst(t, c, l)
	c.Put("run", batch.ReportKey("first"), []byte(`{}`))
	other := &Locker{S3: c, RunBucket: "run", Source: "src", Backup: "bak", TTL: time.Hour}
	raced := false
	c.beforePut = func(in *s3.PutObjectInput) {
		// Between "this" reading the finished lock and its If-Match write, "other" takes it over.
		if in.IfMatch != nil && !raced {
			raced = true
			if err := other.Acquire(context.Background(), "other", t0.Add(time.Minute)); err != nil {
				t.Errorf("other: %v", err)
			}
		}
	}
	err := l.Acquire(context.Background(), "this", t0.Add(time.Minute))
	var running *fault.BackupAlreadyRunning
	if !raced || !errors.As(err, &running) || !strings.Contains(err.Error(), "execution other") || holder(t, l) != "other" {
		t.Fatalf("raced %v: %v, holder %q; want BackupAlreadyRunning naming other, other holding", raced, err, holder(t, l))
	}
}

// A lock object that is not a lock is an error naming it, never a lock taken over silently.
func TestCorruptLock(t *testing.T) {
	c, l := newLocker()
	c.Put("run", Key("src", "bak"), []byte("garbage"))
	err := l.Acquire(context.Background(), "this", t0)
	if err == nil || !strings.Contains(err.Error(), "lock/src/bak.json is not a lock") {
		t.Fatalf("error %v", err)
	}
}

func takeFirst(t *testing.T, _ *conditional, l *Locker) {
	t.Helper()
	if err := l.Acquire(context.Background(), "first", t0); err != nil {
		t.Fatal(err)
	}
}

func holder(t *testing.T, l *Locker) string {
	t.Helper()
	held, _, found, err := l.read(context.Background(), Key(l.Source, l.Backup))
	if err != nil || !found {
		t.Fatalf("read the lock: found %v, %v", found, err)
	}
	return held.Execution
}
