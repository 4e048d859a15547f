// Package reporter is the reporter function: it always runs last, reads every batch's outcome
// (and the Map's failed child executions), names every object that was not backed up with its
// error, checks that the counts add up, writes runs/<execution>/report.json, and tells the state
// machine whether the run succeeded.
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
	"github.com/bucketvault/bucketvault/shared/report"
)

// S3 is what the reporter needs of an S3 client.
type S3 interface {
	s3.ListObjectsV2APIClient
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

// Totals are the planning counts the lister (backup) or the planner (restore) carries in its cursor.
type Totals struct {
	Listed        int64 `json:"listed"`
	New           int64 `json:"new"`
	Changed       int64 `json:"changed"`
	Unchanged     int64 `json:"unchanged"`
	ToDelete      int64 `json:"toDelete"`
	Kept          int64 `json:"kept"`
	Archived      int64 `json:"archived"`
	BackupObjects int64 `json:"backupObjects"`
	BytesToCopy   int64 `json:"bytesToCopy"`
	Retries       int64 `json:"retries"`
	Invocations   int   `json:"invocations"`
}

// State is the state machine's data when Report runs. It comes from our own state machines
// (backup or restore), so it is decoded leniently: each reads the fields it has.
type State struct {
	Cursor       *Totals     `json:"cursor"`
	Done         bool        `json:"done"`
	DryRun       bool        `json:"dryRun"`
	BatchPrefix  string      `json:"batchPrefix"`
	RestoredAt   string      `json:"restoredAt"`
	TargetBucket string      `json:"targetBucket"`
	TargetPrefix string      `json:"targetPrefix"`
	Copy         *MapResult  `json:"copy"`
	Failure      *StateError `json:"failure"`
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
	var st State
	if len(req.State) > 0 {
		if err := json.Unmarshal(req.State, &st); err != nil {
			return report.Report{}, &fault.InvalidInput{Msg: fmt.Sprintf("reporter state: %v", err)}
		}
	}
	r := report.Report{
		Execution: req.Execution, StartedAt: req.StartedAt,
		SourceBucket: h.Config.SourceBucket, BackupBucket: h.Config.BackupBucket,
		RestoredAt: st.RestoredAt, TargetBucket: st.TargetBucket, TargetPrefix: st.TargetPrefix,
		DryRun: st.DryRun, ReportKey: batch.ReportKey(req.Execution),
		Failures: []report.Failure{}, Skips: []report.Skip{},
	}
	r.Prefix = prefixOf(req.Input)
	if c := st.Cursor; c != nil {
		r.Listed, r.New, r.Changed, r.Unchanged = c.Listed, c.New, c.Changed, c.Unchanged
		r.ToDelete, r.Kept, r.Archived = c.ToDelete, c.Kept, c.Archived
		r.BackupObjects, r.BytesToCopy, r.ListInvocations = c.BackupObjects, c.BytesToCopy, c.Invocations
		r.Retries = c.Retries
	}
	copyRan := st.Copy != nil || (st.Failure != nil && st.Done)
	if copyRan {
		if err := h.collect(ctx, req.Execution, st, &r); err != nil {
			return report.Report{}, err
		}
	}
	h.decide(st, &r, copyRan)
	r.FinishedAt = h.now().UTC().Format("2006-01-02T15:04:05.000Z") // as $$.Execution.StartTime
	sort.Slice(r.Failures, func(i, j int) bool { return r.Failures[i].Key < r.Failures[j].Key })
	sort.Slice(r.Skips, func(i, j int) bool { return r.Skips[i].Key < r.Skips[j].Key })

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
		"batches", r.Batches, "failedBatches", r.FailedBatches, "report", r.ReportKey)
	return r, nil
}

// decide sets the status: SUCCEEDED only when nothing failed and every planned object is
// accounted for.
func (h *Handler) decide(st State, r *report.Report, copyRan bool) {
	planned := r.New + r.Changed + r.ToDelete + r.Kept
	accounted := r.Copied + r.Deleted + r.Failed + r.Skipped
	what := "backed up"
	if r.RestoredAt != "" {
		what = "restored"
	}
	switch {
	case st.Failure != nil && !copyRan:
		r.Status, r.Error, r.Cause = report.Failed, st.Failure.Error, causeMessage(st.Failure.Cause)
	case r.Failed > 0 || r.FailedBatches > 0:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("%d objects were not %s (%d of %d batches failed); every one is named in s3://%s/%s",
			r.Failed, what, r.FailedBatches, r.Batches, h.Config.RunBucket, r.ReportKey)
	case st.Failure != nil:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("the copy phase failed (%s: %s)", st.Failure.Error, causeMessage(st.Failure.Cause))
	case !r.DryRun && accounted != planned:
		r.Status, r.Error = report.Failed, "BackupIncomplete"
		r.Cause = fmt.Sprintf("counts do not add up: %d planned (new %d + changed %d + deletions %d + kept %d) but %d accounted for (copied %d + deleted %d + failed %d + skipped %d)",
			planned, r.New, r.Changed, r.ToDelete, r.Kept, accounted, r.Copied, r.Deleted, r.Failed, r.Skipped)
	default:
		r.Status = report.Succeeded
	}
}

// collect reads the outcome of every batch of the run. A batch with no outcome failed as a
// whole: each of its objects is named with the batch's error.
func (h *Handler) collect(ctx context.Context, execution string, st State, r *report.Report) error {
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
	p := s3.NewListObjectsV2Paginator(h.S3, &s3.ListObjectsV2Input{
		Bucket: aws.String(h.Config.RunBucket), Prefix: aws.String(batch.Prefix(execution)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(gctx)
		if err != nil {
			_ = g.Wait()
			return fmt.Errorf("list batches: %w", err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			g.Go(func() error {
				return h.collectBatch(gctx, key, mapErrors, phaseErr, &mu, r)
			})
		}
	}
	return g.Wait()
}

func (h *Handler) collectBatch(ctx context.Context, key string, mapErrors map[string]string, phaseErr string, mu *sync.Mutex, r *report.Report) error {
	outcomeKey, err := batch.OutcomeKey(key)
	if err != nil {
		return err
	}
	var out report.Outcome
	found, err := h.getJSON(ctx, outcomeKey, &out)
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

// mapFailures reads the Map's FAILED result files: batch key → the child execution's error.
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
	found, err := h.getJSONFrom(ctx, m.ResultWriterDetails.Bucket, m.ResultWriterDetails.Key, &manifest)
	if err != nil || !found {
		return errs, err
	}
	for _, f := range manifest.ResultFiles.FAILED {
		var records []struct {
			Input string `json:"Input"`
			Error string `json:"Error"`
			Cause string `json:"Cause"`
		}
		if _, err := h.getJSONFrom(ctx, m.ResultWriterDetails.Bucket, f.Key, &records); err != nil {
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

func (h *Handler) getJSON(ctx context.Context, key string, v any) (bool, error) {
	return h.getJSONFrom(ctx, h.Config.RunBucket, key, v)
}

// getJSONFrom reads a JSON object; a missing object is (false, nil).
func (h *Handler) getJSONFrom(ctx context.Context, bucket, key string, v any) (bool, error) {
	obj, err := h.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if fault.IsCode(err, "NoSuchKey", "NotFound") {
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
	if err := json.Unmarshal(data, v); err != nil {
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
