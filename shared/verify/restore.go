package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/shared/planner"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
	"github.com/bucketvault/bucketvault/shared/runlog"
)

// Defaults and bounds of the restore sample.
const (
	// DefaultRestoreSample is how many verified objects a drill restores when its input names no
	// restoreSample and a drill bucket is configured.
	DefaultRestoreSample = 20
	// MaxRestoreSample bounds restoreSample: the keys travel in the restore execution's input
	// (at most 1,024 bytes each, within Step Functions' 256 KiB).
	MaxRestoreSample = 100
	// ScratchPrefix is where in the drill bucket a drill's restore writes: ScratchPrefix +
	// <verify execution> + "/" + the key.
	ScratchPrefix = "drill/"
	// ThawTier is the retrieval tier a drill that thaws asks for (the restore's default).
	ThawTier = restoreinput.DefaultThawTier
)

// ThawPrices are the Standard-tier retrieval list prices in us-east-1 (Amazon S3 pricing;
// AWS re:Post "manage data retrieval costs" works the GLACIER example): US dollars per GB
// retrieved and per 1,000 restore requests.
var ThawPrices = map[string]struct{ PerGB, Per1000 float64 }{
	"GLACIER":      {PerGB: 0.01, Per1000: 0.05},
	"DEEP_ARCHIVE": {PerGB: 0.02, Per1000: 0.10},
}

// RestoreRequest is the restore execution the verify state machine starts: its name and its
// input (a restoreinput.Options).
type RestoreRequest struct {
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// RestoreOutcome is what the state machine hands back after the restore execution: the fields
// its ResultSelector picks from startExecution.sync:2's result, or a catcher's error.
type RestoreOutcome struct {
	Status    string     `json:"status,omitempty"`
	StartDate *epochTime `json:"startDate,omitempty"`
	StopDate  *epochTime `json:"stopDate,omitempty"`
	Error     string     `json:"Error,omitempty"`
	Cause     string     `json:"Cause,omitempty"`
}

// epochTime reads Step Functions' dates: epoch milliseconds (a number) or an RFC 3339 string.
type epochTime struct{ time.Time }

func (t *epochTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.Parse(time.RFC3339Nano, s)
		t.Time = v
		return err
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("date %s: want epoch milliseconds or RFC 3339", b)
	}
	t.Time = time.UnixMilli(int64(ms)).UTC()
	return nil
}

func (t epochTime) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, t.UnixMilli(), 10), nil
}

// candidate is an object the restore sample may take: verified identical in source and backup
// (SourceETag as the source's HEAD gave it), or archived in the backup (StorageClass).
type candidate struct {
	Key            string    `json:"key"`
	P              uint64    `json:"p"`
	SourceETag     string    `json:"sourceETag,omitempty"`
	Size           int64     `json:"size"`
	BackupModified time.Time `json:"backupModified"`
	StorageClass   string    `json:"storageClass,omitempty"`
}

func verifiedCandidate(key string, src, bak *s3.HeadObjectOutput) *candidate {
	return &candidate{Key: key, SourceETag: change.NormalizeETag(aws.ToString(src.ETag)), Size: aws.ToInt64(src.ContentLength), BackupModified: aws.ToTime(bak.LastModified)}
}

// priority is a key's place in the restore sample's draw: the bottom n priorities are a uniform
// random pick, the same for the same seed whatever order (and retries) the keys come in.
func priority(seed int64, key string) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(seed))
	sum := sha256.Sum256(append(b[:], key...))
	return binary.BigEndian.Uint64(sum[:8])
}

// picker holds the n candidates of lowest priority.
type picker struct {
	n     int
	picks []candidate
	dirty bool
}

func (p *picker) offer(c candidate) {
	if p.n <= 0 {
		return
	}
	if len(p.picks) < p.n {
		p.picks, p.dirty = append(p.picks, c), true
		return
	}
	worst := 0
	for i, x := range p.picks {
		if x.P > p.picks[worst].P {
			worst = i
		}
	}
	if c.P < p.picks[worst].P {
		p.picks[worst], p.dirty = c, true
	}
}

// Keys in the run bucket.
func picksKey(execution string, invocation int) string {
	return fmt.Sprintf("%spicks/%06d.jsonl", verifyPrefix(execution), invocation)
}

// RestoreSampleKey names the restore sample's entries as the restore was asked for them.
func RestoreSampleKey(execution string) string {
	return verifyPrefix(execution) + "restore-sample.jsonl"
}

// ScratchPrefixOf is where a drill's restore writes in the drill bucket.
func ScratchPrefixOf(execution string) string { return ScratchPrefix + execution + "/" }

// RestoreName is the restore execution a drill starts: restore-<the drill's time and id>, so
// that it sorts beside the drill among the runs (runlog), or restore-drill-<hash> for a drill
// whose name has no time.
func RestoreName(execution string) string {
	if rest, ok := strings.CutPrefix(execution, runlog.Verify+"-"); ok && len(rest) > 0 && len(runlog.Restore)+1+len(rest) <= 80 {
		return runlog.Restore + "-" + rest
	}
	sum := sha256.Sum256([]byte(execution))
	return runlog.Restore + "-drill-" + hex.EncodeToString(sum[:8])
}

func (h *Handler) loadPicks(ctx context.Context, cur *Cursor) (*picker, error) {
	p := &picker{n: int(cur.RestoreN)}
	if cur.Picks == "" || p.n == 0 {
		return p, nil
	}
	return p, h.readJSONL(ctx, cur.Picks, func(line []byte) error {
		var c candidate
		if err := json.Unmarshal(line, &c); err != nil {
			return err
		}
		p.picks = append(p.picks, c)
		return nil
	})
}

// savePicks writes the picks as this invocation leaves them: a retried invocation reads the
// file its cursor names, not a failed attempt's.
func (h *Handler) savePicks(ctx context.Context, execution string, cur *Cursor, p *picker) error {
	body, err := jsonLines(p.picks)
	if err != nil {
		return err
	}
	key := picksKey(execution, cur.Tally.Invocations)
	if err := h.put(ctx, key, body); err != nil {
		return err
	}
	cur.Picks = key
	return nil
}

func jsonLines[T any](items []T) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// restoreState is the restore sample once drawn: where it went and how far the comparison is.
type restoreState struct {
	Execution string `json:"execution"`
	Bucket    string `json:"bucket"`
	Prefix    string `json:"prefix"`
	Entries   int    `json:"entries"` // lines of RestoreSampleKey
	Next      int    `json:"next"`    // the next entry to compare
}

// requestRestore draws the restore sample from the picks and returns the restore execution to
// run, or nil (no restore sample, nothing to restore: the note says why).
func (h *Handler) requestRestore(ctx context.Context, execution string, cur *Cursor) (*RestoreRequest, error) {
	if cur.RestoreN == 0 {
		return nil, nil
	}
	p, err := h.loadPicks(ctx, cur)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(p.picks, func(a, b candidate) int { return strings.Compare(a.Key, b.Key) })
	rs := &report.VerifyRestore{Requested: cur.RestoreN, Sampled: int64(len(p.picks)), Thaw: cur.Thaw,
		Execution: RestoreName(execution), Target: "s3://" + h.Config.DrillBucket + "/" + ScratchPrefixOf(execution)}
	cur.Tally.Restore = rs
	var send []candidate
	thaw := map[string][2]int64{} // class → objects, bytes
	for _, c := range p.picks {
		if c.StorageClass != "" {
			rs.Archived++
			t := thaw[c.StorageClass]
			thaw[c.StorageClass] = [2]int64{t[0] + 1, t[1] + c.Size}
			if !cur.Thaw {
				continue
			}
		}
		send = append(send, c)
	}
	rs.ThawCost = thawEstimate(thaw)
	rs.Restored = int64(len(send))
	if len(send) == 0 {
		rs.Status = "NOT_STARTED"
		return nil, nil
	}
	body, err := jsonLines(send)
	if err != nil {
		return nil, err
	}
	if err := h.put(ctx, RestoreSampleKey(execution), body); err != nil {
		return nil, err
	}
	keys := make([]string, len(send))
	for i, c := range send {
		keys[i] = c.Key
	}
	// The backup as it stands now: the versions the drill just verified.
	in := map[string]any{
		"at": h.now().UTC().Format(time.RFC3339Nano), "keys": keys,
		"targetBucket": h.Config.DrillBucket, "targetPrefix": ScratchPrefixOf(execution),
		"requestedBy": "bucketvault verify " + execution,
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if _, err := restoreinput.Parse(raw); err != nil {
		return nil, fmt.Errorf("the restore sample's restore input: %w", err)
	}
	cur.Restore = &restoreState{Execution: rs.Execution, Bucket: h.Config.DrillBucket, Prefix: ScratchPrefixOf(execution), Entries: len(send)}
	cur.Phase = PhaseRestore
	return &RestoreRequest{Name: rs.Execution, Input: raw}, nil
}

// thawEstimate prices thawing the archived versions by class (nil when none).
func thawEstimate(byClass map[string][2]int64) *report.ThawEstimate {
	if len(byClass) == 0 {
		return nil
	}
	e := &report.ThawEstimate{Tier: ThawTier}
	var wait time.Duration
	for _, class := range slices.Sorted(maps.Keys(byClass)) {
		n := byClass[class]
		e.Objects += n[0]
		e.Bytes += n[1]
		p := ThawPrices[class]
		e.USD += float64(n[1])/1e9*p.PerGB + float64(n[0])/1000*p.Per1000
		wait = max(wait, planner.ThawTime(ThawTier, class))
	}
	e.USD = math.Round(e.USD*1e6) / 1e6
	e.WaitTime = wait.String()
	return e
}

// restored records the restore execution's outcome and starts the comparison.
func (h *Handler) restored(cur *Cursor, o *RestoreOutcome) {
	rs := cur.Tally.Restore
	rs.Status, rs.Error, rs.Cause = o.Status, o.Error, o.Cause
	if o.Error != "" {
		rs.Status = report.Failed
		if st, start, stop, ok := describedFailure(o.Cause); ok {
			rs.Status, o.StartDate, o.StopDate = st, start, stop
		}
	}
	if o.StartDate != nil && o.StopDate != nil {
		rs.Seconds = o.StopDate.Sub(o.StartDate.Time).Seconds()
	}
	cur.Phase = PhaseCompare
}

// describedFailure reads a failed startExecution.sync's cause: the child's DescribeExecution
// result as JSON text (its status and dates).
func describedFailure(cause string) (status string, start, stop *epochTime, ok bool) {
	var d struct {
		Status    string     `json:"Status"`
		StartDate *epochTime `json:"StartDate"`
		StopDate  *epochTime `json:"StopDate"`
	}
	if err := json.Unmarshal([]byte(cause), &d); err != nil || d.Status == "" {
		return "", nil, nil, false
	}
	return d.Status, d.StartDate, d.StopDate, true
}

// compare compares the restored copies with the source, from the cursor on, until all are
// compared (true) or the budget is spent; then the timing per object and per GB.
func (h *Handler) compare(ctx context.Context, execution string, cur *Cursor, b *budget) (bool, error) {
	st, rs := cur.Restore, cur.Tally.Restore
	entries, err := readLines[candidate](ctx, h, RestoreSampleKey(execution))
	if err != nil {
		return false, err
	}
	notRestored := h.restoreFailures(ctx, st.Execution)
	w := &jsonlWriter{h: h, key: func(seq int) string { return FindingsKey(execution, seq) }, seq: &cur.FindingFiles, max: findingsFlush}
	for st.Next < len(entries) {
		if b.spent() {
			return false, w.flush(ctx)
		}
		part := entries[st.Next:min(st.Next+h.Config.Concurrency*4, len(entries))]
		results := make([]result, len(part))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(h.Config.Concurrency)
		for i, c := range part {
			g.Go(func() error {
				r, err := h.compareOne(gctx, st, c, notRestored[c.Key])
				results[i] = r
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return false, err
		}
		for _, r := range results {
			if len(r.findings) > 0 {
				r.rd.Mismatches = 1 // a copy that could not be read counts as one that differs
			}
			rs.Compared += r.rd.Compared
			rs.Identical += r.rd.Identical
			rs.ChangedSince += r.rd.ChangedSince
			rs.Mismatches += r.rd.Mismatches
			rs.Bytes += r.rd.Bytes
			for _, f := range r.findings {
				if err := w.add(ctx, f); err != nil {
					return false, err
				}
			}
		}
		st.Next += len(part)
		b.used += int64(len(part))
	}
	if rs.Restored > 0 && rs.Seconds > 0 {
		rs.SecondsPerObject = round3(rs.Seconds / float64(rs.Restored))
		if rs.Bytes > 0 {
			rs.SecondsPerGB = round3(rs.Seconds / (float64(rs.Bytes) / 1e9))
		}
	}
	rs.Seconds = round3(rs.Seconds)
	return true, w.flush(ctx)
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// restoreFailures names the objects the restore's report says it did not restore, with why
// (none when its report is missing: the comparison finds them anyway).
func (h *Handler) restoreFailures(ctx context.Context, execution string) map[string]string {
	out := map[string]string{}
	body, err := h.get(ctx, "runs/"+execution+"/report.json")
	if err != nil {
		return out
	}
	var r report.Report
	if json.Unmarshal(body, &r) == nil {
		for _, f := range r.Failures {
			out[f.Key] = f.Error
		}
	}
	return out
}

// compareOne compares one restored copy with the source: content headers, user metadata, tags
// and bytes. An object the source changed since its backup version is not compared.
func (h *Handler) compareOne(ctx context.Context, st *restoreState, c candidate, restoreError string) (result, error) {
	var r result
	src, err := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(h.Config.SourceBucket), Key: aws.String(c.Key)})
	if fault.IsCode(err, "NotFound", "NoSuchKey") {
		r.rd.ChangedSince = 1
		return r, nil
	}
	if err != nil {
		return r, h.readError(c.Key, "source", h.Config.SourceBucket, err, &r)
	}
	etag := change.NormalizeETag(aws.ToString(src.ETag))
	if (c.SourceETag != "" && etag != c.SourceETag) || aws.ToTime(src.LastModified).After(c.BackupModified) {
		r.rd.ChangedSince = 1
		return r, nil
	}
	scratch := st.Prefix + c.Key
	dst, err := h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(st.Bucket), Key: aws.String(scratch)})
	if fault.IsCode(err, "NotFound", "NoSuchKey") {
		detail := fmt.Sprintf("not in s3://%s/%s after restore %s", st.Bucket, scratch, st.Execution)
		if restoreError != "" {
			detail += ": " + restoreError
		}
		r.mismatch(report.Mismatch{Key: c.Key, Kind: report.MismatchNotRestored, Detail: detail, SourceETag: etag, SourceSize: aws.ToInt64(src.ContentLength)})
		return r, nil
	}
	if err != nil {
		return r, h.readError(c.Key, "restored copy", st.Bucket, err, &r)
	}
	r.rd.Compared = 1
	differ := func(kind, field, sv, dv string) {
		r.mismatch(report.Mismatch{Key: c.Key, Kind: kind, Field: field, SourceValue: sv, RestoredValue: dv,
			SourceSize: aws.ToInt64(src.ContentLength), BackupSize: aws.ToInt64(dst.ContentLength),
			Detail: fmt.Sprintf("%s differs: source %q, restored copy %q (s3://%s/%s)", field, sv, dv, st.Bucket, scratch)})
	}
	for _, hd := range []struct {
		name   string
		sv, dv *string
	}{
		{"Content-Type", src.ContentType, dst.ContentType},
		{"Cache-Control", src.CacheControl, dst.CacheControl},
		{"Content-Disposition", src.ContentDisposition, dst.ContentDisposition},
		{"Content-Encoding", src.ContentEncoding, dst.ContentEncoding},
		{"Content-Language", src.ContentLanguage, dst.ContentLanguage},
		{"Expires", src.ExpiresString, dst.ExpiresString},
		{"x-amz-website-redirect-location", src.WebsiteRedirectLocation, dst.WebsiteRedirectLocation},
	} {
		if sv, dv := aws.ToString(hd.sv), aws.ToString(hd.dv); sv != dv {
			differ(report.MismatchRestoredMetadata, hd.name, sv, dv)
		}
	}
	smeta, dmeta := lower(src.Metadata), lower(dst.Metadata)
	for _, k := range unionKeys(smeta, dmeta) {
		if sv, dv := smeta[k], dmeta[k]; sv != dv {
			differ(report.MismatchRestoredMetadata, "x-amz-meta-"+k, sv, dv)
		}
	}
	stags, err := h.tags(ctx, h.Config.SourceBucket, c.Key, src.VersionId)
	if err != nil {
		return r, h.readError(c.Key, "source's tags", h.Config.SourceBucket, err, &r)
	}
	dtags, err := h.tags(ctx, st.Bucket, scratch, nil)
	if err != nil {
		return r, h.readError(c.Key, "restored copy's tags", st.Bucket, err, &r)
	}
	for _, k := range unionKeys(stags, dtags) {
		if sv, dv := stags[k], dtags[k]; sv != dv {
			differ(report.MismatchRestoredTags, "tag "+k, sv, dv)
		}
	}
	srcHash, n1, err := h.hash(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.SourceBucket), Key: aws.String(c.Key), IfMatch: src.ETag})
	if fault.IsCode(err, "PreconditionFailed", "NoSuchKey", "NotFound") {
		r = result{}
		r.rd.ChangedSince = 1 // changed while being compared
		return r, nil
	}
	if err != nil {
		return r, h.readError(c.Key, "source", h.Config.SourceBucket, err, &r)
	}
	dstHash, n2, err := h.hash(ctx, &s3.GetObjectInput{Bucket: aws.String(st.Bucket), Key: aws.String(scratch), IfMatch: dst.ETag})
	if err != nil {
		return r, h.readError(c.Key, "restored copy", st.Bucket, err, &r)
	}
	if srcHash != dstHash || n1 != n2 {
		r.mismatch(report.Mismatch{Key: c.Key, Kind: report.MismatchRestoredContent, SourceSHA256: srcHash, RestoredSHA256: dstHash,
			SourceSize: n1, BackupSize: n2, SourceETag: etag,
			Detail: fmt.Sprintf("restored bytes differ: source sha256 %s (%d bytes), restored copy s3://%s/%s sha256 %s (%d bytes)", srcHash, n1, st.Bucket, scratch, dstHash, n2)})
	}
	if r.rd.Mismatches == 0 {
		r.rd.Identical, r.rd.Bytes = 1, n1
	}
	return r, nil
}

func (h *Handler) tags(ctx context.Context, bucket, key string, version *string) (map[string]string, error) {
	out, err := h.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: version})
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, t := range out.TagSet {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m, nil
}

// lower keys user metadata by lower-case name (S3 returns the names lower-cased; others may not).
func lower(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func unionKeys(a, b map[string]string) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// cleanup deletes every version and delete marker under the drill's scratch prefix (the drill
// bucket may be versioned) and counts what is left.
func (h *Handler) cleanup(ctx context.Context, cur *Cursor) error {
	st, rs := cur.Restore, cur.Tally.Restore
	deleted, left, err := h.sweep(ctx, st.Bucket, st.Prefix, true)
	rs.ScratchDeleted += deleted
	if err != nil {
		return err
	}
	if _, left, err = h.sweep(ctx, st.Bucket, st.Prefix, false); err != nil {
		return err
	}
	rs.ScratchLeft = left
	return nil
}

// sweep lists the versions under prefix and, when del, deletes each; it returns how many it
// deleted and how many it found.
func (h *Handler) sweep(ctx context.Context, bucket, prefix string, del bool) (deleted, found int64, err error) {
	p := s3.NewListObjectVersionsPaginator(h.S3, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return deleted, found, s3Error(err, bucket, "list the scratch copies under s3://"+bucket+"/"+prefix)
		}
		type ver struct{ key, id *string }
		var vs []ver
		for _, v := range out.Versions {
			vs = append(vs, ver{v.Key, v.VersionId})
		}
		for _, m := range out.DeleteMarkers {
			vs = append(vs, ver{m.Key, m.VersionId})
		}
		found += int64(len(vs))
		if !del {
			continue
		}
		for _, v := range vs {
			if !strings.HasPrefix(aws.ToString(v.key), ScratchPrefix) {
				return deleted, found, fmt.Errorf("refusing to delete %q: not under %s", aws.ToString(v.key), ScratchPrefix)
			}
			if _, err := h.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: v.key, VersionId: v.id}); err != nil {
				return deleted, found, s3Error(err, bucket, "delete the scratch copy s3://"+bucket+"/"+aws.ToString(v.key))
			}
			deleted++
		}
	}
	return deleted, found, nil
}

// restoreFailed reports whether the restore execution itself did not succeed.
func restoreFailed(rs *report.VerifyRestore) bool {
	return rs != nil && rs.Status != report.Succeeded && rs.Status != "NOT_STARTED" && rs.Status != ""
}

// restoreNotes explain the restore sample in the report's notes.
func restoreNotes(rs *report.VerifyRestore) []report.Note {
	var out []report.Note
	if rs.Archived > 0 && !rs.Thaw && rs.ThawCost != nil {
		out = append(out, report.Note{Note: fmt.Sprintf("%d archived objects of the restore sample were skipped (thaw: true restores them: %s tier, %d bytes, about $%.4f at list prices, up to %s)",
			rs.Archived, rs.ThawCost.Tier, rs.ThawCost.Bytes, rs.ThawCost.USD, rs.ThawCost.WaitTime)})
	}
	if rs.Status == "NOT_STARTED" {
		out = append(out, report.Note{Note: fmt.Sprintf("no restore sample was restored: %d drawn of %d asked, none restorable", rs.Sampled, rs.Requested)})
	}
	if rs.ScratchLeft > 0 {
		out = append(out, report.Note{Note: fmt.Sprintf("%d scratch versions are left under %s (the drill bucket's lifecycle rule removes them)", rs.ScratchLeft, rs.Target)})
	}
	return out
}

// notify sends the drill's summary (kind "verify") as the reporter sends a run's; a bad setting
// is one outcome too. It never fails the drill.
func (h *Handler) notify(ctx context.Context, rep report.Report) []report.Notification {
	s := notify.Build(rep, rep.Failures[:min(len(rep.Failures), notify.DefaultFailuresShown)], notify.Place{StateMachine: DefaultStateMachine, RunBucket: h.Config.RunBucket, ConsoleURL: h.Config.Notify.ConsoleURL})
	s.Kind = runlog.Verify
	return notify.Deliver(ctx, h.Notifier, h.Config.Notify, h.Config.NotifyErr, s, h.logger())
}

// DefaultStateMachine is the verify state machine's name in summaries.
const DefaultStateMachine = "bucketvault-verify"
