package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const lastBackup = "backup-20261201T000000Z-aaaa"

// fixture is a source and a backup holding the same n objects (the backup written after the
// source), and, when copied is set, a last backup whose batches list those keys as copied.
func fixture(t *testing.T, n int, copied bool) *s3fake.S3 {
	t.Helper()
	f := s3fake.New()
	f.AddBucket("src", false)
	f.AddBucket("bak", true)
	f.AddBucket("run", false)
	var items []batch.Item
	for i := range n {
		key, body := fmt.Sprintf("k/%04d", i), []byte(fmt.Sprintf("body %d", i))
		etag := f.Put("src", key, body)
		items = append(items, batch.Item{Op: batch.OpCopy, Key: key, Change: "new", Size: int64(len(body)), ETag: etag})
	}
	started := f.Tick(time.Second)
	for i := range n {
		f.Put("bak", fmt.Sprintf("k/%04d", i), []byte(fmt.Sprintf("body %d", i)))
	}
	finished := f.Tick(time.Second)
	if copied {
		b, err := batch.Encode(batch.Header{Version: batch.Version, Source: "src", Destination: "bak"}, items)
		if err != nil {
			t.Fatal(err)
		}
		f.Put("run", batch.Key(lastBackup, 0), b)
		if err := batch.WriteManifestKeys(context.Background(), f, "run", lastBackup, []string{batch.Key(lastBackup, 0)}); err != nil {
			t.Fatal(err)
		}
		rep, _ := json.Marshal(report.Report{Status: report.Succeeded, Execution: lastBackup, SourceBucket: "src", BackupBucket: "bak",
			StartedAt: started.Format(time.RFC3339Nano), FinishedAt: finished.Format(time.RFC3339Nano), Copied: int64(n)})
		f.Put("run", batch.ReportKey(lastBackup), rep)
	}
	return f
}

// drill runs a verify execution as the state machine does: invocations until done.
func drill(t *testing.T, client S3, input string, maxKeys int64) (*report.Report, int, error) {
	t.Helper()
	h := &Handler{S3: client, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", Concurrency: 4, MaxKeysPerInvocation: maxKeys}}
	req := Request{Execution: "verify-20261202T000000Z-bbbb", StartedAt: "2026-12-02T00:00:00Z", Input: json.RawMessage(input)}
	for i := 1; i < 10000; i++ {
		resp, err := h.Handle(context.Background(), req)
		if err != nil {
			return nil, i, err
		}
		if resp.Done {
			return resp.Report, i, nil
		}
		// The cursor crosses a JSON boundary between invocations.
		b, _ := json.Marshal(resp.Cursor)
		req.Cursor = new(Cursor)
		if err := json.Unmarshal(b, req.Cursor); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("no end")
	return nil, 0, nil
}

// sampled returns the keys of a run's sample files.
func sampled(t *testing.T, f *s3fake.S3) []string {
	t.Helper()
	var keys []string
	for i := 0; ; i++ {
		out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(SampleKey("verify-20261202T000000Z-bbbb", i))})
		if err != nil {
			return keys
		}
		var buf bytes.Buffer
		buf.ReadFrom(out.Body)
		for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
			var e entry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, e.Key)
		}
	}
}

// A seeded sample is the same whatever the invocations' slicing, differs with another seed, holds
// exactly the count asked for, and its reservoir between invocations holds at most that many
// entries (memory holds the reservoir, never the listing).
func TestSampleSeeded(t *testing.T) {
	tests := []struct {
		input   string
		maxKeys int64
		want    int
	}{
		{`{"sample": 20, "seed": 5}`, 0, 20},
		{`{"sample": 20, "seed": 5}`, 37, 20},
		{`{"sample": 20, "seed": 5}`, 1, 20},
		{`{"sample": 20, "seed": 6}`, 37, 20},
		{`{"sample": 0}`, 0, 0},
		{`{"sample": "all"}`, 100, 300},
		{`{"samplePercent": 100}`, 0, 300},
	}
	var first []string
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s max %d", tt.input, tt.maxKeys), func(t *testing.T) {
			f := fixture(t, 300, false)
			rep, _, err := drill(t, f, tt.input, tt.maxKeys)
			if err != nil {
				t.Fatal(err)
			}
			keys := sampled(t, f)
			if len(keys) != tt.want || rep.Verify.Sampled != int64(tt.want) || rep.Verify.Verified != int64(tt.want) || rep.Verify.BackupObjects != 300 {
				t.Fatalf("sampled %d keys, report %+v; want %d", len(keys), *rep.Verify, tt.want)
			}
			for _, c := range f.Calls() {
				if strings.HasPrefix(c, "PutObject run/work/verify-20261202T000000Z-bbbb/verify/reservoir/") {
					_, key, _ := strings.Cut(c, " run/")
					out, _ := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(key)})
					var buf bytes.Buffer
					buf.ReadFrom(out.Body)
					if n := strings.Count(buf.String(), "\n"); n > tt.want {
						t.Errorf("reservoir %s holds %d entries, more than %d", key, n, tt.want)
					}
				}
			}
			switch i {
			case 0:
				first = keys
			case 1, 2:
				if !slices.Equal(keys, first) {
					t.Errorf("seed 5 sliced otherwise picked %v, want %v", keys, first)
				}
			case 3:
				if slices.Equal(keys, first) {
					t.Errorf("seed 6 picked the same keys as seed 5")
				}
			}
		})
	}
}

// A share picks about that share, seeded.
func TestSamplePercent(t *testing.T) {
	f := fixture(t, 1000, false)
	rep, _, err := drill(t, f, `{"samplePercent": 10, "seed": 1}`, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Verify.Sampled; s < 60 || s > 140 || rep.Verify.Sample != "10%" {
		t.Fatalf("10%% of 1000 sampled %d (%q)", s, rep.Verify.Sample)
	}
}

// checksummed adds the same SHA-256 checksum to both sides' HeadObject of the keys it names, as
// S3 returns with ChecksumMode ENABLED (the fake stores none).
type checksummed struct {
	*s3fake.S3
	keys map[string]string
}

func (c checksummed) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	out, err := c.S3.HeadObject(ctx, in, opts...)
	if v, ok := c.keys[aws.ToString(in.Bucket)+"/"+aws.ToString(in.Key)]; ok && err == nil && in.ChecksumMode == "ENABLED" {
		out.ChecksumSHA256 = aws.String(v)
	}
	return out, err
}

// Each check, on a backup of five objects the last backup copied: identical content verified (by
// hash, or by checksum where both sides carry the same one), a backup version overwritten out of
// band named with both hashes, a source changed since not a mismatch, the last backup's version
// deleted named as missing, archived versions skipped with the reason, batches gone said so.
func TestChecks(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *s3fake.S3) S3
		status string
		check  func(t *testing.T, v *report.Verify, r *report.Report)
	}{
		{"identical", nil, report.Succeeded, func(t *testing.T, v *report.Verify, _ *report.Report) {
			if v.Verified != 5 || v.ByHash != 5 || v.VersionsByETag != 5 || v.LastCopied != 5 || v.BytesVerified != 30 {
				t.Errorf("%+v", *v)
			}
		}},
		{"checksums", func(f *s3fake.S3) S3 {
			return checksummed{f, map[string]string{"src/k/0001": "AAA=", "bak/k/0001": "AAA=", "src/k/0002": "AAA=", "bak/k/0002": "BBB="}}
		}, report.Succeeded, func(t *testing.T, v *report.Verify, _ *report.Report) {
			// k/0002: the checksums differ but the bodies are equal: the hashes decide.
			if v.ByChecksum != 1 || v.ByHash != 4 || !slices.Equal(v.ChecksumAlgorithms, []string{"SHA256"}) {
				t.Errorf("%+v", *v)
			}
		}},
		{"corrupted backup", func(f *s3fake.S3) S3 { f.Put("bak", "k/0003", []byte("XXXX 3")); return f }, report.Failed, func(t *testing.T, v *report.Verify, r *report.Report) {
			want := report.Mismatch{Key: "k/0003", Kind: report.MismatchContent, SourceSHA256: hexSHA("body 3"), BackupSHA256: hexSHA("XXXX 3")}
			if len(v.Mismatches) != 1 || v.Mismatches[0].Key != want.Key || v.Mismatches[0].Kind != want.Kind ||
				v.Mismatches[0].SourceSHA256 != want.SourceSHA256 || v.Mismatches[0].BackupSHA256 != want.BackupSHA256 || v.ContentMismatches != 1 {
				t.Errorf("mismatches %+v, want %+v", v.Mismatches, want)
			}
			if len(r.Failures) != 1 || r.Failures[0].Key != "k/0003" {
				t.Errorf("failures %+v", r.Failures)
			}
		}},
		{"backup size differs", func(f *s3fake.S3) S3 { f.Put("bak", "k/0003", []byte("short")); return f }, report.Failed, func(t *testing.T, v *report.Verify, _ *report.Report) {
			if len(v.Mismatches) != 1 || v.Mismatches[0].Kind != report.MismatchSize || v.Mismatches[0].SourceSize != 6 || v.Mismatches[0].BackupSize != 5 {
				t.Errorf("mismatches %+v", v.Mismatches)
			}
		}},
		{"source changed since", func(f *s3fake.S3) S3 { f.Put("src", "k/0004", []byte("new content")); return f }, report.Succeeded, func(t *testing.T, v *report.Verify, _ *report.Report) {
			if v.ChangedSince != 1 || v.Verified != 4 || len(v.Mismatches) != 0 {
				t.Errorf("%+v", *v)
			}
		}},
		{"version deleted", func(f *s3fake.S3) S3 {
			// The fake cannot delete a version: its history listing leaves it out instead.
			return withoutVersions{f, "k/0002"}
		}, report.Failed, func(t *testing.T, v *report.Verify, _ *report.Report) {
			if len(v.Mismatches) != 1 || v.Mismatches[0].Key != "k/0002" || v.Mismatches[0].Kind != report.MismatchMissingVersion || v.MissingVersions != 1 || v.VersionsByETag != 4 {
				t.Errorf("%+v", *v)
			}
		}},
		{"archived", func(f *s3fake.S3) S3 { f.Archive("bak", "DEEP_ARCHIVE"); return f }, report.Succeeded, func(t *testing.T, v *report.Verify, r *report.Report) {
			if v.Archived != 5 || v.Verified != 0 || len(r.Skips) != 5 || r.Skips[0].Reason != "archived (DEEP_ARCHIVE): not read" || v.VersionsByETag != 5 {
				t.Errorf("%+v, skips %+v", *v, r.Skips)
			}
		}},
		{"batches gone", func(f *s3fake.S3) S3 {
			f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("run"), Key: aws.String(batch.ManifestKey(lastBackup))})
			return f
		}, report.Succeeded, func(t *testing.T, v *report.Verify, r *report.Report) {
			if !v.LastCopiedUnknown || v.LastCopied != 0 || v.Sampled != 5 || len(r.Notes) != 1 || !strings.Contains(r.Notes[0].Note, "are gone") {
				t.Errorf("%+v, notes %+v", *v, r.Notes)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fixture(t, 5, true)
			var client S3 = f
			if tt.change != nil {
				client = tt.change(f)
			}
			rep, _, err := drill(t, client, `{"sample": 10}`, 2)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Status != tt.status || (tt.status == report.Failed) != (rep.Error == "VerifyMismatch") {
				t.Fatalf("status %s %s: %s", rep.Status, rep.Error, rep.Cause)
			}
			if rep.Verify.AgainstBackup != lastBackup {
				t.Fatalf("against %q", rep.Verify.AgainstBackup)
			}
			tt.check(t, rep.Verify, rep)
			// report.json holds the same verdict.
			out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String("runs/verify-20261202T000000Z-bbbb/report.json")})
			if err != nil {
				t.Fatal(err)
			}
			var stored report.Report
			if err := json.NewDecoder(out.Body).Decode(&stored); err != nil || stored.Status != rep.Status || stored.Verify == nil || len(stored.Verify.Mismatches) != len(rep.Verify.Mismatches) {
				t.Fatalf("stored report %+v, %v", stored, err)
			}
		})
	}
}

func hexSHA(s string) string {
	f := s3fake.New()
	f.AddBucket("b", false)
	f.Put("b", "k", []byte(s))
	h := &Handler{S3: f}
	sum, _, _ := h.hash(context.Background(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	return sum
}

// Bad input is an InvalidInput naming it; a caught failure becomes a FAILED report with its name.
func TestInputAndFailure(t *testing.T) {
	for _, in := range []string{`{"sample": -1}`, `{"sample": "some"}`, `{"sample": 1, "samplePercent": 5}`, `{"samplePercent": 0}`, `{"samplePercent": 101}`, `{"sample": 100001}`, `{"unknown": 1}`} {
		_, _, err := ParseInput([]byte(in))
		var bad *fault.InvalidInput
		if !errorsAs(err, &bad) {
			t.Errorf("%s: %v, want InvalidInput", in, err)
		}
	}
	for in, want := range map[string]string{``: "100", `{}`: "100", `{"sample": 7}`: "7", `{"sample": "all"}`: "all", `{"samplePercent": 2.5}`: "2.5%", `{"samplePercent": 100}`: "all"} {
		_, rule, err := ParseInput([]byte(in))
		if err != nil || rule.String() != want {
			t.Errorf("%q: rule %q, %v; want %q", in, rule, err, want)
		}
	}
	f := fixture(t, 1, false)
	h := &Handler{S3: f, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", Concurrency: 1}}
	resp, err := h.Handle(context.Background(), Request{Execution: "verify-x", Failure: &Failure{Error: "AccessDenied", Cause: `{"errorMessage":"no","errorType":"AccessDenied"}`}})
	if err != nil || !resp.Done || resp.Report.Status != report.Failed || resp.Report.Error != "AccessDenied" || resp.Report.Cause != "no" {
		t.Fatalf("failure report: %+v, %v", resp.Report, err)
	}
	_, err = h.Handle(context.Background(), Request{Execution: "verify-y", Input: json.RawMessage(`{"sample": -1}`)})
	if _, ok := err.(*fault.InvalidInput); !ok {
		t.Fatalf("bad input: %T %v", err, err)
	}
}

func errorsAs(err error, target **fault.InvalidInput) bool {
	e, ok := err.(*fault.InvalidInput)
	*target = e
	return ok
}

// withoutVersions lists no version of key, as if each had been deleted (the fake ignores
// DeleteObject's VersionId).
type withoutVersions struct {
	*s3fake.S3
	key string
}

func (w withoutVersions) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	out, err := w.S3.ListObjectVersions(ctx, in, opts...)
	if err == nil {
		out.Versions = slices.DeleteFunc(out.Versions, func(v types.ObjectVersion) bool { return aws.ToString(v.Key) == w.key })
	}
	return out, err
}
