package s3copy

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// A copy in parts interrupted after its first part — its invocation cancelled, or at its
// deadline (StopAt) — keeps its upload, recorded in the run bucket; the retry (a new Copier in
// verify mode, as the next invocation) continues it without copying the finished part again, and
// the backup gets one version, byte-identical, with the source's ETag. An upload that cannot be
// continued is aborted: of content the source no longer has, or on a permanent failure.
func TestMultipartResumesAcrossInvocations(t *testing.T) {
	parts := [][]byte{[]byte("part one.."), []byte("part two.."), []byte("three")}
	newer := [][]byte{[]byte("PART ONE.."), []byte("PART TWO.."), []byte("THREE")}
	tests := []struct {
		name     string
		deadline bool             // interrupted by StopAt instead of a cancelled context
		between  func(*s3fake.S3) // after the interruption, before the retry
		// The retry's part copies and new uploads; its failure (an S3 code) or the content it copies.
		wantParts, wantCreates int
		wantErr                string
		want                   [][]byte
		wantAborts             int
	}{
		{name: "invocation cancelled", wantParts: 2, want: parts},
		{name: "deadline reached", deadline: true, wantParts: 2, want: parts},
		{name: "upload aborted meanwhile (lifecycle rule)", between: func(f *s3fake.S3) {
			for _, id := range f.OpenUploads() {
				abortUpload(t, f, id)
			}
		}, wantParts: 3, wantCreates: 1, want: parts, wantAborts: 1},
		// The recorded upload holds a part of the old content: aborted, never completed.
		{name: "source overwritten meanwhile", between: func(f *s3fake.S3) { f.PutMultipart("src", "big", newer...) },
			wantParts: 3 + 1, wantCreates: 1, want: newer, wantAborts: 1},
		{name: "permanent failure on the retry", between: func(f *s3fake.S3) { failNth(f, "UploadPartCopy", 1, "AccessDenied") },
			wantParts: 1, wantErr: "AccessDenied", wantAborts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.AddBucket("run", false)
			f.PutMultipart("src", "big", parts...)
			req := Request{SourceBucket: "src", DestBucket: "bak", Key: "big", Listed: listed(f, "big"), BackupDest: true, PriorListed: true}
			store := &S3Uploads{S3: f, Bucket: "run", Prefix: "work/exec/uploads/000000/"}

			// The first invocation: interrupted once its first part is copied.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var late atomic.Bool
			f.Lose = func(op, _, _ string) error {
				if op == "UploadPartCopy" {
					late.Store(true)
					if !tt.deadline {
						cancel()
					}
				}
				return nil
			}
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now := func() time.Time {
				if late.Load() {
					return start.Add(time.Hour)
				}
				return start
			}
			first := New(f, Options{Sleep: noSleep, PartConcurrency: 1, Uploads: store, StopAt: start.Add(time.Minute), Now: now})
			_, err := first.Copy(ctx, req)
			if !Interrupted(ctx, err) || tt.deadline != errors.Is(err, ErrStopped) {
				t.Fatalf("interrupted copy: err = %v, want interrupted (deadline %v)", err, tt.deadline)
			}
			if n, a, open := f.Count("UploadPartCopy"), f.Count("AbortMultipartUpload"), f.OpenUploads(); n != 1 || a != 0 || len(open) != 1 {
				t.Fatalf("after the interruption: %d part copies, %d aborts, open uploads %v; want 1, 0, one", n, a, open)
			}
			if rec, err := store.Load(context.Background(), "bak", "big"); err != nil || rec == nil || rec.UploadID != f.OpenUploads()[0] || len(rec.PartSizes) != 3 {
				t.Fatalf("upload record %+v, %v; want the open upload with 3 parts", rec, err)
			}
			f.Lose = nil
			if tt.between != nil {
				tt.between(f)
			}

			// The retry: a new invocation, in verify mode.
			parts0, creates0 := f.Count("UploadPartCopy"), f.Count("CreateMultipartUpload")
			req.Verify = true
			res, err := New(f, Options{Sleep: noSleep, PartConcurrency: 1, Uploads: store}).Copy(context.Background(), req)
			if n := f.Count("UploadPartCopy") - parts0; n != tt.wantParts {
				t.Errorf("the retry copied %d parts, want %d", n, tt.wantParts)
			}
			if n := f.Count("CreateMultipartUpload") - creates0; n != tt.wantCreates {
				t.Errorf("the retry created %d uploads, want %d", n, tt.wantCreates)
			}
			if a := f.Count("AbortMultipartUpload"); a != tt.wantAborts {
				t.Errorf("%d aborts, want %d", a, tt.wantAborts)
			}
			if open := f.OpenUploads(); len(open) != 0 {
				t.Errorf("uploads left open: %v", open)
			}
			vs := f.Versions("bak", "big")
			if tt.wantErr != "" {
				if !fault.IsCode(err, tt.wantErr) || len(vs) != 0 {
					t.Fatalf("retry: err = %v with %d versions; want %s and none", err, len(vs), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			src := listed(f, "big")
			if len(vs) != 1 || !bytes.Equal(vs[0].Body, bytes.Join(tt.want, nil)) || vs[0].ETag != src.ETag || len(vs[0].PartSizes) != 3 {
				t.Fatalf("%d versions (first %d bytes, ETag %s); want one, byte-identical, with the source's ETag %s in 3 parts", len(vs), len(vs[0].Body), vs[0].ETag, src.ETag)
			}
			if res.Outcome != Copied || res.DestETag != src.ETag || res.Object.ETag != src.ETag {
				t.Errorf("result %+v; want copied with the source's ETag", res)
			}
		})
	}
}

func abortUpload(t *testing.T, f *s3fake.S3, id string) {
	t.Helper()
	if _, err := f.AbortMultipartUpload(context.Background(), &s3.AbortMultipartUploadInput{Bucket: aws.String("bak"), Key: aws.String("big"), UploadId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
}

// ListParts pages through an upload's parts; a page boundary loses none of them.
func TestListPartsPages(t *testing.T) {
	f := newFake()
	f.PageSize = 2
	var parts [][]byte
	for _, p := range []string{"one.", "two.", "three", "four.", "five"} {
		parts = append(parts, []byte(p))
	}
	f.PutMultipart("src", "big", parts...)
	c := New(f, Options{Sleep: noSleep, PartConcurrency: 1})
	rec, err := c.create(context.Background(), Request{SourceBucket: "src", DestBucket: "bak", Key: "big", DestKey: "big"}, listed(f, "big"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.copyParts(context.Background(), Request{}, *rec, map[int32]string{})
	if err != nil || len(all) != 5 {
		t.Fatalf("copyParts: %d parts, %v", len(all), err)
	}
	done, err := c.listParts(context.Background(), Request{}, *rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 5 || f.Count("ListParts") != 3 {
		t.Fatalf("%d parts listed in %d pages; want 5 in 3", len(done), f.Count("ListParts"))
	}
	for i, p := range all {
		if done[int32(i+1)] != aws.ToString(p.ETag) {
			t.Errorf("part %d: listed ETag %s, copied %s", i+1, done[int32(i+1)], aws.ToString(p.ETag))
		}
	}
	abortUpload(t, f, rec.UploadID)
}
