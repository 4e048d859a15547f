//go:build integration

package integration

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/integration/minio"
)

// secondProvider is a second S3-compatible server standing for another provider: its own MinIO
// process, data directory, port on 127.0.0.1 and random credentials (never those of the
// package's server), and a client of its own. Tests of copies between providers (a streamed copy,
// a second backup destination, a restore from it) use it next to the package's server.
//
// startSecondMinIO starts one for t and stops it (removing its data) when t ends. Stop it
// earlier (Kill, then Restart) to play a provider that goes away: its address and data stay.
// A test that gives its address to functions passes Endpoint, AccessKey and SecretKey (or
// Env()) as that destination's configuration; the package's AWS_* environment stays the first
// server's.
type secondProvider struct {
	*minio.Server
	// S3 is a client of this server (path-style, its credentials).
	S3 *s3.Client
}

func startSecondMinIO(t *testing.T) *secondProvider {
	t.Helper()
	srv, err := minio.Start(context.Background())
	if err != nil {
		t.Fatalf("start a second MinIO: %v", err)
	}
	t.Cleanup(srv.Stop)
	if server != nil && (srv.AccessKey == server.AccessKey || srv.SecretKey == server.SecretKey || srv.Endpoint == server.Endpoint) {
		t.Fatal("the second MinIO shares the first one's address or credentials")
	}
	return &secondProvider{Server: srv, S3: clientFor(t, srv, "", 0, nil)}
}

// bucket creates a bucket with a unique name starting with prefix on the second server,
// versioned when asked, and returns its name.
func (p *secondProvider) bucket(t *testing.T, prefix string, versioned bool) string {
	t.Helper()
	return newBucketOn(t, p.S3, prefix, versioned)
}

// newBucketOn creates a uniquely named bucket through client, versioned when asked.
func newBucketOn(t *testing.T, client *s3.Client, prefix string, versioned bool) string {
	t.Helper()
	ctx := context.Background()
	name := prefix + "-" + strings.ToLower(randomHex(4))
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	if versioned {
		if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatalf("versioning on %s: %v", name, err)
		}
	}
	return name
}
