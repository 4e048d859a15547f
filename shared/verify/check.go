package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
)

// findingsFlush is how many findings an invocation holds before it writes them out.
const findingsFlush = 5000

// finding is one line of a findings file: a mismatch, a skip or a note.
type finding struct {
	Mismatch *report.Mismatch `json:"mismatch,omitempty"`
	Skip     *report.Skip     `json:"skip,omitempty"`
	Note     *report.Note     `json:"note,omitempty"`
}

// result is what checking one entry found: counts to add and findings.
type result struct {
	d         report.Verify
	findings  []finding
	algorithm string
	// cand is the entry as a restore sample candidate (verified, or archived); rd counts what
	// comparing a restored copy found.
	cand *candidate
	rd   report.VerifyRestore
}

func (r *result) mismatch(m report.Mismatch) {
	switch m.Kind {
	case report.MismatchRestoredContent, report.MismatchRestoredMetadata, report.MismatchRestoredTags, report.MismatchNotRestored:
		r.rd.Mismatches = 1 // an object counts once, however many of its fields differ
	case report.MismatchMissingVersion:
		r.d.MissingVersions++
	case report.MismatchReadError:
		r.d.ReadErrors++
	default:
		r.d.ContentMismatches++
	}
	r.findings = append(r.findings, finding{Mismatch: &m})
}

// add adds d's counts to t.
func add(t *report.Verify, d report.Verify) {
	t.Checked += d.Checked
	t.Verified += d.Verified
	t.BytesVerified += d.BytesVerified
	t.ByChecksum += d.ByChecksum
	t.ByHash += d.ByHash
	t.BytesHashed += d.BytesHashed
	t.ChangedSince += d.ChangedSince
	t.Archived += d.Archived
	t.NotInBackup += d.NotInBackup
	t.VersionsChecked += d.VersionsChecked
	t.VersionsByETag += d.VersionsByETag
	t.VersionsByTime += d.VersionsByTime
	t.MissingVersions += d.MissingVersions
	t.ContentMismatches += d.ContentMismatches
	t.ReadErrors += d.ReadErrors
}

// check checks the sample files' entries from the cursor on, a chunk at a time with bounded
// concurrency, until all are checked (true) or the budget is spent. It keeps the restore
// sample's picks among the entries it verified.
func (h *Handler) check(ctx context.Context, execution string, cur *Cursor, b *budget) (bool, error) {
	pk, err := h.loadPicks(ctx, cur)
	if err != nil {
		return false, err
	}
	done, err := h.checkEntries(ctx, execution, cur, b, pk)
	if err == nil && pk.dirty {
		err = h.savePicks(ctx, execution, cur, pk)
	}
	return done, err
}

func (h *Handler) checkEntries(ctx context.Context, execution string, cur *Cursor, b *budget, pk *picker) (bool, error) {
	w := &jsonlWriter{h: h, key: func(seq int) string { return FindingsKey(execution, seq) }, seq: &cur.FindingFiles, max: findingsFlush}
	chunk := h.Config.Concurrency * 4
	for cur.CheckFile < cur.SampleFiles {
		entries, err := readLines[entry](ctx, h, SampleKey(execution, cur.CheckFile))
		if err != nil {
			return false, err
		}
		for cur.CheckLine < len(entries) {
			if b.spent() {
				return false, w.flush(ctx)
			}
			part := entries[cur.CheckLine:min(cur.CheckLine+chunk, len(entries))]
			results := make([]result, len(part))
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(h.Config.Concurrency)
			for i, e := range part {
				g.Go(func() error {
					r, err := h.checkEntry(gctx, cur, e)
					results[i] = r
					return err
				})
			}
			if err := g.Wait(); err != nil {
				return false, err
			}
			for _, r := range results {
				add(&cur.Tally, r.d)
				if r.cand != nil {
					pk.offer(*r.cand)
				}
				if r.algorithm != "" {
					if cur.Algorithms == nil {
						cur.Algorithms = map[string]int{}
					}
					cur.Algorithms[r.algorithm]++
				}
				for _, f := range r.findings {
					if err := w.add(ctx, f); err != nil {
						return false, err
					}
				}
			}
			cur.CheckLine += len(part)
			b.used += int64(len(part))
		}
		cur.CheckFile++
		cur.CheckLine = 0
	}
	return true, w.flush(ctx)
}

// fatal reports whether err ends the run rather than naming one object: access refused, a missing
// bucket, or the invocation's context ending.
func fatal(err error) bool {
	return fault.IsCode(err, "AccessDenied", "NoSuchBucket") || ctxDone(err)
}

func ctxDone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func archived(class string) bool { return class == "GLACIER" || class == "DEEP_ARCHIVE" }

// checkEntry checks one entry. Errors that end the run are returned; others name the object.
func (h *Handler) checkEntry(ctx context.Context, cur *Cursor, e entry) (result, error) {
	var r result
	r.d.Checked = 1
	current := e.Listed
	if e.Copied != nil {
		latest, err := h.checkVersion(ctx, cur, e, &r)
		if err != nil {
			return r, err
		}
		if current == nil {
			if latest == nil {
				r.d.NotInBackup++ // deleted since (a delete marker is current): nothing to compare
				return r, nil
			}
			current = latest
		}
	}
	if archived(current.StorageClass) {
		r.d.Archived++
		r.findings = append(r.findings, finding{Skip: &report.Skip{Key: e.Key, Reason: fmt.Sprintf("archived (%s): not read", current.StorageClass)}})
		r.cand = &candidate{Key: e.Key, P: priority(cur.Tally.Seed, e.Key), Size: current.Size, BackupModified: current.LastModified, StorageClass: current.StorageClass}
		return r, nil
	}
	if err := h.checkContent(ctx, e.Key, &r); err != nil {
		return r, err
	}
	if r.cand != nil {
		r.cand.P = priority(cur.Tally.Seed, e.Key)
	}
	return r, nil
}

// checkVersion looks among the key's versions for the one the last backup wrote: by the ETag and
// size its batch recorded (no version id is recorded), else one written during that backup. It
// returns the key's current version (nil under a delete marker).
func (h *Handler) checkVersion(ctx context.Context, cur *Cursor, e entry, r *result) (*change.Object, error) {
	r.d.VersionsChecked = 1
	it := e.Copied
	var byETag, byTime bool
	var latest *change.Object
	p := s3.NewListObjectVersionsPaginator(h.S3, &s3.ListObjectVersionsInput{Bucket: aws.String(h.Config.BackupBucket), Prefix: aws.String(e.Key)})
	from, to := cur.AgainstStarted.Add(-VersionWindowSlack), cur.AgainstFinished.Add(VersionWindowSlack)
pages:
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			if fatal(err) {
				return nil, s3Error(err, h.Config.BackupBucket, "list versions of "+e.Key)
			}
			r.mismatch(report.Mismatch{Key: e.Key, Kind: report.MismatchReadError, Detail: "list the backup's versions: " + err.Error()})
			return nil, nil
		}
		for _, v := range out.Versions {
			key := aws.ToString(v.Key)
			if key > e.Key {
				break pages // keys sort after the prefix itself: no more versions of e.Key
			}
			if key != e.Key {
				continue
			}
			o := change.Object{Key: key, Size: aws.ToInt64(v.Size), ETag: aws.ToString(v.ETag), LastModified: aws.ToTime(v.LastModified), StorageClass: string(v.StorageClass)}
			if aws.ToBool(v.IsLatest) {
				latest = &o
			}
			if o.Size == it.Size && change.NormalizeETag(o.ETag) == change.NormalizeETag(it.ETag) && it.ETag != "" {
				byETag = true
			}
			if !cur.AgainstStarted.IsZero() && !o.LastModified.Before(from) && !o.LastModified.After(to) {
				byTime = true
			}
		}
	}
	switch {
	case byETag:
		r.d.VersionsByETag++
	case byTime:
		r.d.VersionsByTime++
		r.findings = append(r.findings, finding{Note: &report.Note{Key: e.Key, Note: fmt.Sprintf(
			"the backup holds a version written during %s, but not with the ETag %s its batch recorded (the source changed while it ran, or SSE-KMS gave the copy its own ETag)", cur.Against, it.ETag)}})
	default:
		m := report.Mismatch{Key: e.Key, Kind: report.MismatchMissingVersion, ExpectedETag: change.NormalizeETag(it.ETag), ExpectedSize: it.Size,
			Detail: fmt.Sprintf("the backup holds no version of %q that %s wrote (ETag %s, %d bytes, or written between %s and %s)",
				e.Key, cur.Against, change.NormalizeETag(it.ETag), it.Size, cur.AgainstStarted.Format(time.RFC3339), cur.AgainstFinished.Format(time.RFC3339))}
		if latest != nil {
			m.BackupETag, m.BackupSize = change.NormalizeETag(latest.ETag), latest.Size
		}
		r.mismatch(m)
	}
	return latest, nil
}

// checkContent compares the source object with the backup's current version, when the source is
// unchanged since that version was written.
func (h *Handler) checkContent(ctx context.Context, key string, r *result) error {
	head := func(bucket string) (*s3.HeadObjectOutput, error) {
		return h.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
	}
	src, err := head(h.Config.SourceBucket)
	if fault.IsCode(err, "NotFound", "NoSuchKey") {
		r.d.ChangedSince++ // deleted from the source since
		return nil
	}
	if err != nil {
		return h.readError(key, "source", h.Config.SourceBucket, err, r)
	}
	bak, err := head(h.Config.BackupBucket)
	if fault.IsCode(err, "NotFound", "NoSuchKey") {
		r.d.NotInBackup++ // marked deleted since it was listed
		return nil
	}
	if err != nil {
		return h.readError(key, "backup", h.Config.BackupBucket, err, r)
	}
	if archived(string(bak.StorageClass)) {
		r.d.Archived++
		r.findings = append(r.findings, finding{Skip: &report.Skip{Key: key, Reason: fmt.Sprintf("archived (%s): not read", bak.StorageClass)}})
		return nil
	}
	if aws.ToTime(src.LastModified).After(aws.ToTime(bak.LastModified)) {
		r.d.ChangedSince++ // written to the source after the backup's version: the next backup's business
		return nil
	}
	m := report.Mismatch{Key: key, SourceETag: change.NormalizeETag(aws.ToString(src.ETag)), BackupETag: change.NormalizeETag(aws.ToString(bak.ETag)),
		SourceSize: aws.ToInt64(src.ContentLength), BackupSize: aws.ToInt64(bak.ContentLength), BackupVersionID: aws.ToString(bak.VersionId)}
	if m.SourceSize != m.BackupSize {
		m.Kind = report.MismatchSize
		m.Detail = fmt.Sprintf("the source (unchanged since %s) holds %d bytes, the backup's current version %s %d", aws.ToTime(bak.LastModified).Format(time.RFC3339), m.SourceSize, m.BackupVersionID, m.BackupSize)
		r.mismatch(m)
		return nil
	}
	alg, sv, bv := commonChecksum(src, bak)
	if alg != "" {
		m.SourceChecksum, m.BackupChecksum = alg+":"+sv, alg+":"+bv
		if sv == bv {
			r.d.Verified, r.d.ByChecksum, r.d.BytesVerified = 1, 1, m.SourceSize
			r.algorithm = alg
			r.cand = verifiedCandidate(key, src, bak)
			return nil
		}
		// Different checksums: the bodies decide (and their hashes are the evidence).
	}
	srcHash, n1, err := h.hash(ctx, &s3.GetObjectInput{Bucket: aws.String(h.Config.SourceBucket), Key: aws.String(key), IfMatch: src.ETag})
	if fault.IsCode(err, "PreconditionFailed", "NoSuchKey", "NotFound") {
		r.d.ChangedSince++ // changed while being checked
		return nil
	}
	if err != nil {
		return h.readError(key, "source", h.Config.SourceBucket, err, r)
	}
	bin := &s3.GetObjectInput{Bucket: aws.String(h.Config.BackupBucket), Key: aws.String(key), VersionId: bak.VersionId}
	if bak.VersionId == nil {
		bin.IfMatch = bak.ETag
	}
	bakHash, n2, err := h.hash(ctx, bin)
	if err != nil {
		return h.readError(key, "backup", h.Config.BackupBucket, err, r)
	}
	r.d.BytesHashed = n1 + n2
	if srcHash == bakHash && n1 == n2 {
		r.d.Verified, r.d.ByHash, r.d.BytesVerified = 1, 1, n1
		r.cand = verifiedCandidate(key, src, bak)
		return nil
	}
	m.Kind, m.SourceSHA256, m.BackupSHA256 = report.MismatchContent, srcHash, bakHash
	m.Detail = fmt.Sprintf("content differs: source sha256 %s, backup sha256 %s (version %s); the source is unchanged since the backup's version was written", srcHash, bakHash, m.BackupVersionID)
	r.mismatch(m)
	return nil
}

// readError names an object one side of which could not be read; a refusal or a missing bucket
// ends the run instead.
func (h *Handler) readError(key, side, bucket string, err error, r *result) error {
	if fatal(err) {
		return s3Error(err, bucket, fmt.Sprintf("read %s s3://%s/%s", side, bucket, key))
	}
	r.mismatch(report.Mismatch{Key: key, Kind: report.MismatchReadError, Detail: fmt.Sprintf("read the %s: %v", side, err)})
	return nil
}

// hash streams an object into SHA-256: memory holds io.Copy's buffer, whatever the size.
func (h *Handler) hash(ctx context.Context, in *s3.GetObjectInput) (string, int64, error) {
	out, err := h.S3.GetObject(ctx, in)
	if err != nil {
		return "", 0, err
	}
	defer out.Body.Close()
	sum := sha256.New()
	n, err := io.Copy(sum, out.Body)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(sum.Sum(nil)), n, nil
}

// commonChecksum returns the strongest additional checksum both objects carry, of the same type
// (full object or composite), with both values; "" when they share none.
func commonChecksum(a, b *s3.HeadObjectOutput) (alg, av, bv string) {
	if a.ChecksumType != b.ChecksumType {
		return "", "", ""
	}
	pairs := []struct {
		name string
		a, b *string
	}{
		{"SHA256", a.ChecksumSHA256, b.ChecksumSHA256},
		{"SHA1", a.ChecksumSHA1, b.ChecksumSHA1},
		{"CRC64NVME", a.ChecksumCRC64NVME, b.ChecksumCRC64NVME},
		{"CRC32C", a.ChecksumCRC32C, b.ChecksumCRC32C},
		{"CRC32", a.ChecksumCRC32, b.ChecksumCRC32},
	}
	for _, p := range pairs {
		if aws.ToString(p.a) != "" && aws.ToString(p.b) != "" {
			return p.name, aws.ToString(p.a), aws.ToString(p.b)
		}
	}
	return "", "", ""
}

// writeReport reads the findings and writes runs/<execution>/report.json; it returns the
// report's summary for the execution output. failure, when set, is an error the state machine
// caught: the report is FAILED with its name.
func (h *Handler) writeReport(ctx context.Context, req Request, cur *Cursor, failure *Failure) (*report.Report, error) {
	rep := report.Report{
		Execution: req.Execution, StartedAt: req.StartedAt, FinishedAt: h.now().UTC().Format(time.RFC3339Nano),
		SourceBucket: h.Config.SourceBucket, BackupBucket: h.Config.BackupBucket,
		ReportKey: "runs/" + req.Execution + "/report.json", ExcludedByRule: map[string]int64{},
		Failures: []report.Failure{}, Skips: []report.Skip{}, Notes: []report.Note{}, Guards: []report.Guard{}, Notifications: []report.Notification{},
	}
	v := &report.Verify{Mismatches: []report.Mismatch{}, ChecksumAlgorithms: []string{}}
	if cur != nil {
		*v = cur.Tally
		v.Mismatches = []report.Mismatch{}
		for alg := range cur.Algorithms {
			v.ChecksumAlgorithms = append(v.ChecksumAlgorithms, alg)
		}
		slices.Sort(v.ChecksumAlgorithms)
		if v.ChecksumAlgorithms == nil {
			v.ChecksumAlgorithms = []string{}
		}
		for seq := range cur.FindingFiles {
			if err := h.readJSONL(ctx, FindingsKey(req.Execution, seq), func(line []byte) error {
				var f finding
				if err := json.Unmarshal(line, &f); err != nil {
					return err
				}
				switch {
				case f.Mismatch != nil:
					v.Mismatches = append(v.Mismatches, *f.Mismatch)
					rep.Failures = append(rep.Failures, report.Failure{Key: f.Mismatch.Key, Op: "verify", Error: f.Mismatch.Kind + ": " + f.Mismatch.Detail})
				case f.Skip != nil:
					rep.Skips = append(rep.Skips, *f.Skip)
				case f.Note != nil:
					rep.Notes = append(rep.Notes, *f.Note)
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}
	if v.LastCopiedUnknown {
		rep.Notes = append(rep.Notes, report.Note{Note: fmt.Sprintf(
			"the batches of %s are gone (work files expire after runResultsExpiryDays): the objects it copied were not checked one by one, only as far as the random sample holds them", v.AgainstBackup)})
	}
	if v.AgainstBackup == "" && failure == nil {
		rep.Notes = append(rep.Notes, report.Note{Note: "no successful backup of these buckets is recorded: no version was checked, only the random sample's content"})
	}
	if v.Restore != nil {
		rep.Notes = append(rep.Notes, restoreNotes(v.Restore)...)
	}
	rep.Verify = v
	rep.Listed, rep.BackupObjects, rep.Archived, rep.Skipped = v.BackupObjects, v.BackupObjects, v.Archived, v.Archived
	rep.Failed = int64(len(v.Mismatches))
	if cur != nil {
		rep.ListInvocations = v.Invocations
	}
	switch {
	case failure != nil:
		rep.Status, rep.Error, rep.Cause = report.Failed, failure.Error, causeMessage(failure.Cause)
	case len(v.Mismatches) > 0 || restoreFailed(v.Restore):
		rep.Status, rep.Error = report.Failed, "VerifyMismatch"
		rep.Cause = fmt.Sprintf("%d of %d objects checked do not hold what they should (%d content or size mismatches, %d missing versions, %d unreadable)",
			v.ContentMismatches+v.MissingVersions+v.ReadErrors, v.Checked, v.ContentMismatches, v.MissingVersions, v.ReadErrors)
		if rs := v.Restore; rs != nil {
			rep.Cause += fmt.Sprintf("; of the restore sample (%s, %s) %d of %d restored objects differ from the source or were not restored", rs.Execution, rs.Status, rs.Mismatches, rs.Restored)
			if rs.Error != "" {
				rep.Cause += fmt.Sprintf(", and the restore failed: %s: %s", rs.Error, rs.Cause)
			}
		}
		rep.Cause += fmt.Sprintf("; every one is named in s3://%s/%s", h.Config.RunBucket, rep.ReportKey)
	default:
		rep.Status = report.Succeeded
	}
	rep.Notifications = h.notify(ctx, rep)
	body, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if _, err := h.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(h.Config.RunBucket), Key: aws.String(rep.ReportKey),
		Body: bytes.NewReader(body), ContentType: aws.String("application/json")}); err != nil {
		return nil, s3Error(err, h.Config.RunBucket, "write the report")
	}
	h.logger().Info("verify finished", "execution", req.Execution, "status", rep.Status, "checked", v.Checked, "verified", v.Verified, "mismatches", len(v.Mismatches))
	s := rep.Summary()
	s.Verify = v.Short()
	return &s, nil
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
