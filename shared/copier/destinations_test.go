package copier

import (
	"context"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// A batch goes through the clients of its two ends: server-side on one provider (also to
// another Region's client, reading the source through its own), streamed between providers;
// a batch naming anything else is refused.
func TestRoute(t *testing.T) {
	own, eu, far := s3fake.New(), s3fake.New(), s3fake.New()
	h := &Handler{S3: own, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", RestoreTargets: []string{"tgt"},
		Destinations: []destination.Destination{
			{Name: "same", Bucket: "same-b"},
			{Name: "eu", Bucket: "eu-b", Region: "eu-west-1"},
			{Name: "far", Bucket: "far-b", Endpoint: "https://s3.example.com"},
		}},
		Destinations: map[string]S3{"same": own, "eu": eu, "far": far}}
	hd := func(src, dst, dstName, srcName string) batch.Header {
		return batch.Header{Version: 1, Source: src, Destination: dst, DestinationName: dstName, SourceName: srcName}
	}
	tests := []struct {
		name       string
		header     batch.Header
		dest, src  S3
		serverSide bool
		wantErr    string
	}{
		{name: "backup bucket", header: hd("src", "bak", "", ""), dest: own},
		{name: "same provider", header: hd("src", "same-b", "same", ""), dest: own},
		{name: "same provider, another Region", header: hd("src", "eu-b", "eu", ""), dest: eu, src: own, serverSide: true},
		{name: "another provider", header: hd("src", "far-b", "far", ""), dest: far, src: own},
		{name: "restore from the backup bucket", header: hd("bak", "tgt", "", ""), dest: own},
		{name: "restore from another Region", header: hd("eu-b", "tgt", "", "eu"), dest: own, src: eu, serverSide: true},
		{name: "restore from another provider", header: hd("far-b", "tgt", "", "far"), dest: own, src: far},
		{name: "unknown destination", header: hd("src", "x", "x", ""), wantErr: "may copy only"},
		{name: "destination name and bucket disagree", header: hd("src", "same-b", "far", ""), wantErr: "may copy only"},
		{name: "the source of a restore is not the named destination's bucket", header: hd("same-b", "tgt", "", "far"), wantErr: "may copy only"},
		{name: "restore into a destination", header: hd("bak", "far-b", "far", ""), wantErr: "may copy only"},
		{name: "restore from a bucket that is not a backup", header: hd("src", "tgt", "", ""), wantErr: "may copy only"},
		{name: "backup into the source", header: hd("src", "src", "", ""), wantErr: "may copy only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := h.route(context.Background(), tt.header)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("route = %+v, %v; want %q", rt, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rt.dest != tt.dest || rt.source != tt.src || rt.serverSide != tt.serverSide {
				t.Fatalf("route %+v, want dest %p source %p serverSide %v", rt, tt.dest, tt.src, tt.serverSide)
			}
		})
	}
}
