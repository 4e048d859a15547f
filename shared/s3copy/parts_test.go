package s3copy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/bucketvault/bucketvault/shared/change"
)

// partsFake serves multipart sources of 4 parts of 5 MiB and records how many part requests
// are in flight at once. Each part request is held until want of them are in flight together, so
// that the overlap does not depend on timing; the deadline only turns a hang into a failure.
type partsFake struct {
	API
	want      int32
	now, max  atomic.Int32
	reached   chan struct{} // closed once want requests were in flight together
	once      sync.Once
	timedOut  atomic.Bool
	completed sync.Map // key → parts
}

func newPartsFake(want int32) *partsFake {
	return &partsFake{want: want, reached: make(chan struct{})}
}

func (f *partsFake) track() func() {
	n := f.now.Add(1)
	for m := f.max.Load(); n > m && !f.max.CompareAndSwap(m, n); m = f.max.Load() {
	}
	if n >= f.want {
		f.once.Do(func() { close(f.reached) })
	}
	select {
	case <-f.reached:
	case <-time.After(10 * time.Second):
		f.timedOut.Store(true)
	}
	return func() { f.now.Add(-1) }
}

func (f *partsFake) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if in.PartNumber != nil && aws.ToInt32(in.PartNumber) > 1 {
		defer f.track()()
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(5 << 20), PartsCount: aws.Int32(4), ETag: aws.String(`"abc-4"`)}, nil
}

func (f *partsFake) GetObjectTagging(context.Context, *s3.GetObjectTaggingInput, ...func(*s3.Options)) (*s3.GetObjectTaggingOutput, error) {
	return &s3.GetObjectTaggingOutput{}, nil
}

func (f *partsFake) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return &s3.CreateMultipartUploadOutput{UploadId: in.Key}, nil
}

func (f *partsFake) UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	defer f.track()()
	return &s3.UploadPartCopyOutput{CopyPartResult: &types.CopyPartResult{ETag: aws.String(`"p"`)}}, nil
}

func (f *partsFake) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.completed.Store(aws.ToString(in.Key), len(in.MultipartUpload.Parts))
	return &s3.CompleteMultipartUploadOutput{}, nil
}

// Part requests are bounded across all the objects one Copier copies, not per object.
func TestPartConcurrencyIsSharedAcrossObjects(t *testing.T) {
	f := newPartsFake(3)
	c := New(f, Options{PartConcurrency: 3})
	g := new(errgroup.Group)
	for i := range 6 {
		g.Go(func() error {
			key := fmt.Sprintf("big-%d", i)
			_, err := c.Copy(context.Background(), Request{SourceBucket: "src", DestBucket: "bak", Key: key,
				Listed: change.Object{Key: key, Size: 20 << 20, ETag: `"abc-4"`}})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if n, ok := f.completed.Load(fmt.Sprintf("big-%d", i)); !ok || n.(int) != 4 {
			t.Fatalf("big-%d completed with %v parts", i, n)
		}
	}
	if f.timedOut.Load() {
		t.Fatal("3 part requests were never in flight together")
	}
	if m := f.max.Load(); m != 3 {
		t.Fatalf("%d part requests in flight at most; want the shared bound of 3", m)
	}
}
