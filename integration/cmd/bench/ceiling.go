package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

// copyAll is the ceiling: the minimal client copying every object of the set into dst with one
// CopyObject each, conc at a time.
func copyAll(ctx context.Context, c *s3.Client, d *dataset, dst string, conc int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, o := range d.objects {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			_, err := c.CopyObject(gctx, &s3.CopyObjectInput{
				Bucket: aws.String(dst), Key: aws.String(o.key),
				CopySource: aws.String(d.bucket + "/" + o.key), // keys are plain ASCII
			})
			if err != nil {
				return fmt.Errorf("copy %s: %w", o.key, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// listBoth lists the source and the backup bucket, paginated, both at once (the lister reads
// the two listings side by side too). It returns the objects seen.
func listBoth(ctx context.Context, c *s3.Client, source, backup string) (int64, error) {
	var counts [2]int64
	g, gctx := errgroup.WithContext(ctx)
	for i, b := range []string{source, backup} {
		g.Go(func() error {
			n, _, err := listCount(gctx, c, b)
			counts[i] = n
			return err
		})
	}
	err := g.Wait()
	return counts[0] + counts[1], err
}
