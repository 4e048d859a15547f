// Package verify is the verifier Lambda's logic: a verify run (a restore drill) that checks a
// sample of the backup against the source and against the last successful backup's batches, and
// writes its own report (runs/<execution>/report.json).
//
// The run loops over short invocations with a cursor, as the lister does. The first phase lists
// the backup's current objects once, in key order, beside the last backup's copy batches (also in
// key order): every object that backup copied is taken, and of the others a random sample is
// drawn (a reservoir of Sample objects, or each with a probability of SamplePercent, or all). The
// chosen entries are written to sample files in the run bucket (work/<execution>/verify/), so
// memory holds one listing page, one batch and the reservoir, never the whole bucket. The second
// phase checks the sample files' entries with bounded concurrency: for each object the last
// backup copied, that the backup still holds the version it wrote; for every entry whose source is
// unchanged since its backup version was written, that both hold identical content (S3's
// additional checksum of both sides where both have the same one, else SHA-256 of both bodies,
// streamed). While checking it keeps a smaller restore sample of the objects it verified (and of
// the archived ones it met): the bottom restoreSample of a seeded hash of their keys, a uniform
// random pick that a retried invocation draws the same.
//
// Then the restore sample goes through the restore state machine itself: the invocation that
// finishes checking returns a restore request (restore.go), the verify state machine starts the
// restore execution and waits for it (states:startExecution.sync:2), and hands its outcome to
// the next invocation, which compares every restored copy in the scratch location (the drill
// bucket, under drill/<execution>/) with the source — bytes by SHA-256, user metadata, content
// headers, tags — times the restore, and deletes every version under the scratch prefix. The
// last invocation writes the report: FAILED with VerifyMismatch when anything is missing or
// differs, every such object named with both sides' evidence, and sends its summary to the
// notification targets (shared/notify) as the backup's reporter does.
package verify

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/listing"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// Defaults of the settings and of the input.
const (
	// DefaultSample is how many of the backup's current objects a drill picks at random when its
	// input names neither sample nor samplePercent.
	DefaultSample = 100
	// MaxSample bounds a sample count: the reservoir is held in memory and in the run bucket
	// between invocations. Use samplePercent (or "all") for more; those stream.
	MaxSample = 100_000
	// DefaultConcurrency is how many objects are checked at once (VERIFY_CONCURRENCY); each holds
	// a 32 KiB copy buffer at most, whatever the object's size.
	DefaultConcurrency = 16
	// DefaultMaxKeysPerInvocation (VERIFY_MAX_KEYS) bounds the objects one invocation lists plus
	// checks; 0 means only its time budget bounds it.
	DefaultMaxKeysPerInvocation = 0
	// SampleFileEntries is how many entries one sample file holds at most.
	SampleFileEntries = 1000
	// VersionWindowSlack widens the last backup's startedAt … finishedAt when a version is
	// attributed to it by time: S3 lists LastModified to the second.
	VersionWindowSlack = 2 * time.Second
)

// Config is the verifier's environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
	// DrillBucket receives the restore sample's scratch copies (under ScratchPrefix); it must be
	// one of the restore's RESTORE_TARGETS. Empty: no restore sample unless the input asks for
	// one, which is then refused.
	DrillBucket          string
	Concurrency          int
	MaxKeysPerInvocation int64
	// Notify says where a finished drill's summary goes (NOTIFY_URLS, NOTIFY_ON, NOTIFY_TOPIC_ARN;
	// the backup's HEARTBEAT_URL is not pinged by drills); NotifyErr names a bad setting.
	Notify    notify.Config
	NotifyErr error
}

// ConfigFromEnv reads SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET, DRILL_BUCKET, VERIFY_CONCURRENCY,
// VERIFY_MAX_KEYS and the notification settings (notify.Variables).
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		SourceBucket:         r.Required("SOURCE_BUCKET"),
		BackupBucket:         r.Required("BACKUP_BUCKET"),
		RunBucket:            r.Required("RUN_BUCKET"),
		Concurrency:          int(r.Int("VERIFY_CONCURRENCY", DefaultConcurrency, 1, 256)),
		MaxKeysPerInvocation: r.Int("VERIFY_MAX_KEYS", DefaultMaxKeysPerInvocation, 0, 1<<40),
	}
	if v, ok := lookup("DRILL_BUCKET"); ok {
		c.DrillBucket = strings.TrimSpace(v)
	}
	c.Notify, c.NotifyErr = notify.ConfigFromEnv(lookup)
	c.Notify.Heartbeat = "" // the heartbeat watches backups
	return c, r.Err()
}

// Input is a verify execution's input. Sample is a count (0 … MaxSample) or "all";
// SamplePercent a share (0 < p ≤ 100; 100 is all); at most one of the two. Seed makes the random
// pick repeatable (default: a random seed, recorded in the report). RestoreSample is how many of
// the verified objects are restored through the restore state machine and compared (0 …
// MaxRestoreSample, 0 off; default DefaultRestoreSample where a drill bucket is configured);
// Thaw restores archived ones among them too (thawing them first, hours and a retrieval fee:
// the report shows the estimate), otherwise they are counted and skipped.
type Input struct {
	Sample        *Sample  `json:"sample,omitempty"`
	SamplePercent *float64 `json:"samplePercent,omitempty"`
	Seed          *int64   `json:"seed,omitempty"`
	RestoreSample *int64   `json:"restoreSample,omitempty"`
	Thaw          bool     `json:"thaw,omitempty"`
}

// Sample is the input's sample: a count, or all.
type Sample struct {
	N   int64
	All bool
}

// UnmarshalJSON reads a number or "all".
func (s *Sample) UnmarshalJSON(b []byte) error {
	if string(b) == `"all"` {
		*s = Sample{All: true}
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf(`sample %s: want a whole number of objects or "all"`, b)
	}
	*s = Sample{N: n}
	return nil
}

// MarshalJSON writes a number or "all".
func (s Sample) MarshalJSON() ([]byte, error) {
	if s.All {
		return []byte(`"all"`), nil
	}
	return strconv.AppendInt(nil, s.N, 10), nil
}

// Rule is how the random part of the sample is drawn.
type Rule struct {
	Mode    string  `json:"mode"` // "count", "percent" or "all"
	N       int64   `json:"n,omitempty"`
	Percent float64 `json:"percent,omitempty"`
}

// The modes of a Rule.
const (
	ModeCount   = "count"
	ModePercent = "percent"
	ModeAll     = "all"
)

func (r Rule) String() string {
	switch r.Mode {
	case ModeAll:
		return "all"
	case ModePercent:
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(r.N, 10)
}

// ParseInput reads and checks a verify execution's input (null or {} for the defaults). Bad
// input is a *fault.InvalidInput.
func ParseInput(raw []byte) (Input, Rule, error) {
	var in Input
	if len(bytes.TrimSpace(raw)) > 0 && string(bytes.TrimSpace(raw)) != "null" {
		if err := strictjson.Unmarshal(raw, &in); err != nil {
			return in, Rule{}, &fault.InvalidInput{Msg: fmt.Sprintf("verify input: %v", err), Err: err}
		}
	}
	if in.RestoreSample != nil && (*in.RestoreSample < 0 || *in.RestoreSample > MaxRestoreSample) {
		return in, Rule{}, &fault.InvalidInput{Msg: fmt.Sprintf("verify input: restoreSample %d must be 0 … %d (each is restored through the restore state machine and named in its input)", *in.RestoreSample, MaxRestoreSample)}
	}
	switch {
	case in.Sample != nil && in.SamplePercent != nil:
		return in, Rule{}, &fault.InvalidInput{Msg: "verify input: give sample or samplePercent, not both"}
	case in.Sample != nil && in.Sample.All:
		return in, Rule{Mode: ModeAll}, nil
	case in.Sample != nil:
		if in.Sample.N < 0 || in.Sample.N > MaxSample {
			return in, Rule{}, &fault.InvalidInput{Msg: fmt.Sprintf(`verify input: sample %d must be 0 … %d (or "all", or samplePercent)`, in.Sample.N, MaxSample)}
		}
		return in, Rule{Mode: ModeCount, N: in.Sample.N}, nil
	case in.SamplePercent != nil:
		p := *in.SamplePercent
		if math.IsNaN(p) || p <= 0 || p > 100 {
			return in, Rule{}, &fault.InvalidInput{Msg: fmt.Sprintf("verify input: samplePercent %v must be above 0 and at most 100", p)}
		}
		if p == 100 {
			return in, Rule{Mode: ModeAll}, nil
		}
		return in, Rule{Mode: ModePercent, Percent: p}, nil
	}
	return in, Rule{Mode: ModeCount, N: DefaultSample}, nil
}

// Handler is the verifier.
type Handler struct {
	S3     S3
	Config Config
	Logger *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
	// Notifier sends a finished drill's summary (default: one from Config.Notify).
	Notifier *notify.Notifier
}

// Request is one invocation: the execution, its input, and the cursor of the previous invocation
// (null on the first). Failure, when set, is an error the state machine caught: the invocation
// then only writes the FAILED report naming it.
//
// Restored is the restore sample's outcome, as the state machine passes it after the restore
// execution: its status and dates (startExecution.sync:2's result), or the error it failed with
// (a catcher's {Error, Cause}); null otherwise.
type Request struct {
	Execution string          `json:"execution"`
	StartedAt string          `json:"startedAt"`
	Input     json.RawMessage `json:"input"`
	Cursor    *Cursor         `json:"cursor"`
	Failure   *Failure        `json:"failure,omitempty"`
	Restored  *RestoreOutcome `json:"restored,omitempty"`
}

// Failure is a caught error as Step Functions passes it.
type Failure struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

// Response is the loop state: Done, with the report's summary, once the report is written;
// Restore, when set, the restore execution the state machine is to run next (then it passes its
// outcome back as Request.Restored). Restored is always null: the state machine's next restore
// outcome goes there.
type Response struct {
	Cursor   *Cursor         `json:"cursor"`
	Done     bool            `json:"done"`
	Report   *report.Report  `json:"report"`
	Restore  *RestoreRequest `json:"restore"`
	Restored *RestoreOutcome `json:"restored"`
}

// Phases of a verify run.
const (
	PhaseList    = "list"
	PhaseCheck   = "check"
	PhaseRestore = "restore" // the restore execution runs; the next invocation brings its outcome
	PhaseCompare = "compare" // restored copies are compared with the source
	PhaseCleanup = "cleanup" // the scratch copies are deleted
)

// Cursor is the verifier's loop state; only the verifier reads it. Tally carries the counts (its
// Mismatches stay in the findings files until the report).
type Cursor struct {
	Phase string `json:"phase"`
	Rule  Rule   `json:"rule"`
	// Against is the last successful backup (empty: none), with its window.
	Against         string    `json:"against"`
	AgainstStarted  time.Time `json:"againstStarted"`
	AgainstFinished time.Time `json:"againstFinished"`
	// Listing: the last backup key taken, the random generator's state, how many keys were
	// candidates for the reservoir, and where in the last backup's copy batches the walk is.
	After       string `json:"after"`
	RNG         []byte `json:"rng"`
	Candidates  int64  `json:"candidates"`
	Reservoir   string `json:"reservoir"` // key of the reservoir file of the last invocation ("" none)
	CopiedBatch int    `json:"copiedBatch"`
	CopiedItem  int    `json:"copiedItem"`
	SampleFiles int    `json:"sampleFiles"`
	// Checking: the next entry (file, line), and the findings files written.
	CheckFile    int            `json:"checkFile"`
	CheckLine    int            `json:"checkLine"`
	FindingFiles int            `json:"findingFiles"`
	Tally        report.Verify  `json:"tally"`
	Algorithms   map[string]int `json:"algorithms,omitempty"`
	// The restore sample: how many to draw (0 none), whether to thaw, the picks file the last
	// invocation left, and the restore's own state once it is requested.
	RestoreN int64         `json:"restoreN"`
	Thaw     bool          `json:"thaw"`
	Picks    string        `json:"picks"`
	Restore  *restoreState `json:"restore,omitempty"`
}

// Handle runs one invocation.
func (h *Handler) Handle(ctx context.Context, req Request) (Response, error) {
	if req.Execution == "" || strings.ContainsAny(req.Execution, "/ ") {
		return Response{}, &fault.InvalidInput{Msg: fmt.Sprintf("execution name %q", req.Execution)}
	}
	if req.Failure != nil {
		if cur := req.Cursor; cur != nil && cur.Restore != nil && cur.Phase != PhaseList && cur.Phase != PhaseCheck {
			// Best effort: the drill bucket's lifecycle rule removes what is left.
			if err := h.cleanup(ctx, cur); err != nil {
				h.logger().Warn("scratch clean-up after a failure", "execution", req.Execution, "error", err)
			}
		}
		rep, err := h.writeReport(ctx, req, req.Cursor, req.Failure)
		return Response{Cursor: nil, Done: true, Report: rep}, fault.Boundary(err)
	}
	cur := req.Cursor
	if cur == nil {
		var err error
		if cur, err = h.start(ctx, req); err != nil {
			return Response{}, fault.Boundary(err)
		}
	}
	cur.Tally.Invocations++
	if cur.Phase == PhaseRestore {
		if req.Restored == nil {
			return Response{}, fault.Boundary(&fault.InvalidInput{Msg: "verify: the restore sample's outcome (restored) is missing: the state machine must pass the restore execution's result"})
		}
		h.restored(cur, req.Restored)
	}
	done, restore, err := h.work(ctx, req.Execution, cur)
	if err != nil {
		return Response{}, fault.Boundary(err)
	}
	if restore != nil {
		return Response{Cursor: cur, Restore: restore}, nil
	}
	if !done {
		return Response{Cursor: cur}, nil
	}
	rep, err := h.writeReport(ctx, req, cur, nil)
	if err != nil {
		return Response{}, fault.Boundary(err)
	}
	return Response{Done: true, Report: rep}, nil
}

// start checks the input and the buckets and finds the last successful backup.
func (h *Handler) start(ctx context.Context, req Request) (*Cursor, error) {
	in, rule, err := ParseInput(req.Input)
	if err != nil {
		return nil, err
	}
	c := h.Config
	if err := listing.RequireBuckets(ctx, h.S3, listing.Bucket{Role: "source", Name: c.SourceBucket},
		listing.Bucket{Role: "backup", Name: c.BackupBucket}, listing.Bucket{Role: "run", Name: c.RunBucket}); err != nil {
		return nil, err
	}
	var seed int64
	if in.Seed != nil {
		seed = *in.Seed
	} else {
		var b [8]byte
		_, _ = crand.Read(b[:])
		seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
	}
	rng, err := newRNG(seed).MarshalBinary()
	if err != nil {
		return nil, err
	}
	cur := &Cursor{Phase: PhaseList, Rule: rule, RNG: rng, Thaw: in.Thaw}
	cur.Tally.Sample, cur.Tally.Seed = rule.String(), seed
	switch {
	case in.RestoreSample != nil && *in.RestoreSample > 0 && c.DrillBucket == "":
		return nil, &fault.InvalidInput{Msg: fmt.Sprintf("verify input: restoreSample %d needs a drill bucket (DRILL_BUCKET) for the scratch copies; none is configured", *in.RestoreSample)}
	case in.RestoreSample != nil:
		cur.RestoreN = *in.RestoreSample
	case c.DrillBucket != "":
		cur.RestoreN = DefaultRestoreSample
	}
	if cur.RestoreN > 0 {
		if err := listing.RequireBuckets(ctx, h.S3, listing.Bucket{Role: "drill", Name: c.DrillBucket}); err != nil {
			return nil, err
		}
	}
	last, found, err := runlog.LastSucceeded(ctx, h.S3, c.RunBucket, c.SourceBucket, c.BackupBucket)
	if err != nil {
		return nil, err
	}
	if found {
		cur.Against = last.Execution
		cur.AgainstStarted, _ = time.Parse(time.RFC3339Nano, last.StartedAt)
		cur.AgainstFinished, _ = time.Parse(time.RFC3339Nano, last.FinishedAt)
		cur.Tally.AgainstBackup, cur.Tally.AgainstBackupStarted, cur.Tally.AgainstBackupFinished = last.Execution, last.StartedAt, last.FinishedAt
		if last.Copied > 0 {
			if _, err := h.copiedBatches(ctx, cur); errors.Is(err, errBatchesGone) {
				cur.Tally.LastCopiedUnknown = true
			} else if err != nil {
				return nil, err
			}
		}
	}
	return cur, nil
}

// work runs the phases until the run is done, a restore is to run, or the invocation's budget
// is spent.
func (h *Handler) work(ctx context.Context, execution string, cur *Cursor) (done bool, restore *RestoreRequest, err error) {
	b := budget{stopAt: lambdafn.StopAt(ctx), maxKeys: h.Config.MaxKeysPerInvocation, now: h.now}
	if cur.Phase == PhaseList {
		finished, err := h.list(ctx, execution, cur, &b)
		if err != nil || !finished {
			return false, nil, err
		}
		cur.Phase = PhaseCheck
	}
	if cur.Phase == PhaseCheck {
		finished, err := h.check(ctx, execution, cur, &b)
		if err != nil || !finished {
			return false, nil, err
		}
		if restore, err := h.requestRestore(ctx, execution, cur); err != nil || restore != nil {
			return false, restore, err
		}
		return true, nil, nil
	}
	if cur.Phase == PhaseCompare {
		finished, err := h.compare(ctx, execution, cur, &b)
		if err != nil || !finished {
			return false, nil, err
		}
		cur.Phase = PhaseCleanup
	}
	if cur.Phase == PhaseCleanup {
		if err := h.cleanup(ctx, cur); err != nil {
			return false, nil, err
		}
	}
	return true, nil, nil
}

// budget says when an invocation stops taking work.
type budget struct {
	stopAt  time.Time
	maxKeys int64
	used    int64
	now     func() time.Time
}

func (b *budget) spent() bool {
	return (b.maxKeys > 0 && b.used >= b.maxKeys) || (!b.stopAt.IsZero() && b.now().After(b.stopAt))
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Keys in the run bucket.
func verifyPrefix(execution string) string { return batch.WorkPrefix(execution) + "verify/" }

// SampleKey names sample file seq of a verify execution.
func SampleKey(execution string, seq int) string {
	return fmt.Sprintf("%ssample/%06d.jsonl", verifyPrefix(execution), seq)
}

// FindingsKey names findings file seq of a verify execution.
func FindingsKey(execution string, seq int) string {
	return fmt.Sprintf("%sfindings/%06d.jsonl", verifyPrefix(execution), seq)
}

// reservoirKey names the reservoir as invocation n left it: each invocation writes its own, so a
// retried invocation reads the one its cursor names, not a failed attempt's.
func reservoirKey(execution string, n int) string {
	return fmt.Sprintf("%sreservoir/%06d.json", verifyPrefix(execution), n)
}

func (h *Handler) put(ctx context.Context, key string, body []byte) error {
	_, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key),
		Body: bytes.NewReader(body), ContentType: aws.String("application/x-ndjson")})
	if err != nil {
		return s3Error(err, h.Config.RunBucket, "write s3://"+h.Config.RunBucket+"/"+key)
	}
	return nil
}

// s3Error names what failed; access refusals and missing buckets become their named errors.
func s3Error(err error, bucket, doing string) error {
	switch {
	case fault.IsCode(err, "AccessDenied"):
		return &fault.AccessDenied{Msg: fmt.Sprintf("%s: %v", doing, err), Err: err}
	case fault.IsCode(err, "NoSuchBucket"):
		return &fault.BucketNotFound{Msg: fmt.Sprintf("bucket %q does not exist (%s)", bucket, doing), Err: err}
	}
	return fmt.Errorf("%s: %w", doing, err)
}
