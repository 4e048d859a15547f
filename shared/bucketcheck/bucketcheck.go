// Package bucketcheck refuses buckets that bucketvault cannot back up or restore correctly, by
// name, before any request: S3 Express One Zone directory buckets, whose names end in --x-s3 and
// whose listings are not in key order (the lister's merge of the source's listing with the
// backup's relies on that order).
package bucketcheck

import (
	"fmt"
	"strings"

	"github.com/bucketvault/bucketvault/shared/fault"
)

// DirectoryBucketSuffix ends the name of every S3 Express One Zone directory bucket
// (base-name--zone-id--x-s3); general purpose bucket names may not end with it.
const DirectoryBucketSuffix = "--x-s3"

// Supported returns nil when bucketvault can use the bucket named name, and an
// *fault.UnsupportedBucket naming the reason otherwise. role says what the bucket is for
// ("source", "backup", "restore target"), for the message.
func Supported(role, name string) error {
	if strings.HasSuffix(name, DirectoryBucketSuffix) {
		return &fault.UnsupportedBucket{Msg: fmt.Sprintf(
			"%s bucket %q is an S3 Express One Zone directory bucket (its name ends in %s): its listings are not in key order, so bucketvault cannot compare it with another bucket; use a general purpose bucket",
			role, name, DirectoryBucketSuffix)}
	}
	return nil
}
