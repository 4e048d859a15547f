package planner

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// from returns the handler that plans a restore from the backup the input names: h itself for
// the backup bucket, or, for a further destination (restoreinput.Options.From), a handler whose
// backup bucket is the destination's, read through its client (every other bucket through h's).
func (h *Handler) from(ctx context.Context, opts restoreinput.Options, target string) (*Handler, error) {
	if opts.From == "" || opts.From == destination.Primary {
		return h, nil
	}
	d, ok := destination.Find(h.Config.Destinations, opts.From)
	if !ok {
		names := []string{destination.Primary}
		for _, d := range h.Config.Destinations {
			names = append(names, d.Name)
		}
		return nil, &fault.InvalidInput{Msg: fmt.Sprintf("restore input: from %q is not a destination of this deployment (%v); nothing was restored", opts.From, names)}
	}
	if d.Bucket == h.Config.RunBucket || d.Bucket == target {
		// The clients are told apart by bucket name: the names must differ.
		return nil, &fault.InvalidInput{Msg: fmt.Sprintf("restore input: destination %q's bucket %q has the name of the run or target bucket; restore it into another bucket", d.Name, d.Bucket)}
	}
	clients, err := h.destinationClients(ctx)
	if err != nil {
		return nil, err
	}
	v := &Handler{S3: byBucket{own: h.S3, bucket: d.Bucket, other: clients[d.Name]}, Config: h.Config, Logger: h.Logger, Destinations: clients}
	v.Config.BackupBucket, v.fromName = d.Bucket, d.Name
	return v, nil
}

// destinationClients returns the further destinations' clients, opening them on first use (once
// per function instance: a restore's planner runs many invocations, and a destination's
// credentials may come from Secrets Manager).
func (h *Handler) destinationClients(ctx context.Context) (map[string]S3, error) {
	h.destMu.Lock()
	defer h.destMu.Unlock()
	if h.Destinations == nil {
		m, err := destination.OpenAs(ctx, h.Config.Destinations, h.S3, s3client.Options{})
		if err != nil {
			return nil, err
		}
		h.Destinations = m
	}
	return h.Destinations, nil
}

// byBucket sends the requests about one bucket to another client.
type byBucket struct {
	own, other S3
	bucket     string
}

func (b byBucket) to(bucket *string) S3 {
	if aws.ToString(bucket) == b.bucket {
		return b.other
	}
	return b.own
}

func (b byBucket) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return b.to(in.Bucket).ListObjectsV2(ctx, in, opts...)
}

func (b byBucket) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	return b.to(in.Bucket).ListObjectVersions(ctx, in, opts...)
}

func (b byBucket) HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return b.to(in.Bucket).HeadBucket(ctx, in, opts...)
}

func (b byBucket) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return b.to(in.Bucket).HeadObject(ctx, in, opts...)
}

func (b byBucket) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return b.to(in.Bucket).GetObject(ctx, in, opts...)
}

func (b byBucket) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return b.to(in.Bucket).PutObject(ctx, in, opts...)
}

func (b byBucket) RestoreObject(ctx context.Context, in *s3.RestoreObjectInput, opts ...func(*s3.Options)) (*s3.RestoreObjectOutput, error) {
	return b.to(in.Bucket).RestoreObject(ctx, in, opts...)
}

func (b byBucket) GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, opts ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error) {
	return b.to(in.Bucket).GetBucketVersioning(ctx, in, opts...)
}
