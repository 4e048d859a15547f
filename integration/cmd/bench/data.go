package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// object is one object of a data set.
type object struct {
	key  string
	size int64
}

// dataset is a source bucket and what it holds.
type dataset struct {
	name    string // small, large, big
	bucket  string
	objects []object
	bytes   int64
}

func (d *dataset) count() int64 { return int64(len(d.objects)) }

// uploadConcurrency is the uploader's request concurrency (upload time is not measured).
const uploadConcurrency = 64

func createBucket(ctx context.Context, c *s3.Client, name string, versioned bool) error {
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	if !versioned {
		return nil
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}); err != nil {
		return fmt.Errorf("version bucket %s: %w", name, err)
	}
	return nil
}

// removeBucket deletes every version in a bucket and the bucket (frees disk between repetitions).
func removeBucket(ctx context.Context, c *s3.Client, name string) error {
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list versions of %s: %w", name, err)
		}
		var ids []types.ObjectIdentifier
		for _, v := range page.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range page.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			continue
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return fmt.Errorf("empty %s: %w", name, err)
		}
		if len(out.Errors) > 0 {
			return fmt.Errorf("empty %s: %s", name, aws.ToString(out.Errors[0].Message))
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	return nil
}

// uploadSmall fills bucket with n objects of random size in [minSize, maxSize] and random content,
// spread over 100 prefixes.
func uploadSmall(ctx context.Context, c *s3.Client, bucket string, n int, minSize, maxSize int64, seed uint64) (*dataset, error) {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &dataset{bucket: bucket, objects: make([]object, n)}
	for i := range d.objects {
		d.objects[i] = object{key: fmt.Sprintf("d%02d/obj-%07d.bin", i%100, i), size: minSize + rng.Int64N(maxSize-minSize+1)}
		d.bytes += d.objects[i].size
	}
	pool := randomBytes(rng, maxSize+4096)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	for i, o := range d.objects {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			// A different window of the random pool per object: distinct content, distinct ETags.
			off := int64(i*7919) % (int64(len(pool)) - o.size)
			return put(gctx, c, bucket, o.key, pool[off:off+o.size], i)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "   uploaded %d objects (%.1f MB) to %s in %s\n", n, mb(d.bytes), bucket, since(start))
	return d, nil
}

// put uploads body with a 4-byte tag mixed in, so two objects never share content.
func put(ctx context.Context, c *s3.Client, bucket, key string, body []byte, tag int) error {
	b := bytes.Clone(body)
	if len(b) >= 4 {
		b[0], b[1], b[2], b[3] = byte(tag), byte(tag>>8), byte(tag>>16), byte(tag>>24)
	}
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)})
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	return nil
}

// changeSmall overwrites pct percent of the set's objects (every k-th, starting at offset) with new
// content of a new size, and returns how many objects and bytes it changed.
func changeSmall(ctx context.Context, c *s3.Client, d *dataset, pct float64, offset int, seed uint64, minSize, maxSize int64) (n, changedBytes int64, err error) {
	step := int(100 / pct)
	if step < 1 {
		step = 1
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	pool := randomBytes(rng, maxSize+4096)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadConcurrency)
	for i := offset % step; i < len(d.objects); i += step {
		size := minSize + rng.Int64N(maxSize-minSize+1)
		off := rng.Int64N(int64(len(pool)) - size)
		d.bytes += size - d.objects[i].size
		d.objects[i].size = size
		n++
		changedBytes += size
		g.Go(func() error { return put(gctx, c, d.bucket, d.objects[i].key, pool[off:off+size], i) })
	}
	return n, changedBytes, g.Wait()
}

// uploadLarge uploads one object per size, each as a multipart upload with parts of partSize, so
// that bucketvault takes its multipart copy path (along the source's part boundaries).
func uploadLarge(ctx context.Context, c *s3.Client, bucket string, sizes []int64, partSize int64, seed uint64) (*dataset, error) {
	rng := rand.New(rand.NewPCG(seed, 3))
	pool := randomBytes(rng, partSize+4096)
	d := &dataset{bucket: bucket}
	start := time.Now()
	for i, size := range sizes {
		key := fmt.Sprintf("large/obj-%02d-%dMiB.bin", i, size>>20)
		if err := uploadParts(ctx, c, bucket, key, size, partSize, pool, i); err != nil {
			return nil, err
		}
		d.objects = append(d.objects, object{key: key, size: size})
		d.bytes += size
	}
	fmt.Fprintf(logw, "   uploaded %d large objects (%.1f MB, %s parts) to %s in %s\n", len(sizes), mb(d.bytes), sizeString(partSize), bucket, since(start))
	return d, nil
}

func uploadParts(ctx context.Context, c *s3.Client, bucket, key string, size, partSize int64, pool []byte, tag int) error {
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("start upload %s: %w", key, err)
	}
	nparts := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for p := range nparts {
		g.Go(func() error {
			n := min(partSize, size-int64(p)*partSize)
			body := bytes.Clone(pool[p%4096 : int64(p%4096)+n])
			body[0], body[1], body[2] = byte(tag), byte(p), byte(p>>8)
			out, err := c.UploadPart(gctx, &s3.UploadPartInput{
				Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
				PartNumber: aws.Int32(int32(p + 1)), Body: bytes.NewReader(body), ContentLength: aws.Int64(n),
			})
			if err != nil {
				return fmt.Errorf("upload part %d of %s: %w", p+1, key, err)
			}
			parts[p] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(p + 1))}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		_, _ = c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId})
		return err
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		return fmt.Errorf("complete upload %s: %w", key, err)
	}
	return nil
}

func randomBytes(rng *rand.Rand, n int64) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// listCount lists a bucket's current objects (paginated) and returns their count and bytes.
func listCount(ctx context.Context, c *s3.Client, bucket string) (n, size int64, err error) {
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("list %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			n++
			size += aws.ToInt64(o.Size)
		}
	}
	return n, size, nil
}

// verifyCopy checks that dst holds exactly the set's objects and bytes.
func verifyCopy(ctx context.Context, c *s3.Client, d *dataset, dst string) error {
	n, size, err := listCount(ctx, c, dst)
	if err != nil {
		return err
	}
	if n != d.count() || size != d.bytes {
		return fmt.Errorf("%s holds %d objects, %d bytes; want %d objects, %d bytes", dst, n, size, d.count(), d.bytes)
	}
	return nil
}
