package bucketcheck

import (
	"errors"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/fault"
)

func TestSupported(t *testing.T) {
	tests := []struct {
		name, bucket string
		unsupported  bool
	}{
		{"directory bucket in an Availability Zone", "bucket-base-name--usw2-az1--x-s3", true},
		{"directory bucket in a Local Zone", "photos--use1-atl2-az1--x-s3", true},
		{"general purpose bucket", "my-backups", false},
		{"suffix inside the name", "my--x-s3-backups", false},
		{"one dash short", "my-x-s3", false},
		{"access point alias suffix is not a directory bucket", "ap-alias-abc--ol-s3", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Supported("source", tt.bucket)
			var ub *fault.UnsupportedBucket
			if got := errors.As(err, &ub); got != tt.unsupported {
				t.Fatalf("Supported(%q) = %v, want unsupported: %v", tt.bucket, err, tt.unsupported)
			}
			if !tt.unsupported {
				return
			}
			for _, want := range []string{"source bucket", tt.bucket, "directory bucket", "not in key order"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not say %q", err, want)
				}
			}
			if b := fault.Boundary(err); !errors.As(b, &ub) {
				t.Errorf("at the boundary the error is a %T, want *fault.UnsupportedBucket", b)
			}
		})
	}
}
