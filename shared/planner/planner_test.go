package planner

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func setup() (*s3fake.S3, *Handler) {
	f := s3fake.New()
	f.AddBucket("src", false)
	f.AddBucket("bak", true)
	f.AddBucket("run", false)
	f.AddBucket("target", false)
	h := &Handler{S3: f, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", RestoreTargets: []string{"src", "target"},
		BatchSize: 1000, BatchBytes: 1 << 40, ThawCheckSeconds: 3600}, Logger: slog.New(slog.DiscardHandler)}
	return f, h
}

func planAll(t *testing.T, h *Handler, input string) Response {
	t.Helper()
	var cur *Cursor
	for range 1000 {
		resp, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: cur, Mode: ModePlan})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Done {
			return resp
		}
		cur = &resp.Cursor
	}
	t.Fatal("planner never finished")
	return Response{}
}

func planned(t *testing.T, f *s3fake.S3, n int) []batch.Item {
	t.Helper()
	var items []batch.Item
	for i := range n {
		out, err := f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(batch.Key("exec", i))})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(out.Body)
		if _, err := batch.Read(strings.NewReader(string(body)), func(it batch.Item) error { items = append(items, it); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return items
}

// The version current at the moment is picked; keys deleted then, or created later, are not restored.
func TestPicksVersionAsOf(t *testing.T) {
	f, h := setup()
	f.Put("bak", "changed", []byte("old"))
	f.Put("bak", "deleted-later", []byte("here"))
	f.Put("bak", "deleted-before", []byte("gone"))
	_, _ = f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String("deleted-before")})
	at := f.Tick(time.Minute)
	f.Tick(time.Minute)
	f.Put("bak", "changed", []byte("new"))
	_, _ = f.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String("deleted-later")})
	f.Put("bak", "created-later", []byte("later"))
	f.Put("target", "changed", []byte("old")) // already holds the old content

	resp := planAll(t, h, `{"at": "`+at.Format(time.RFC3339Nano)+`", "targetBucket": "target"}`)
	c := resp.Cursor
	if c.Listed != 2 || c.New != 1 || c.Unchanged != 1 || c.Changed != 0 || resp.RestoredAt != at.Format(time.RFC3339Nano) {
		t.Fatalf("cursor %+v", c)
	}
	items := planned(t, f, c.NextBatch)
	if len(items) != 1 || items[0].Key != "deleted-later" || items[0].VersionID == "" {
		t.Fatalf("items %+v", items)
	}
}

// Archived versions are thawed before copying: RestoreObject per version, then the thaw check
// reports them pending until they are readable. A dry run counts them and thaws nothing.
func TestThawsArchivedVersions(t *testing.T) {
	f, h := setup()
	for _, k := range []string{"a", "b", "c"} {
		f.Put("bak", k, []byte(k))
	}
	f.Archive("bak", "DEEP_ARCHIVE")
	input := `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "thawTier": "Bulk", "thawCheckSeconds": 60}`

	dry := planAll(t, h, strings.Replace(input, `"thawTier"`, `"dryRun": true, "thawTier"`, 1))
	if dry.Cursor.Archived != 3 || dry.ThawPending != 0 || f.Count("RestoreObject") != 0 {
		t.Fatalf("dry run: %+v, %d RestoreObject calls", dry, f.Count("RestoreObject"))
	}

	resp := planAll(t, h, input)
	if resp.Cursor.Archived != 3 || resp.ThawPending != 3 || resp.ThawWaitSeconds != 60 || f.Count("RestoreObject") != 3 {
		t.Fatalf("plan: %+v, %d RestoreObject calls", resp, f.Count("RestoreObject"))
	}
	check := func() int64 {
		r, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: &resp.Cursor, Mode: ModeThaw})
		if err != nil {
			t.Fatal(err)
		}
		return r.ThawPending
	}
	if n := check(); n != 3 {
		t.Fatalf("pending while thawing = %d", n)
	}
	f.ThawAll()
	if n := check(); n != 0 {
		t.Fatalf("pending after thawing = %d", n)
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name, input, want string
		typ               any
	}{
		{"target not allowed", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "elsewhere"}`, "not an allowed restore target", &fault.InvalidInput{}},
		{"restore into the backup", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "bak"}`, "not an allowed restore target", &fault.InvalidInput{}},
		{"unknown execution", `{"at": "backup-x", "targetBucket": "target"}`, "no backup execution named", &fault.InvalidInput{}},
		{"nothing matches", `{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "prefix": "nope/"}`, "nothing in backup bucket", &fault.InvalidInput{}},
		{"before the first backup", `{"at": "2000-01-01T00:00:00Z", "targetBucket": "target"}`, "before the first backup", &fault.InvalidInput{}},
		{"unknown field", `{"at": "2030-01-01T00:00:00Z", "target": "x"}`, `unknown field "target"`, &fault.InvalidInput{}},
		{"version of another key", `{"keys": ["a"], "versionId": "nope", "targetBucket": "target"}`, "not in backup bucket", &fault.InvalidInput{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup()
			f.Put("bak", "a", []byte("a"))
			_, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(tt.input)})
			var invalid *fault.InvalidInput
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want InvalidInput mentioning %q", err, tt.want)
			}
			if n := f.Count("PutObject") + f.Count("CopyObject"); n != 0 && tt.name != "nothing matches" && tt.name != "before the first backup" {
				t.Errorf("%d writes despite the error", n)
			}
		})
	}
}
