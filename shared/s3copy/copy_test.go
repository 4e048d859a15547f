package s3copy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func noSleep(context.Context, time.Duration) error { return nil }

func newFake() *s3fake.S3 {
	f := s3fake.New()
	f.AddBucket("src", false)
	f.AddBucket("bak", true)
	return f
}

func testCopier(f *s3fake.S3) *Copier { return New(f, Options{Sleep: noSleep}) }

func listed(f *s3fake.S3, key string) change.Object {
	vs := f.Versions("src", key)
	o := vs[len(vs)-1]
	return change.Object{Key: key, Size: int64(len(o.Body)), ETag: o.ETag, LastModified: o.LastModified}
}

// A write whose response is lost and whose "did it land?" check keeps failing has an unknown
// outcome: the object fails with ErrOutcomeUnknown and is never written a second time.
func TestUnknownOutcomeIsNotWrittenAgain(t *testing.T) {
	f := newFake()
	f.Put("src", "a", []byte("content"))
	lost := false
	f.Lose = func(op, bucket, key string) error {
		if op == "CopyObject" && !lost {
			lost = true
			return s3fake.APIError("SlowDown")
		}
		return nil
	}
	f.Fail = func(op, bucket, key string) error {
		if op == "HeadObject" && bucket == "bak" {
			return s3fake.APIError("SlowDown")
		}
		return nil
	}
	_, err := testCopier(f).Copy(context.Background(), Request{SourceBucket: "src", DestBucket: "bak", Key: "a", Listed: listed(f, "a")})
	if n := f.Count("CopyObject"); n != 1 {
		t.Errorf("%d CopyObject calls; an unknown outcome must not be turned into a second write", n)
	}
	if n := len(f.Versions("bak", "a")); n != 1 {
		t.Errorf("%d versions in the backup, want 1", n)
	}
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	var unknown *OutcomeUnknownError
	if !errors.As(err, &unknown) || unknown.Key != "a" || unknown.Write == nil || unknown.Check == nil {
		t.Fatalf("err = %#v, want an *OutcomeUnknownError naming key a with both errors", err)
	}
}

// loseFirst makes the first performed op on bucket/key lose its response.
func loseFirst(f *s3fake.S3, op string) {
	lost := false
	f.Lose = func(o, bucket, key string) error {
		if o == op && !lost {
			lost = true
			return s3fake.APIError("SlowDown")
		}
		return nil
	}
}

// failFirst makes the first n calls of op on bucket fail with a throttling error.
func failFirst(f *s3fake.S3, op, bucket string, n int) {
	f.Fail = func(o, b, key string) error {
		if o == op && b == bucket && n > 0 {
			n--
			return s3fake.APIError("SlowDown")
		}
		return nil
	}
}

// A write whose response was lost is found to have landed, also when the first looks fail: it is
// reported as copied, once, with what the copy found on the way (the source had changed).
func TestLandedWriteIsReportedOnce(t *testing.T) {
	for _, failedLooks := range []int{0, 1, 2} {
		t.Run(fmt.Sprintf("%d failed looks", failedLooks), func(t *testing.T) {
			f := newFake()
			f.Put("src", "a", []byte("v1"))
			was := listed(f, "a")
			f.Put("src", "a", []byte("version two")) // overwritten after listing
			loseFirst(f, "CopyObject")
			failFirst(f, "HeadObject", "bak", failedLooks)
			res, err := testCopier(f).Copy(context.Background(), Request{SourceBucket: "src", DestBucket: "bak", Key: "a", Listed: was})
			if err != nil {
				t.Fatal(err)
			}
			// One CopyObject refused (PreconditionFailed: the source changed), one that landed.
			if n := f.Count("CopyObject"); n != 2 {
				t.Errorf("%d CopyObject calls, want 2 (a refused one and one that landed)", n)
			}
			vs := f.Versions("bak", "a")
			if len(vs) != 1 || string(vs[0].Body) != "version two" {
				t.Fatalf("%d backup versions, want the new content once", len(vs))
			}
			if res.Outcome != Copied || !res.SourceChanged || res.Object.ETag != vs[0].ETag || res.Bytes != int64(len("version two")) || res.DestETag != vs[0].ETag {
				t.Fatalf("result %+v, want copied with SourceChanged, the new object and the backup's ETag", res)
			}
		})
	}
}

// The same for deletions: a DeleteObject whose response was lost adds no second delete marker,
// whether the look that follows finds it landed or cannot tell.
func TestDeleteWithLostResponse(t *testing.T) {
	for _, tc := range []struct {
		name        string
		failedLooks int
		wantErr     error
	}{
		{"landed, seen at once", 0, nil},
		{"landed, seen on the second look", 1, nil},
		{"cannot be known", 1 << 30, ErrOutcomeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.Put("bak", "gone", []byte("old"))
			loseFirst(f, "DeleteObject")
			failFirst(f, "HeadObject", "bak", tc.failedLooks)
			got, err := testCopier(f).Delete(context.Background(), DeleteRequest{SourceBucket: "src", DestBucket: "bak", Key: "gone"})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && got != Deleted) {
				t.Fatalf("Delete = %q, %v; want %v", got, err, tc.wantErr)
			}
			if n := f.Count("DeleteObject"); n != 1 {
				t.Errorf("%d DeleteObject calls, want 1", n)
			}
			if vs := f.Versions("bak", "gone"); len(vs) != 2 || !vs[1].DeleteMarker {
				t.Errorf("%d versions, want the data and one delete marker", len(vs))
			}
		})
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// current returns the backup's current version of key.
func current(t *testing.T, f *s3fake.S3, key string) s3fake.Object {
	t.Helper()
	vs := f.Versions("bak", key)
	if len(vs) == 0 || vs[len(vs)-1].DeleteMarker {
		t.Fatalf("no current version of %s in the backup", key)
	}
	return vs[len(vs)-1]
}

// The Result names the destination's ETag however the copy was made or found.
func TestDestETag(t *testing.T) {
	tests := []struct {
		name          string
		put           func(f *s3fake.S3)
		opts          Options
		verify        bool
		wantOutcome   Outcome
		wantMultipart bool
	}{
		{"CopyObject", func(f *s3fake.S3) { f.Put("src", "k", []byte("single part")) }, Options{}, false, Copied, false},
		{"along the source's parts", func(f *s3fake.S3) {
			f.PutMultipart("src", "k", []byte("part one.."), []byte("part two.."), []byte("three"))
		}, Options{}, false, Copied, true},
		{"single part above the threshold", func(f *s3fake.S3) { f.Put("src", "k", []byte("twenty-five bytes of data")) }, Options{Threshold: 10}, false, Copied, true},
		{"verify finds it in place", func(f *s3fake.S3) {
			f.Put("src", "k", []byte("single part"))
			f.Put("bak", "k", []byte("single part"))
		}, Options{}, true, AlreadyPresent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			tt.put(f)
			tt.opts.Sleep = noSleep
			res, err := New(f, tt.opts).Copy(context.Background(), Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: listed(f, "k"), Verify: tt.verify, BackupDest: true})
			if err != nil {
				t.Fatal(err)
			}
			got := current(t, f, "k")
			if res.Outcome != tt.wantOutcome || res.Multipart != tt.wantMultipart || res.DestETag != got.ETag || res.DestETag == "" {
				t.Fatalf("result %+v; want %s (multipart %v) with DestETag %s", res, tt.wantOutcome, tt.wantMultipart, got.ETag)
			}
			if n := len(f.Versions("bak", "k")); n != 1 {
				t.Errorf("%d versions in the backup, want 1", n)
			}
		})
	}
}

// A single-part source above the threshold is copied in parts, so its copy has a multipart ETag.
// Only in the backup bucket, which bucketvault alone writes, is such a later version taken as the
// source's copy (by Verify and by the look after a lost answer); in any other destination (a
// restore target) it may be anything, and is copied over.
func TestOwnCopyRuleOnlyInTheBackup(t *testing.T) {
	for _, tc := range []struct {
		backupDest bool
		want       Outcome
		versions   int
	}{
		{true, AlreadyPresent, 1},
		{false, Copied, 2},
	} {
		t.Run(fmt.Sprintf("backup destination %v", tc.backupDest), func(t *testing.T) {
			f := newFake()
			f.Put("src", "k", []byte("twenty-five bytes of data"))
			c := New(f, Options{Threshold: 10, Sleep: noSleep})
			req := Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: listed(f, "k"), BackupDest: tc.backupDest}
			if _, err := c.Copy(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			req.Verify = true
			res, err := c.Copy(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.want || len(f.Versions("bak", "k")) != tc.versions {
				t.Fatalf("verify: %s with %d versions, want %s with %d", res.Outcome, len(f.Versions("bak", "k")), tc.want, tc.versions)
			}
		})
	}
}

// Copies in parts: a part copy or Complete refused for good aborts the upload exactly once, with
// its upload id (the fake refuses any other, and keeps the upload open), and never completes a
// partial upload; a retryable failure is retried by continuing the same upload, without copying
// its finished parts again; a Complete whose answer was lost is not repeated.
func TestMultipartAbortAndRetry(t *testing.T) {
	tests := []struct {
		name                               string
		fail                               func(f *s3fake.S3)
		wantErr                            string // an S3 error code in the error; "" for success
		wantCreates, wantAborts, wantComps int
		wantPartCopies                     int
		wantVersions                       int
	}{
		{"a part copy is refused", func(f *s3fake.S3) { failNth(f, "UploadPartCopy", 2, "AccessDenied") }, "AccessDenied", 1, 1, 0, 2, 0},
		{"Complete is refused", func(f *s3fake.S3) { failNth(f, "CompleteMultipartUpload", 1, "AccessDenied") }, "AccessDenied", 1, 1, 1, 3, 0},
		// Parts 1, 2 (throttled), then the retry continues the upload: 2 and 3.
		{"a part copy is throttled", func(f *s3fake.S3) { failNth(f, "UploadPartCopy", 2, "SlowDown") }, "", 1, 0, 1, 4, 1},
		{"Complete is throttled", func(f *s3fake.S3) { failNth(f, "CompleteMultipartUpload", 1, "SlowDown") }, "", 1, 0, 2, 3, 1},
		{"Complete's answer is lost", func(f *s3fake.S3) { loseFirst(f, "CompleteMultipartUpload") }, "", 1, 0, 1, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.PutMultipart("src", "big", []byte("part one.."), []byte("part two.."), []byte("three"))
			tt.fail(f)
			// One part at a time, so that the part copies can be counted.
			res, err := New(f, Options{Sleep: noSleep, PartConcurrency: 1}).Copy(context.Background(),
				Request{SourceBucket: "src", DestBucket: "bak", Key: "big", Listed: listed(f, "big"), BackupDest: true})
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !fault.IsCode(err, tt.wantErr)) {
				t.Fatalf("err = %v, want %s", err, tt.wantErr)
			}
			if c, a, d := f.Count("CreateMultipartUpload"), f.Count("AbortMultipartUpload"), f.Count("CompleteMultipartUpload"); c != tt.wantCreates || a != tt.wantAborts || d != tt.wantComps {
				t.Errorf("%d creates, %d aborts, %d completes; want %d, %d, %d", c, a, d, tt.wantCreates, tt.wantAborts, tt.wantComps)
			}
			if n := f.Count("UploadPartCopy"); n != tt.wantPartCopies {
				t.Errorf("%d UploadPartCopy calls, want %d", n, tt.wantPartCopies)
			}
			if open := f.OpenUploads(); len(open) != 0 {
				t.Errorf("uploads left open: %v", open)
			}
			vs := f.Versions("bak", "big")
			if len(vs) != tt.wantVersions {
				t.Fatalf("%d versions in the backup, want %d", len(vs), tt.wantVersions)
			}
			if tt.wantVersions == 1 && (res.Outcome != Copied || res.DestETag != vs[0].ETag || vs[0].ETag != listed(f, "big").ETag) {
				t.Errorf("result %+v, backup ETag %s; want copied with the source's ETag", res, vs[0].ETag)
			}
		})
	}
}

// failNth makes the nth call of op fail with an S3 error code.
func failNth(f *s3fake.S3, op string, nth int, code string) {
	n := 0
	f.Fail = func(o, bucket, key string) error {
		if o == op {
			n++
			if n == nth {
				return s3fake.APIError(code)
			}
		}
		return nil
	}
}

// Only fault.Retryable errors are retried, never after the context ended, and at most
// MaxAttempts times; each retry is counted.
func TestCopyRetries(t *testing.T) {
	tests := []struct {
		name        string
		fail        func(f *s3fake.S3, cancel context.CancelFunc)
		preCancel   bool
		wantCopies  int
		wantErr     error // in the chain; nil for success
		wantRetries int64
	}{
		{"permanent error is not retried", func(f *s3fake.S3, _ context.CancelFunc) { failNth(f, "CopyObject", 1, "AccessDenied") }, false, 1, errAccessDenied, 0},
		{"throttling is retried", func(f *s3fake.S3, _ context.CancelFunc) { failFirst(f, "CopyObject", "bak", 2) }, false, 3, nil, 2},
		{"attempts run out", func(f *s3fake.S3, _ context.CancelFunc) { failFirst(f, "CopyObject", "bak", 100) }, false, 3, errSlowDown, 2},
		{"cancelled during the copy is not retried", func(f *s3fake.S3, cancel context.CancelFunc) {
			f.Fail = func(op, bucket, key string) error {
				if op == "CopyObject" {
					cancel()
					return s3fake.APIError("SlowDown")
				}
				return nil
			}
		}, false, 1, context.Canceled, 0},
		{"cancelled before is not tried", func(*s3fake.S3, context.CancelFunc) {}, true, 0, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.Put("src", "a", []byte("content"))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tt.fail(f, cancel)
			if tt.preCancel {
				cancel()
			}
			counter := &s3client.RetryCounter{}
			_, err := New(f, Options{MaxAttempts: 3, Sleep: noSleep}).Copy(ctx, Request{SourceBucket: "src", DestBucket: "bak", Key: "a", Listed: listed(f, "a"), Retries: counter})
			if tt.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) && !fault.IsCode(err, codeOf(tt.wantErr)) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n := f.Count("CopyObject"); n != tt.wantCopies {
				t.Errorf("%d CopyObject calls, want %d", n, tt.wantCopies)
			}
			if counter.Count() != tt.wantRetries {
				t.Errorf("%d retries counted, want %d", counter.Count(), tt.wantRetries)
			}
			wantVersions := 0
			if tt.wantErr == nil {
				wantVersions = 1
			}
			if n := len(f.Versions("bak", "a")); n != wantVersions {
				t.Errorf("%d versions in the backup, want %d", n, wantVersions)
			}
		})
	}
}

var (
	errAccessDenied = s3fake.APIError("AccessDenied")
	errSlowDown     = s3fake.APIError("SlowDown")
)

func codeOf(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestDelete(t *testing.T) {
	tests := []struct {
		name        string
		prepare     func(f *s3fake.S3)
		verify      bool
		want        Outcome
		wantErr     string
		wantDeletes int
		wantMarkers int
	}{
		{"marks deleted", func(*s3fake.S3) {}, false, Deleted, "", 1, 1},
		{"reappeared in the source", func(f *s3fake.S3) { f.Put("src", "k", []byte("back")) }, false, Reappeared, "", 0, 0},
		{"verify: already marked", func(f *s3fake.S3) {
			_, _ = f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String("k")})
		}, true, AlreadyDeleted, "", 0, 1},
		{"verify: not yet marked", func(*s3fake.S3) {}, true, Deleted, "", 1, 1},
		{"permanent error is not retried", func(f *s3fake.S3) { failNth(f, "DeleteObject", 1, "AccessDenied") }, false, "", "AccessDenied", 1, 0},
		{"throttling is retried after a look", func(f *s3fake.S3) { failNth(f, "DeleteObject", 1, "SlowDown") }, false, Deleted, "", 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.Put("bak", "k", []byte("data"))
			tt.prepare(f)
			before := f.Count("DeleteObject")
			got, err := testCopier(f).Delete(context.Background(), DeleteRequest{SourceBucket: "src", DestBucket: "bak", Key: "k", Verify: tt.verify})
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && !fault.IsCode(err, tt.wantErr) {
				t.Fatalf("err = %v, want %s", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("outcome %q, want %q", got, tt.want)
			}
			if n := f.Count("DeleteObject") - before; n != tt.wantDeletes {
				t.Errorf("%d DeleteObject calls, want %d", n, tt.wantDeletes)
			}
			markers := 0
			for _, v := range f.Versions("bak", "k") {
				if v.DeleteMarker {
					markers++
				}
			}
			if markers != tt.wantMarkers {
				t.Errorf("%d delete markers, want %d", markers, tt.wantMarkers)
			}
		})
	}
}
