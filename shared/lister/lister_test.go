package lister

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func setup(versioned bool) (*s3fake.S3, *Handler) {
	f := s3fake.New()
	f.AddBucket("src", false)
	f.AddBucket("bak", versioned)
	f.AddBucket("run", false)
	h := &Handler{S3: f, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run", BatchSize: 2, BatchBytes: 1 << 40, MaxDeletePercent: 100},
		Logger: slog.New(slog.DiscardHandler)}
	return f, h
}

// listAll invokes the lister until it is done, as the state machine's loop does.
func listAll(t *testing.T, h *Handler, input string) (Response, int) {
	t.Helper()
	var cur *Cursor
	for n := 1; n < 1000; n++ {
		resp, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: cur})
		if err != nil {
			t.Fatalf("invocation %d: %v", n, err)
		}
		if resp.Done {
			return resp, n
		}
		cur = &resp.Cursor
	}
	t.Fatal("lister never finished")
	return Response{}, 0
}

func readBatches(t *testing.T, f *s3fake.S3, n int) []batch.Item {
	t.Helper()
	var items []batch.Item
	for i := range n {
		out, err := f.GetObject(context.Background(), getInput("run", batch.Key("exec", i)))
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		body, _ := io.ReadAll(out.Body)
		h, err := batch.Read(bytes.NewReader(body), func(it batch.Item) error { items = append(items, it); return nil })
		if err != nil || h.Source != "src" || h.Destination != "bak" {
			t.Fatalf("batch %d: %+v %v", i, h, err)
		}
	}
	return items
}

func TestMergeClassifies(t *testing.T) {
	f, h := setup(true)
	f.Put("src", "a-new", []byte("a"))
	f.Put("src", "b-changed", []byte("b2"))
	f.Put("bak", "b-changed", []byte("b1"))
	f.Put("src", "c-same", []byte("c"))
	f.Put("bak", "c-same", []byte("c"))
	f.Put("bak", "d-deleted", []byte("d"))
	f.Put("src", "e-new", []byte("e"))
	resp, _ := listAll(t, h, `{}`)
	c := resp.Cursor
	if c.Listed != 4 || c.New != 2 || c.Changed != 1 || c.Unchanged != 1 || c.ToDelete != 1 || c.BackupObjects != 3 || c.NextBatch != 2 {
		t.Fatalf("cursor %+v", c)
	}
	var got []string
	for _, it := range readBatches(t, f, c.NextBatch) {
		got = append(got, fmt.Sprintf("%s %s %s", it.Op, it.Change, it.Key))
	}
	want := []string{"copy new a-new", "copy changed b-changed", "delete deleted d-deleted", "copy new e-new"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("items %q, want %q", got, want)
	}
}

// Many small invocations produce the same work as one big one.
func TestCursorResumes(t *testing.T) {
	for _, perInvocation := range []int64{0, 1, 3, 7} {
		t.Run(fmt.Sprint(perInvocation), func(t *testing.T) {
			f, h := setup(true)
			h.Config.MaxKeysPerInvocation = perInvocation
			for i := range 20 {
				f.Put("src", fmt.Sprintf("k%02d", i), []byte{byte(i)})
				if i%3 == 0 {
					f.Put("bak", fmt.Sprintf("k%02d", i), []byte{byte(i)})
				}
				if i%5 == 0 {
					f.Put("bak", fmt.Sprintf("k%02d-gone", i), []byte{1})
				}
			}
			resp, n := listAll(t, h, `{}`)
			if perInvocation > 0 && n < int(24/perInvocation) {
				t.Errorf("%d invocations for 24 keys at %d per invocation", n, perInvocation)
			}
			c := resp.Cursor
			if c.Listed != 20 || c.New != 13 || c.Unchanged != 7 || c.ToDelete != 4 || c.Invocations != n {
				t.Fatalf("cursor %+v", c)
			}
			items := readBatches(t, f, c.NextBatch)
			if len(items) != 17 {
				t.Fatalf("%d items in batches, want 17", len(items))
			}
			for i := 1; i < len(items); i++ {
				if items[i].Key <= items[i-1].Key {
					t.Fatalf("items out of order or repeated: %q after %q", items[i].Key, items[i-1].Key)
				}
			}
		})
	}
}

func TestErrorsAreNamed(t *testing.T) {
	tests := []struct {
		name     string
		prepare  func(f *s3fake.S3, h *Handler)
		input    string
		wantType string
		wantMsg  string
	}{
		{"missing backup bucket", func(f *s3fake.S3, h *Handler) { h.Config.BackupBucket = "nope" }, `{}`, "BucketNotFound", `backup bucket "nope"`},
		{"unversioned backup", func(f *s3fake.S3, h *Handler) { f.AddBucket("bak", false) }, `{}`, "BackupNotVersioned", "versioning"},
		{"bad input", func(f *s3fake.S3, h *Handler) {}, `{"dry_run":true}`, "InvalidInput", `unknown field "dry_run"`},
		{"throttled listing", func(f *s3fake.S3, h *Handler) {
			f.Fail = func(op, b, k string) error {
				if op == "ListObjectsV2" {
					return s3fake.APIError("SlowDown")
				}
				return nil
			}
		}, `{}`, "TransientError", "SlowDown"},
		{"guard", func(f *s3fake.S3, h *Handler) {
			h.Config.MaxDeletePercent = 25
			f.Put("bak", "x", []byte("x"))
			f.Put("bak", "y", []byte("y"))
		}, `{}`, "DeletionGuardTripped", "mark 2 of the backup's 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup(true)
			tt.prepare(f, h)
			payload, _ := json.Marshal(Request{Execution: "exec", Input: json.RawMessage(tt.input)})
			_, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
			if err == nil {
				t.Fatal("no error")
			}
			// aws-lambda-go names the error by its Go type; that name is the Step Functions error.
			if got := reflect.TypeOf(err).Elem().Name(); got != tt.wantType || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %s: %v; want %s mentioning %q", got, err, tt.wantType, tt.wantMsg)
			}
			if n := f.Count("PutObject"); n != 0 && tt.wantType != "DeletionGuardTripped" {
				t.Errorf("%d objects written despite the error", n)
			}
		})
	}
}

func TestDryRunWritesNoBatch(t *testing.T) {
	f, h := setup(true)
	f.Put("src", "a", []byte("a"))
	resp, _ := listAll(t, h, `{"dryRun":true}`)
	if !resp.DryRun || resp.Cursor.New != 1 || resp.Cursor.NextBatch != 0 || f.Count("PutObject") != 0 {
		t.Fatalf("dry run: %+v, %d puts", resp, f.Count("PutObject"))
	}
}

func TestPrefixLimitsBothSides(t *testing.T) {
	f, h := setup(true)
	f.Put("src", "data/a", []byte("a"))
	f.Put("src", "other/b", []byte("b"))
	f.Put("bak", "other/c", []byte("c")) // outside the prefix: not a deletion
	resp, _ := listAll(t, h, `{"prefix":"data/"}`)
	if c := resp.Cursor; c.Listed != 1 || c.New != 1 || c.ToDelete != 0 {
		t.Fatalf("cursor %+v", c)
	}
}

func TestConfigFromEnv(t *testing.T) {
	_, err := ConfigFromEnv(func(string) (string, bool) { return "", false })
	var ce *fault.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "SOURCE_BUCKET") {
		t.Fatalf("err = %v", err)
	}
	same := map[string]string{"SOURCE_BUCKET": "a", "BACKUP_BUCKET": "a", "RUN_BUCKET": "r"}
	if _, err := ConfigFromEnv(func(k string) (string, bool) { v, ok := same[k]; return v, ok }); !errors.As(err, &ce) {
		t.Fatalf("same source and backup accepted: %v", err)
	}
}
