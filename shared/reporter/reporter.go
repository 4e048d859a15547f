// Package reporter is the reporter function: it always runs last, reads the outcome of every
// batch the run's manifest lists (and the Map's failed child executions), names every object that
// was not backed up with its error, checks that the counts add up, weighs the backup guards'
// verdicts, writes runs/<execution>/report.json, and tells the state machine whether the run
// succeeded.
package reporter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// S3 is what the reporter needs of an S3 client.
type S3 interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// Config is the reporter's configuration, from its environment.
type Config struct {
	SourceBucket, BackupBucket, RunBucket string
}

// ConfigFromEnv reads SOURCE_BUCKET, BACKUP_BUCKET and RUN_BUCKET.
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{SourceBucket: r.Required("SOURCE_BUCKET"), BackupBucket: r.Required("BACKUP_BUCKET"), RunBucket: r.Required("RUN_BUCKET")}
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
}

// Handle builds, stores and returns the report. Its error (only when the report cannot be
// written) fails the execution.
func (h *Handler) Handle(ctx context.Context, req Request) (report.Report, error) {
	r, err := h.handle(ctx, req)
	if err != nil {
		return report.Report{}, fault.Boundary(err)
	}
	return r.Summary(), nil
}

func (h *Handler) handle(ctx context.Context, req Request) (report.Report, error) {
	if req.Execution == "" {
		return report.Report{}, &fault.InvalidInput{Msg: "reporter request has no execution name"}
	}
	st, d, err := decodeState(req.State)
	if err != nil {
		return report.Report{}, err
	}
	r := report.Report{
		Execution: req.Execution, StartedAt: req.StartedAt,
		SourceBucket: h.Config.SourceBucket, BackupBucket: h.Config.BackupBucket,
		RestoredAt: st.RestoredAt, TargetBucket: st.TargetBucket, TargetPrefix: st.TargetPrefix,
		DryRun: st.DryRun, ReportKey: batch.ReportKey(req.Execution),
		Guards: d.guards, Failures: []report.Failure{}, Skips: []report.Skip{}, Notes: []report.Note{},
	}
	r.Prefix = prefixOf(req.Input)
	if c := d.totals; c != nil {
		r.Listed, r.New, r.Changed, r.Unchanged = c.Listed, c.New, c.Changed, c.Unchanged
		r.ToDelete, r.Kept, r.Archived = c.ToDelete, c.Kept, c.Archived
		r.BackupObjects, r.BytesToCopy, r.ListInvocations = c.BackupObjects, c.BytesToCopy, c.Invocations
		r.Retries = c.Retries
	}
	if g := find(d.guards, guard.Deletion); g != nil && g.Tripped && !st.DryRun {
		r.Withheld = r.ToDelete // no deletion batch is in the manifest
	}
	// Once the listing (or planning) is done, the copy phase runs the batches its manifest lists,
	// or ran none of them if it never started: either way, the outcomes tell.
	copyPhase := st.Done && !st.DryRun
	if copyPhase {
		if err := h.collect(ctx, req.Execution, st, &r); err != nil {
			return report.Report{}, err
		}
	}
	h.decide(st, &r, copyPhase)
	r.FinishedAt = h.now().UTC().Format("2006-01-02T15:04:05.000Z") // as $$.Execution.StartTime
	sort.Slice(r.Failures, func(i, j int) bool { return r.Failures[i].Key < r.Failures[j].Key })
	sort.Slice(r.Skips, func(i, j int) bool { return r.Skips[i].Key < r.Skips[j].Key })
	sort.SliceStable(r.Notes, func(i, j int) bool { return r.Notes[i].Key < r.Notes[j].Key })

	body, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return report.Report{}, err
	}
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(h.Config.RunBucket), Key: aws.String(r.ReportKey),
		Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
	}); err != nil {
		return report.Report{}, fmt.Errorf("write report s3://%s/%s: %w", h.Config.RunBucket, r.ReportKey, err)
	}
	h.Logger.InfoContext(ctx, "report", "execution", r.Execution, "status", r.Status, "error", r.Error,
		"listed", r.Listed, "copied", r.Copied, "deleted", r.Deleted, "failed", r.Failed, "skipped", r.Skipped,
		"deletionsWithheld", r.Withheld, "batches", r.Batches, "failedBatches", r.FailedBatches, "report", r.ReportKey)
	return r, nil
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
	switch {
	case st.Failure != nil && !copyPhase:
		r.Status, r.Error, r.Cause = report.Failed, st.Failure.Error, causeMessage(st.Failure.Cause)
	case r.Failed > 0 || r.FailedBatches > 0:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("%d objects were not %s (%d of %d batches failed); every one is named in s3://%s/%s",
			r.Failed, what, r.FailedBatches, r.Batches, h.Config.RunBucket, r.ReportKey) + also
	case st.Failure != nil:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("the copy phase failed (%s: %s)", st.Failure.Error, causeMessage(st.Failure.Cause)) + also
	case !r.DryRun && accounted != planned:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("counts do not add up: %d planned (new %d + changed %d + deletions %d + kept %d) but %d accounted for (copied %d + deleted %d + failed %d + skipped %d + deletions withheld %d)",
			planned, r.New, r.Changed, r.ToDelete, r.Kept, accounted, r.Copied, r.Deleted, r.Failed, r.Skipped, r.Withheld) + also
	case len(tripped) > 0:
		r.Status, r.Error, r.Cause = report.Failed, tripped[0].Error, tripped[0].Message
		for _, g := range tripped[1:] {
			r.Cause += fmt.Sprintf(". The run also tripped %s: %s", g.Error, g.Message)
		}
	default:
		r.Status = report.Succeeded
	}
}

// collect reads the outcome of every batch the run's manifest lists. A batch with no outcome
// failed as a whole: each of its objects is named with the batch's error. No manifest means the
// copy phase never started: there is nothing to read.
func (h *Handler) collect(ctx context.Context, execution string, st State, r *report.Report) error {
	keys, err := h.manifest(ctx, execution)
	if err != nil {
		return err
	}
	mapErrors, err := h.mapFailures(ctx, st.Copy)
	if err != nil {
		return err
	}
	phaseErr := ""
	if f := st.Failure; f != nil {
		phaseErr = fmt.Sprintf("%s: %s", f.Error, causeMessage(f.Cause))
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, key := range keys {
		g.Go(func() error {
			return h.collectBatch(gctx, key, mapErrors, phaseErr, &mu, r)
		})
	}
	return g.Wait()
}

// manifest reads the keys of the batches the run executes (nil when there is no manifest).
func (h *Handler) manifest(ctx context.Context, execution string) ([]string, error) {
	key := batch.ManifestKey(execution)
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
	return keys, nil
}

func (h *Handler) collectBatch(ctx context.Context, key string, mapErrors map[string]string, phaseErr string, mu *sync.Mutex, r *report.Report) error {
	outcomeKey, err := batch.OutcomeKey(key)
	if err != nil {
		return err
	}
	var out report.Outcome
	found, err := h.getJSON(ctx, outcomeKey, &out, strictjson.Unmarshal)
	if err != nil {
		return err
	}
	if found {
		mu.Lock()
		defer mu.Unlock()
		r.Batches++
		r.Copied += int64(out.Copied)
		r.Deleted += int64(out.Deleted)
		r.Failed += int64(out.Failed)
		r.Skipped += int64(out.Skipped)
		r.AlreadyPresent += int64(out.AlreadyPresent)
		r.SourceChanged += int64(out.SourceChanged)
		r.BytesCopied += out.BytesCopied
		r.Retries += out.Retries
		for _, f := range out.Failures {
			f.Batch = key
			r.Failures = append(r.Failures, f)
		}
		r.Skips = append(r.Skips, out.Skips...)
		r.Notes = append(r.Notes, out.Notes...)
		return nil
	}
	reason := mapErrors[key]
	if reason == "" {
		reason = "batch was not completed"
		if phaseErr != "" {
			reason += " (" + phaseErr + ")"
		}
	}
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("read batch %s: %w", key, err)
	}
	defer obj.Body.Close()
	var failures []report.Failure
	if _, err := batch.Read(obj.Body, func(it batch.Item) error {
		failures = append(failures, report.Failure{Key: it.Key, Op: string(it.Op), Error: reason, Batch: key})
		return nil
	}); err != nil {
		return fmt.Errorf("read batch %s: %w", key, err)
	}
	mu.Lock()
	defer mu.Unlock()
	r.Batches++
	r.FailedBatches++
	r.Failed += int64(len(failures))
	r.Failures = append(r.Failures, failures...)
	return nil
}

// mapFailures reads the Map's FAILED result files (AWS's format, decoded leniently): batch key →
// the child execution's error.
func (h *Handler) mapFailures(ctx context.Context, m *MapResult) (map[string]string, error) {
	errs := map[string]string{}
	if m == nil || m.ResultWriterDetails.Key == "" {
		return errs, nil
	}
	var manifest struct {
		ResultFiles struct {
			FAILED []struct{ Key string } `json:"FAILED"`
		} `json:"ResultFiles"`
	}
	found, err := h.getJSONFrom(ctx, m.ResultWriterDetails.Bucket, m.ResultWriterDetails.Key, &manifest, json.Unmarshal)
	if err != nil || !found {
		return errs, err
	}
	for _, f := range manifest.ResultFiles.FAILED {
		var records []struct {
			Input string `json:"Input"`
			Error string `json:"Error"`
			Cause string `json:"Cause"`
		}
		if _, err := h.getJSONFrom(ctx, m.ResultWriterDetails.Bucket, f.Key, &records, json.Unmarshal); err != nil {
			return nil, err
		}
		for _, rec := range records {
			var in struct {
				BatchKey string `json:"batchKey"`
			}
			if json.Unmarshal([]byte(rec.Input), &in) == nil && in.BatchKey != "" {
				errs[in.BatchKey] = fmt.Sprintf("batch failed: %s: %s", rec.Error, causeMessage(rec.Cause))
			}
		}
	}
	return errs, nil
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
