// Package reporter is the reporter function: it always runs last, reads the outcome of every
// batch the run's manifest lists (and the Map's failed child executions), names every object that
// was not backed up with its error, checks that the counts add up, weighs the backup guards'
// verdicts, estimates the run's cost, sends its summary to the notification targets (package
// shared/notify), writes runs/<execution>/report.json, writes the run's figures as an Embedded
// Metric Format line, and tells the state machine whether the run succeeded. Its memory does not
// grow with the number of failures: they go to compressed spill files on local disk and are
// streamed from there into report.json.
package reporter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/emf"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
	"github.com/bucketvault/bucketvault/shared/runcost"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// S3 is what the reporter needs of an S3 client.
type S3 interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// Defaults of the reporter.
const (
	// DefaultMapResultsPrefix is where the Copy Map's ResultWriter writes in the run bucket
	// (its Prefix in backup.asl.json and restore.asl.json, and a slash).
	DefaultMapResultsPrefix = "map-results/"
	// DefaultReportReserve is the time kept for writing report.json after the notifications,
	// before the invocation's deadline.
	DefaultReportReserve = 30 * time.Second
	// DefaultReadAhead is how many batch outcomes are read at once, ahead of the one being added.
	DefaultReadAhead = 16
	// maxReasonBytes caps a failed batch's error as its objects carry it (a Lambda error's cause
	// may be 32 KiB).
	maxReasonBytes = 2 << 10
	// DefaultNamePrefix names the state machines (<prefix>-backup, <prefix>-restore) when
	// NAME_PREFIX is not set, as the stack and statemachine/localrun name them by default: the
	// execution's console link and the metrics' StateMachine dimension.
	DefaultNamePrefix = "bucketvault"
)

var _ S3 = (*s3.Client)(nil)

// Config is the reporter's configuration, from its environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
	// Notify says where summaries go; NotifyErr is what was wrong with its variables (recorded
	// in the report as a failed notification: a notification setting never fails a run).
	Notify    notify.Config
	NotifyErr error
	// Cost is the cost estimate's prices and memory sizes.
	Cost runcost.Config
	// NamePrefix is the deployment's NAME_PREFIX (DefaultNamePrefix).
	NamePrefix string
	// OnLambda is set when running as a Lambda function (AWS_LAMBDA_FUNCTION_NAME): the summary
	// then links to the AWS consoles.
	OnLambda bool
}

// ConfigFromEnv reads SOURCE_BUCKET, BACKUP_BUCKET and RUN_BUCKET, NAME_PREFIX, the notification
// settings (notify.Variables) and the cost estimate's (runcost.Variables).
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{SourceBucket: r.Required("SOURCE_BUCKET"), BackupBucket: r.Required("BACKUP_BUCKET"), RunBucket: r.Required("RUN_BUCKET")}
	c.Notify, c.NotifyErr = notify.ConfigFromEnv(lookup)
	c.Cost = runcost.ConfigFromEnv(lookup)
	c.NamePrefix = r.String("NAME_PREFIX", DefaultNamePrefix)
	_, c.OnLambda = lookup("AWS_LAMBDA_FUNCTION_NAME")
	return c, r.Err()
}

// StateError is a caught error as Step Functions places it: {"Error": "...", "Cause": "..."}.
type StateError struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

// MapResult is a Distributed Map's output with a ResultWriter.
type MapResult struct {
	MapRunArn           string `json:"MapRunArn"`
	ResultWriterDetails struct {
		Bucket string `json:"Bucket"`
		Key    string `json:"Key"`
	} `json:"ResultWriterDetails"`
}

// State is the state machine's data when Report runs. It carries what AWS adds (the Map's
// output, a caught error) and each state machine's own fields, so its top level is decoded
// leniently; the parts that decide the run's status, the cursor's totals and the guards'
// verdicts, are decoded strictly (see decodeState), so that a renamed field fails loudly instead
// of reading as zero.
type State struct {
	Cursor       json.RawMessage `json:"cursor"`
	Guards       json.RawMessage `json:"guards"`
	Done         bool            `json:"done"`
	DryRun       bool            `json:"dryRun"`
	RestoredAt   string          `json:"restoredAt"`
	TargetBucket string          `json:"targetBucket"`
	TargetPrefix string          `json:"targetPrefix"`
	Copy         *MapResult      `json:"copy"`
	Failure      *StateError     `json:"failure"`
}

// decoded is the strictly decoded part of a State.
type decoded struct {
	totals *report.Totals // nil before the first lister or planner invocation returned
	guards []report.Guard
}

func decodeState(raw json.RawMessage) (State, decoded, error) {
	var st State
	var d decoded
	if len(raw) == 0 {
		return st, decoded{guards: []report.Guard{}}, nil
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, d, &fault.InvalidInput{Msg: fmt.Sprintf("reporter state: %v", err), Err: err}
	}
	if present(st.Cursor) {
		var c report.Cursor[json.RawMessage]
		if err := strictjson.Unmarshal(st.Cursor, &c); err != nil {
			return st, d, &fault.InvalidInput{Msg: fmt.Sprintf("reporter state: cursor: %v", err), Err: err}
		}
		d.totals = &c.Totals
	}
	if present(st.Guards) {
		if err := strictjson.Unmarshal(st.Guards, &d.guards); err != nil {
			return st, d, &fault.InvalidInput{Msg: fmt.Sprintf("reporter state: guards: %v", err), Err: err}
		}
	}
	if d.guards == nil {
		d.guards = []report.Guard{}
	}
	return st, d, nil
}

func present(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// Request is the reporter's payload.
type Request struct {
	Execution string          `json:"execution"`
	StartedAt string          `json:"startedAt"`
	Input     json.RawMessage `json:"input"`
	State     json.RawMessage `json:"state"`
}

// Handler is the reporter function.
type Handler struct {
	S3     S3
	Config Config
	Logger *slog.Logger
	Now    func() time.Time
	// TempDir holds the spill files and report.json while it is written (default os.TempDir():
	// Lambda's /tmp). It needs about the size of report.json plus a tenth of it.
	TempDir string
	// MapResultsPrefix is DefaultMapResultsPrefix unless set.
	MapResultsPrefix string
	// Notifier sends the summary; nil builds one from Config.Notify (SNS through the standard AWS
	// environment, AWS_ENDPOINT_URL_SNS included).
	Notifier *notify.Notifier
	// Metrics receives the Embedded Metric Format line: default os.Stdout on Lambda, which sends
	// it to CloudWatch Logs, and nowhere off Lambda (the local executor's stdout is the command's).
	Metrics io.Writer
}

// Handle builds, stores and returns the report. Its error (only when the report cannot be
// written) fails the execution.
func (h *Handler) Handle(ctx context.Context, req Request) (report.Report, error) {
	r, err := h.handle(ctx, req)
	if err != nil {
		return report.Report{}, fault.Boundary(err)
	}
	return r, nil
}

// handle builds the report, writes report.json and returns the execution output (Summary).
func (h *Handler) handle(ctx context.Context, req Request) (report.Report, error) {
	if req.Execution == "" {
		return report.Report{}, &fault.InvalidInput{Msg: "reporter request has no execution name"}
	}
	began := h.now()
	st, d, err := decodeState(req.State)
	if err != nil {
		return report.Report{}, err
	}
	r := report.Report{
		Execution: req.Execution, StartedAt: req.StartedAt,
		SourceBucket: h.Config.SourceBucket, BackupBucket: h.Config.BackupBucket,
		RestoredAt: st.RestoredAt, TargetBucket: st.TargetBucket, TargetPrefix: st.TargetPrefix,
		DryRun: st.DryRun, ReportKey: batch.ReportKey(req.Execution),
		Guards: []report.Guard{}, Failures: []report.Failure{}, Skips: []report.Skip{}, Notes: []report.Note{},
		Notifications: []report.Notification{}, Destinations: []report.Destination{},
	}
	r.Prefix = prefixOf(req.Input)
	r.RequestedBy = requestedByOf(req.Input)
	if c := d.totals; c != nil {
		r.Listed, r.New, r.Changed, r.Unchanged = c.Listed, c.New, c.Changed, c.Unchanged
		r.ToDelete, r.Kept, r.Archived = c.ToDelete, c.Kept, c.Archived
		r.BackupObjects, r.BytesToCopy, r.ListInvocations, r.ListRanges = c.BackupObjects, c.BytesToCopy, c.Invocations, c.Ranges
		r.Retries = c.Retries
		r.Excluded, r.ExcludedByRule, r.ExcludedDeletions, r.TagReads = c.Excluded, c.ExcludedByRule, c.ExcludedDeletions, c.TagReads
		r.MostChanged = c.Changes.Result()
	}
	if r.ExcludedByRule == nil {
		r.ExcludedByRule = map[string]int64{}
	}
	if d.totals != nil {
		for _, t := range d.totals.Destinations {
			dst := report.Destination{DestinationTotals: t, Guards: []report.Guard{}}
			if t.Error != "" && !st.DryRun {
				dst.Withheld = t.ToDelete // the lister withholds a failed destination's deletions
			}
			r.Destinations = append(r.Destinations, dst)
		}
	}
	for _, g := range d.guards {
		if i := destinationIndex(&r, g.Destination); g.Destination == "" {
			r.Guards = append(r.Guards, g)
		} else if i >= 0 {
			r.Destinations[i].Guards = append(r.Destinations[i].Guards, g)
			if g.Name == guard.Deletion && g.Tripped && !st.DryRun {
				r.Destinations[i].Withheld = r.Destinations[i].ToDelete
			}
		} else {
			return report.Report{}, &fault.InvalidInput{Msg: fmt.Sprintf("reporter state: a guard of destination %q, which the cursor does not list", g.Destination)}
		}
	}
	if r.MostChanged == nil {
		r.MostChanged = []report.FolderChanges{}
	}
	if g := find(r.Guards, guard.Deletion); g != nil && g.Tripped && !st.DryRun {
		r.Withheld = r.ToDelete // no deletion batch is in the manifest
	}
	ls := newLists(h.tempDir())
	defer ls.remove()
	// Once the listing (or planning) is done, the copy phase runs the batches its manifest lists,
	// or ran none of them if it never started: either way, the outcomes tell.
	copyPhase := st.Done && !st.DryRun
	if copyPhase {
		if err := h.collect(ctx, req.Execution, st, &r, ls); err != nil {
			return report.Report{}, err
		}
	}
	if st.Done && st.DryRun && st.RestoredAt != "" {
		if err := h.preview(ctx, req.Execution, ls); err != nil {
			return report.Report{}, err
		}
	}
	h.decide(st, &r, copyPhase)
	finished := h.now()
	r.FinishedAt = finished.UTC().Format("2006-01-02T15:04:05.000Z") // as $$.Execution.StartTime
	r.Cost = runcost.Estimate(r, h.Config.Cost, finished.Sub(began))
	summary := notify.Build(r, ls.failures.head, h.place(ctx, r))
	r.Notifications = h.notify(ctx, summary)
	if err := h.write(ctx, r, ls); err != nil {
		return report.Report{}, err
	}
	h.metrics(r, summary, finished)
	h.Logger.InfoContext(ctx, "report", "execution", r.Execution, "status", r.Status, "error", r.Error,
		"listed", r.Listed, "copied", r.Copied, "deleted", r.Deleted, "failed", r.Failed, "skipped", r.Skipped,
		"deletionsWithheld", r.Withheld, "batches", r.Batches, "failedBatches", r.FailedBatches, "report", r.ReportKey)
	out := r
	out.Failures, out.FailuresOmitted = ls.failures.head, ls.failures.n-int64(len(ls.failures.head))
	out.Skips, out.SkipsOmitted = ls.skips.head, ls.skips.n-int64(len(ls.skips.head))
	out.Notes, out.NotesOmitted = ls.notes.head, ls.notes.n-int64(len(ls.notes.head))
	return out.Summary(), nil
}

// stateMachine is the name of the state machine that ran r.
func (h *Handler) stateMachine(r report.Report) (name, kind string) {
	prefix := h.Config.NamePrefix
	if prefix == "" {
		prefix = DefaultNamePrefix
	}
	if r.RestoredAt != "" {
		return prefix + "-restore", "restore"
	}
	return prefix + "-backup", "backup"
}

// place is where the run ran, for the summary's links: the Region and account of the function's
// ARN on Lambda (none locally, where the ARN is the executor's stand-in).
func (h *Handler) place(ctx context.Context, r report.Report) notify.Place {
	name, _ := h.stateMachine(r)
	p := notify.Place{StateMachine: name, RunBucket: h.Config.RunBucket, ConsoleURL: h.Config.Notify.ConsoleURL}
	if lc, ok := lambdacontext.FromContext(ctx); ok && h.Config.OnLambda {
		if a, err := arn.Parse(lc.InvokedFunctionArn); err == nil {
			p.Region, p.Account = a.Region, a.AccountID
		}
	}
	return p
}

// notify sends the summary and returns each target's outcome; a bad setting is one outcome too.
func (h *Handler) notify(ctx context.Context, s notify.Summary) []report.Notification {
	// The sends get their budget, but never the time the report needs to be written.
	sendCtx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithDeadline(ctx, dl.Add(-DefaultReportReserve))
		defer cancel()
	}
	return notify.Deliver(sendCtx, h.Notifier, h.Config.Notify, h.Config.NotifyErr, s, h.Logger)
}

// metrics writes the run's Embedded Metric Format line.
func (h *Handler) metrics(r report.Report, s notify.Summary, at time.Time) {
	w := h.Metrics
	if w == nil && h.Config.OnLambda {
		w = os.Stdout
	}
	if w == nil {
		return
	}
	name, kind := h.stateMachine(r)
	line := emf.Line(r, name, kind, s.DurationSeconds, at)
	_, _ = w.Write(append(line, '\n'))
}

// write streams report.json into a local file from the spill files, then uploads that file: a
// single PutObject of a seekable body (retried by the SDK, up to S3's 5 GB), never the report
// in memory.
func (h *Handler) write(ctx context.Context, r report.Report, ls *lists) error {
	f, err := os.CreateTemp(h.tempDir(), "report-*.json")
	if err != nil {
		return fmt.Errorf("report file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := r.Encode(f, map[string]func(io.Writer) error{
		"failures": ls.failures.stream, "skips": ls.skips.stream, "notes": ls.notes.stream,
	}); err != nil {
		return fmt.Errorf("report file: %w", err)
	}
	ls.remove() // the lists are in the report file now
	size, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fmt.Errorf("report file: %w", err)
	}
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(h.Config.RunBucket), Key: aws.String(r.ReportKey),
		Body: f, ContentLength: aws.Int64(size), ContentType: aws.String("application/json"),
	}); err != nil {
		return fmt.Errorf("write report s3://%s/%s: %w", h.Config.RunBucket, r.ReportKey, err)
	}
	return nil
}

func (h *Handler) tempDir() string {
	if h.TempDir != "" {
		return h.TempDir
	}
	return os.TempDir()
}

func find(guards []report.Guard, name string) *report.Guard {
	for i := range guards {
		if guards[i].Name == name {
			return &guards[i]
		}
	}
	return nil
}

// decide sets the status: SUCCEEDED only when nothing failed, every planned object is accounted
// for and no guard tripped. Failed copies come first (BackupIncomplete, naming any tripped guard
// too); otherwise a tripped guard's error, with its counts, its limit and how to accept.
func (h *Handler) decide(st State, r *report.Report, copyPhase bool) {
	planned := r.New + r.Changed + r.ToDelete + r.Kept
	accounted := r.Copied + r.Deleted + r.Failed + r.Skipped + r.Withheld
	sorted := r.New + r.Changed + r.Unchanged + r.Excluded
	var byRule int64
	for _, n := range r.ExcludedByRule {
		byRule += n
	}
	what := "backed up"
	if r.RestoredAt != "" {
		what = "restored"
	}
	var tripped []report.Guard
	for _, g := range r.Guards {
		if g.Tripped {
			tripped = append(tripped, g)
		}
	}
	also := ""
	for _, g := range tripped {
		also += fmt.Sprintf(". The run also tripped %s: %s", g.Error, g.Message)
	}
	// A further destination's problems fail the run too, naming it (destinations.go).
	destProblems, destError := destinationProblems(r, copyPhase)
	for _, p := range destProblems {
		also += ". " + p
	}
	switch {
	case st.Failure != nil && !copyPhase:
		r.Status, r.Error, r.Cause = report.Failed, st.Failure.Error, causeMessage(st.Failure.Cause)
	case st.Failure != nil && st.Copy == nil && !strings.HasPrefix(st.Failure.Error, "States."):
		// A function's named error after the planning and before the Map ran (a restore's thaw
		// that did not complete): the run ends with that name; its objects are named in the report.
		r.Status, r.Error = report.Failed, st.Failure.Error
		r.Cause = fmt.Sprintf("%s; %d objects were not %s, every one is named in s3://%s/%s",
			causeMessage(st.Failure.Cause), r.Failed, what, h.Config.RunBucket, r.ReportKey) + also
	case r.Failed > 0 || r.FailedBatches > 0:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("%d objects were not %s (%d of %d batches failed); every one is named in s3://%s/%s",
			r.Failed, what, r.FailedBatches, r.Batches, h.Config.RunBucket, r.ReportKey) + also
	case st.Failure != nil:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("the copy phase failed (%s: %s)", st.Failure.Error, causeMessage(st.Failure.Cause)) + also
	case st.Done && r.RestoredAt == "" && (sorted != r.Listed || byRule != r.Excluded):
		// Every listed source object is new, changed, unchanged or excluded, and every excluded
		// one is counted under its rule: otherwise the lister lost or double-counted objects.
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("counts do not add up: %d listed but %d sorted (new %d + changed %d + unchanged %d + excluded %d); the excluded counted by rule sum to %d",
			r.Listed, sorted, r.New, r.Changed, r.Unchanged, r.Excluded, byRule) + also
	case !r.DryRun && accounted != planned:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("counts do not add up: %d planned (new %d + changed %d + deletions %d + kept %d) but %d accounted for (copied %d + deleted %d + failed %d + skipped %d + deletions withheld %d)",
			planned, r.New, r.Changed, r.ToDelete, r.Kept, accounted, r.Copied, r.Deleted, r.Failed, r.Skipped, r.Withheld) + also
	case len(tripped) > 0:
		r.Status, r.Error, r.Cause = report.Failed, tripped[0].Error, tripped[0].Message
		for _, g := range tripped[1:] {
			r.Cause += fmt.Sprintf(". The run also tripped %s: %s", g.Error, g.Message)
		}
		for _, p := range destProblems {
			r.Cause += ". " + p
		}
	case len(destProblems) > 0:
		r.Status, r.Error = report.Failed, destError
		r.Cause = strings.Join(destProblems, ". ") + fmt.Sprintf("; every object not written is named in s3://%s/%s", h.Config.RunBucket, r.ReportKey)
	default:
		r.Status = report.Succeeded
	}
}

// collect reads the outcome of every batch the run's manifest lists, in the manifest's order
// (DefaultReadAhead at a time), and adds each batch's failures, skips and notes to the spill
// lists. A batch with no outcome failed as a whole: each of its objects is named with the batch's
// error. No manifest means the copy phase never started: there is nothing to read.
func (h *Handler) collect(ctx context.Context, execution string, st State, r *report.Report, ls *lists) error {
	keys, err := h.manifest(ctx, execution)
	if err != nil {
		return err
	}
	ours := make(map[string]bool, len(keys))
	for _, k := range keys {
		ours[k] = true
	}
	mapErrors, err := h.mapFailures(ctx, st, ours)
	if err != nil {
		return err
	}
	phaseErr := ""
	if f := st.Failure; f != nil {
		phaseErr = fmt.Sprintf("%s: %s", f.Error, causeMessage(f.Cause))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// An ordered read-ahead: the producer queues one future per batch (at most DefaultReadAhead
	// waiting), each filled by its own goroutine; the batches are added in manifest order.
	type fetched struct {
		out   report.Outcome
		found bool
		err   error
	}
	queue := make(chan chan fetched, DefaultReadAhead)
	go func() {
		defer close(queue)
		for _, key := range keys {
			c := make(chan fetched, 1)
			select {
			case queue <- c:
			case <-ctx.Done():
				return
			}
			go func() {
				var f fetched
				f.found, f.err = h.outcome(ctx, key, &f.out)
				c <- f
			}()
		}
	}()
	var firstErr error
	i := 0
	for c := range queue {
		key := keys[i]
		i++
		f := <-c
		if firstErr != nil {
			continue // draining after an error
		}
		switch {
		case f.err != nil:
			firstErr = f.err
		case f.found:
			firstErr = ls.addOutcome(r, key, f.out)
		default:
			reason := mapErrors[key]
			if reason == "" {
				reason = "batch was not completed"
				if phaseErr != "" {
					reason += " (" + phaseErr + ")"
				}
			}
			firstErr = h.failBatch(ctx, r, ls, key, reason)
		}
		if firstErr != nil {
			cancel()
		}
	}
	return firstErr
}

// outcome reads a batch's outcome; found is false when the copier wrote none.
func (h *Handler) outcome(ctx context.Context, key string, out *report.Outcome) (bool, error) {
	outcomeKey, err := batch.OutcomeKey(key)
	if err != nil {
		return false, err
	}
	return h.getJSON(ctx, outcomeKey, out, strictjson.Unmarshal)
}

// failBatch names every object of a batch that has no outcome with the batch's error, streaming
// the batch file (its items are in key order).
func (h *Handler) failBatch(ctx context.Context, r *report.Report, ls *lists, key, reason string) error {
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("read batch %s: %w", key, err)
	}
	defer obj.Body.Close()
	// The header comes first: the batch's failures count for the destination it names.
	batches, failedBatches, failed := &r.Batches, &r.FailedBatches, &r.Failed
	dest := ""
	if _, err := batch.ReadWithHeader(obj.Body, func(hd batch.Header) error {
		if dest = hd.DestinationName; dest == "" {
			return nil
		}
		i := destinationIndex(r, dest)
		if i < 0 {
			return fmt.Errorf("batch %s writes destination %q, which the cursor does not list", key, dest)
		}
		d := &r.Destinations[i]
		batches, failedBatches, failed = &d.Batches, &d.FailedBatches, &d.Failed
		return nil
	}, func(it batch.Item) error {
		*failed++
		return ls.failures.add(report.Failure{Key: it.Key, Op: string(it.Op), Error: reason, Batch: key, Destination: dest})
	}); err != nil {
		return fmt.Errorf("read batch %s: %w", key, err)
	}
	*batches++
	*failedBatches++
	return nil
}

// preview names, as notes, what a dry run's batches hold (listed in its preview manifest, which
// only an exact restore's dry run writes): the objects the real run would remove.
func (h *Handler) preview(ctx context.Context, execution string, ls *lists) error {
	keys, err := h.manifestAt(ctx, execution, batch.PreviewManifestKey(execution))
	if err != nil {
		return err
	}
	for _, key := range keys {
		obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
		if err != nil {
			return fmt.Errorf("read batch %s: %w", key, err)
		}
		_, err = batch.Read(obj.Body, func(it batch.Item) error {
			if it.Op != batch.OpDelete {
				return nil
			}
			return ls.notes.add(report.Note{Key: it.Destination(), Note: report.NoteWouldBeRemoved + it.Reason})
		})
		obj.Body.Close()
		if err != nil {
			return fmt.Errorf("read batch %s: %w", key, err)
		}
	}
	return nil
}

// manifest reads the keys of the batches the run executes (nil when there is no manifest): those
// a ranged backup's children copied early (batch.EarlyManifestKey), then the Copy Map's.
func (h *Handler) manifest(ctx context.Context, execution string) ([]string, error) {
	early, err := h.manifestAt(ctx, execution, batch.EarlyManifestKey(execution))
	if err != nil {
		return nil, err
	}
	keys, err := h.manifestAt(ctx, execution, batch.ManifestKey(execution))
	if err != nil || keys == nil {
		return keys, err
	}
	return append(early, keys...), nil
}

// manifestAt reads the batch keys a manifest at key lists (nil when there is none).
func (h *Handler) manifestAt(ctx context.Context, execution, key string) ([]string, error) {
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
	if fault.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read s3://%s/%s: %w", h.Config.RunBucket, key, err)
	}
	defer obj.Body.Close()
	keys, err := batch.ReadManifest(obj.Body, execution)
	if err != nil {
		return nil, fmt.Errorf("s3://%s/%s: %w", h.Config.RunBucket, key, err)
	}
	if keys == nil {
		keys = []string{} // there is one, listing nothing
	}
	return keys, nil
}

// mapResult is the part of a ResultWriter record the reporter reads.
type mapResult struct {
	Input string `json:"Input"`
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

func (m mapResult) batchKey() string {
	var in struct {
		BatchKey string `json:"batchKey"`
	}
	_ = json.Unmarshal([]byte(m.Input), &in)
	return in.BatchKey
}

// resultFiles is the part of the ResultWriter's manifest.json the reporter reads (AWS's format,
// decoded leniently).
type resultFiles struct {
	ResultFiles map[string][]struct {
		Key string `json:"Key"`
	} `json:"ResultFiles"`
}

// mapFailures reads the Map run's FAILED result files: batch key → the child execution's error,
// for the run's own batches (ours). The Map's output names the run's manifest.json; when the Map
// failed (its tolerated failures exceeded, say) the caught error is all the state holds, but the
// ResultWriter has written the results all the same, so the run's manifest is found under the
// ResultWriter's prefix (see findMapRun).
func (h *Handler) mapFailures(ctx context.Context, st State, ours map[string]bool) (map[string]string, error) {
	errs := map[string]string{}
	bucket, key := "", ""
	switch {
	case st.Copy != nil && st.Copy.ResultWriterDetails.Key != "":
		bucket, key = st.Copy.ResultWriterDetails.Bucket, st.Copy.ResultWriterDetails.Key
	case st.Failure != nil && len(ours) > 0:
		var err error
		if bucket, key, err = h.findMapRun(ctx, ours); err != nil || key == "" {
			return errs, err
		}
	default:
		return errs, nil
	}
	var manifest resultFiles
	found, err := h.getJSONFrom(ctx, bucket, key, &manifest, json.Unmarshal)
	if err != nil || !found {
		return errs, err
	}
	reasons := map[string]string{} // one copy of each distinct reason
	for _, f := range manifest.ResultFiles["FAILED"] {
		err := h.eachResult(ctx, bucket, f.Key, func(rec mapResult) bool {
			if k := rec.batchKey(); ours[k] {
				reason := report.Shorten(fmt.Sprintf("batch failed: %s: %s", rec.Error, causeMessage(rec.Cause)), maxReasonBytes)
				if r, ok := reasons[reason]; ok {
					reason = r
				} else {
					reasons[reason] = reason
				}
				errs[k] = reason
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return errs, nil
}

// findMapRun finds the manifest.json of the Map run that ran this execution's batches (ours)
// under the ResultWriter's prefix: newest first, it reads each manifest and the first record of
// its first result file, until a record names one of ours. A Map run belongs to one execution,
// and each record's input names its batch, so one record tells. ("", "") when none is found.
func (h *Handler) findMapRun(ctx context.Context, ours map[string]bool) (bucket, key string, err error) {
	bucket = h.Config.RunBucket
	prefix := h.MapResultsPrefix
	if prefix == "" {
		prefix = DefaultMapResultsPrefix
	}
	type candidate struct {
		key      string
		modified time.Time
	}
	var manifests []candidate
	p := s3.NewListObjectsV2Paginator(h.S3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return "", "", fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); strings.HasSuffix(k, "/manifest.json") {
				manifests = append(manifests, candidate{k, aws.ToTime(o.LastModified)})
			}
		}
	}
	sort.SliceStable(manifests, func(i, j int) bool { return manifests[i].modified.After(manifests[j].modified) })
	for _, m := range manifests {
		var rf resultFiles
		found, err := h.getJSONFrom(ctx, bucket, m.key, &rf, json.Unmarshal)
		if err != nil {
			return "", "", err
		}
		if !found {
			continue
		}
		for _, status := range []string{"FAILED", "SUCCEEDED", "PENDING"} {
			if files := rf.ResultFiles[status]; len(files) > 0 {
				mine := false
				if err := h.eachResult(ctx, bucket, files[0].Key, func(rec mapResult) bool {
					mine = ours[rec.batchKey()]
					return false
				}); err != nil {
					return "", "", err
				}
				if mine {
					return bucket, m.key, nil
				}
				break
			}
		}
	}
	return "", "", nil
}

// eachResult streams the records of a ResultWriter result file (a JSON array) to fn until fn
// returns false; a missing file has none.
func (h *Handler) eachResult(ctx context.Context, bucket, key string, fn func(mapResult) bool) error {
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if fault.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	defer obj.Body.Close()
	dec := json.NewDecoder(obj.Body)
	if _, err := dec.Token(); err != nil { // [
		return fmt.Errorf("decode s3://%s/%s: %w", bucket, key, err)
	}
	for dec.More() {
		var rec mapResult
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("decode s3://%s/%s: %w", bucket, key, err)
		}
		if !fn(rec) {
			return nil
		}
	}
	return nil
}

func (h *Handler) getJSON(ctx context.Context, key string, v any, decode func([]byte, any) error) (bool, error) {
	return h.getJSONFrom(ctx, h.Config.RunBucket, key, v, decode)
}

// getJSONFrom reads a JSON object with decode; a missing object is (false, nil).
func (h *Handler) getJSONFrom(ctx context.Context, bucket, key string, v any, decode func([]byte, any) error) (bool, error) {
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if fault.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	defer obj.Body.Close()
	data, err := io.ReadAll(obj.Body)
	if err != nil {
		return false, fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	if err := decode(data, v); err != nil {
		return false, fmt.Errorf("decode s3://%s/%s: %w", bucket, key, err)
	}
	return true, nil
}

// prefixOf reads the prefix selection of a backup's or a restore's input, for the report.
func prefixOf(input json.RawMessage) string {
	var in struct {
		Prefix   string   `json:"prefix"`
		Prefixes []string `json:"prefixes"`
		Detail   struct {
			Prefix string `json:"prefix"`
		} `json:"detail"`
	}
	_ = json.Unmarshal(input, &in)
	switch {
	case in.Prefix != "":
		return in.Prefix
	case len(in.Prefixes) > 0:
		return strings.Join(in.Prefixes, ",")
	}
	return in.Detail.Prefix
}

// requestedByOf is the input's requestedBy (restore input; the planner has validated it), cut
// to restoreinput.MaxRequestedByBytes should a run's input not have been.
func requestedByOf(input json.RawMessage) string {
	var in struct {
		RequestedBy string `json:"requestedBy"`
	}
	_ = json.Unmarshal(input, &in)
	return report.Shorten(in.RequestedBy, restoreinput.MaxRequestedByBytes)
}

// causeMessage extracts errorMessage from a Lambda error cause, which is the error payload as JSON.
func causeMessage(cause string) string {
	var payload struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.Unmarshal([]byte(cause), &payload); err == nil && payload.ErrorMessage != "" {
		return payload.ErrorMessage
	}
	return cause
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}
