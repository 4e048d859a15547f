package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// A restore "from" a further destination reads that destination's history through its client
// (another provider here: a fake of its own) and writes batches that name it as their source;
// the run and target buckets stay the deployment's. An unknown name, or a destination bucket
// named like the target, is refused before anything is written.
func TestRestoreFrom(t *testing.T) {
	tests := []struct {
		name, from, wantErr string
		wantBody            string // the restored key's content, read from the batch's source
	}{
		{name: "the backup bucket", from: "", wantBody: "in bak"},
		{name: "primary is the backup bucket", from: "primary", wantBody: "in bak"},
		{name: "a further destination", from: "far", wantBody: "in far"},
		{name: "an unknown destination", from: "nope", wantErr: `from "nope" is not a destination of this deployment ([primary far clash])`},
		{name: "a destination named like the target", from: "clash", wantErr: `has the name of the run or target bucket`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			far := s3fake.New()
			far.AddBucket("far-b", true)
			f.Put("bak", "k", []byte("in bak"))
			far.Put("far-b", "k", []byte("in far"))
			h.Config.Destinations = []destination.Destination{
				{Name: "far", Bucket: "far-b", Endpoint: "https://s3.example.com"},
				{Name: "clash", Bucket: "target", Endpoint: "https://s3.example.com"},
			}
			h.Destinations = map[string]S3{"far": far, "clash": far}
			input := `{"at": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `", "targetBucket": "target", "from": "` + tt.from + `"}`
			if tt.wantErr != "" {
				_, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Mode: ModePlan})
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if out, _ := f.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("run")}); len(out.Contents) != 0 {
					t.Fatalf("%d files written to the run bucket", len(out.Contents))
				}
				return
			}
			resp := planAll(t, h, input)
			if resp.Cursor.Totals.New != 1 {
				t.Fatalf("totals %+v", resp.Cursor.Totals)
			}
			out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(batch.Key("exec", 0))})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(out.Body)
			var items []batch.Item
			hd, err := batch.Read(bytes.NewReader(body), func(it batch.Item) error { items = append(items, it); return nil })
			if err != nil || len(items) != 1 {
				t.Fatalf("batch %+v %v: %v", hd, items, err)
			}
			wantSource, wantName, client := "bak", "", f
			if tt.from == "far" {
				wantSource, wantName, client = "far-b", "far", far
			}
			if hd.Source != wantSource || hd.SourceName != wantName || hd.Destination != "target" {
				t.Fatalf("header %+v, want source %s (%q) → target", hd, wantSource, wantName)
			}
			v, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(hd.Source), Key: aws.String("k"), VersionId: aws.String(items[0].VersionID)})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := io.ReadAll(v.Body); string(got) != tt.wantBody {
				t.Fatalf("the planned version holds %q, want %q", got, tt.wantBody)
			}
		})
	}
}
