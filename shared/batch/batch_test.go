package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestRoundTrip(t *testing.T) {
	h := Header{Version: Version, Source: "src", Destination: "bak"}
	items := []Item{
		{Op: OpCopy, Key: "a b/ü+%.txt", Change: "new", Size: 3, ETag: `"x"`, LastModified: time.Unix(1700000000, 0).UTC()},
		{Op: OpDelete, Key: "gone", Change: "deleted", Size: 1},
	}
	body, err := Encode(h, items)
	if err != nil {
		t.Fatal(err)
	}
	var got []Item
	gh, err := Read(bytes.NewReader(body), func(it Item) error { got = append(got, it); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if gh != h || len(got) != 2 || got[0] != items[0] || got[1] != items[1] {
		t.Fatalf("round trip: %+v %+v", gh, got)
	}
}

func TestReadRejects(t *testing.T) {
	header := `{"version":1,"source":"s","destination":"d"}` + "\n"
	tests := []struct{ name, body, want string }{
		{"empty", "", "no header"},
		{"foreign header", `{"version":2,"source":"s","destination":"d"}`, "want version 1"},
		{"unknown field", header + `{"op":"copy","key":"k","change":"new","size":1,"lastModified":"2026-01-01T00:00:00Z","extra":1}`, "unknown field"},
		{"bad op", header + `{"op":"move","key":"k","change":"new","size":1,"lastModified":"2026-01-01T00:00:00Z"}`, "unknown op"},
		{"empty key", header + `{"op":"copy","key":"","change":"new","size":1,"lastModified":"2026-01-01T00:00:00Z"}`, "empty key"},
		{"long key", header + `{"op":"copy","key":"` + strings.Repeat("k", 1025) + `","change":"new","size":1,"lastModified":"2026-01-01T00:00:00Z"}`, "exceeds 1024"},
		{"not json", header + `nope`, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.body), func(Item) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	if got := Key("exec-1", 7); got != "work/exec-1/batches/000007.jsonl" {
		t.Errorf("Key = %s", got)
	}
	got, err := OutcomeKey("work/exec-1/batches/000007.jsonl")
	if err != nil || got != "work/exec-1/outcomes/000007.json" {
		t.Errorf("OutcomeKey = %s, %v", got, err)
	}
	for _, bad := range []string{"work/exec-1/000007.jsonl", "work/exec-1/batches/x/000007.jsonl", "work/exec-1/batches/7.json"} {
		if _, err := OutcomeKey(bad); err == nil {
			t.Errorf("OutcomeKey(%q) accepted", bad)
		}
	}
}

func TestWriteManifest(t *testing.T) {
	for _, n := range []int{0, 1, 3} {
		p := &recordingPutter{}
		if err := WriteManifest(context.Background(), p, "run", "exec-1", n); err != nil {
			t.Fatal(err)
		}
		if p.key != "work/exec-1/manifest.jsonl" {
			t.Errorf("n=%d: key %q", n, p.key)
		}
		lines := strings.Split(strings.TrimSuffix(p.body, "\n"), "\n")
		if n == 0 {
			if p.body != "" {
				t.Errorf("n=0: body %q, want empty", p.body)
			}
			continue
		}
		if len(lines) != n {
			t.Fatalf("n=%d: %d lines: %q", n, len(lines), p.body)
		}
		for seq, line := range lines {
			var e ManifestEntry
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatal(err)
			}
			if e.Key != Key("exec-1", seq) {
				t.Errorf("n=%d line %d: %q, want %q", n, seq, e.Key, Key("exec-1", seq))
			}
		}
	}
}

type recordingPutter struct{ key, body string }

func (p *recordingPutter) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	p.key, p.body = aws.ToString(in.Key), string(b)
	return &s3.PutObjectOutput{}, err
}

// Deletion batches sort apart from the copy batches, and their outcomes sit next to the others'.
func TestDeleteKey(t *testing.T) {
	key := DeleteKey("exec-1", 3)
	if key != "work/exec-1/batches/delete-000003.jsonl" {
		t.Errorf("DeleteKey = %s", key)
	}
	if got, err := OutcomeKey(key); err != nil || got != "work/exec-1/outcomes/delete-000003.json" {
		t.Errorf("OutcomeKey(%s) = %s, %v", key, got, err)
	}
}

// A manifest of chosen keys reads back as exactly those keys, in order.
func TestManifestKeysRoundTrip(t *testing.T) {
	keys := []string{Key("exec-1", 0), Key("exec-1", 1), DeleteKey("exec-1", 0)}
	p := &recordingPutter{}
	if err := WriteManifestKeys(context.Background(), p, "run", "exec-1", keys); err != nil {
		t.Fatal(err)
	}
	got, err := ReadManifest(strings.NewReader(p.body), "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Errorf("read %q, want %q", got, keys)
	}
	if err := WriteManifestKeys(context.Background(), p, "run", "exec-1", []string{Key("exec-2", 0)}); err == nil {
		t.Error("a manifest listed another execution's batch")
	}
}

func TestReadManifestRejects(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"unknown field", `{"Key":"work/e/batches/000000.jsonl","Size":1}`, "unknown field"},
		{"another execution", `{"Key":"work/other/batches/000000.jsonl"}`, "not a batch of execution e"},
		{"no key", `{}`, "not a batch"},
		{"not json", `nope`, "line 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadManifest(strings.NewReader(tt.body), "e"); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	if keys, err := ReadManifest(strings.NewReader(""), "e"); err != nil || len(keys) != 0 {
		t.Errorf("empty manifest: %v, %v", keys, err)
	}
}

// A dry run's preview manifest is apart from the manifest the Map reads, and reads back as its batches.
func TestPreviewManifest(t *testing.T) {
	p := &recordingPutter{}
	if err := WritePreviewManifest(context.Background(), p, "run", "exec-1", 2); err != nil {
		t.Fatal(err)
	}
	if p.key != "work/exec-1/preview-manifest.jsonl" || p.key == ManifestKey("exec-1") {
		t.Errorf("key %q", p.key)
	}
	got, err := ReadManifest(strings.NewReader(p.body), "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{Key("exec-1", 0), Key("exec-1", 1)}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("read %q, want %q", got, want)
	}
}

func TestRangeKeys(t *testing.T) {
	tests := []struct {
		key    string
		r, seq int
		ok     bool
	}{
		{RangeKey("e", 0, 0), 0, 0, true},
		{RangeKey("e", 17, 3), 17, 3, true},
		{RangeKey("e", 1234567, 2), 1234567, 2, true},
		{Key("e", 3), 0, 0, false},
		{RangeDeleteKey("e", 1, 2), 0, 0, false},
		{RangeKey("other", 1, 2), 0, 0, false},
		{Prefix("e") + "r000001-000002.json", 0, 0, false},
		{RangeDestinationKey("e", "r", 1, 2), 0, 0, false},
		{RangeDestinationDeleteKey("e", "r", 1, 2), 0, 0, false},
	}
	for _, tt := range tests {
		r, seq, ok := ParseRangeKey("e", tt.key)
		if r != tt.r || seq != tt.seq || ok != tt.ok {
			t.Errorf("ParseRangeKey(%q) = %d, %d, %v; want %d, %d, %v", tt.key, r, seq, ok, tt.r, tt.seq, tt.ok)
		}
		if _, err := OutcomeKey(tt.key); err != nil && strings.HasPrefix(tt.key, Prefix("e")) && strings.HasSuffix(tt.key, ".jsonl") {
			t.Errorf("OutcomeKey(%q): %v", tt.key, err)
		}
	}
}

// Every batch a run may write has a name of its own: the backup bucket's and each further
// destination's, sequential or ranged, copies or deletions, even with destination names that
// look like range numbers.
func TestBatchKeysDistinct(t *testing.T) {
	names := []string{"r", "dr", "a", "a-r000001", "r000001", "delete"}
	seen := map[string]string{}
	add := func(key, what string) {
		t.Helper()
		if prev, dup := seen[key]; dup {
			t.Fatalf("%s and %s are both named %q", prev, what, key)
		}
		seen[key] = what
		if _, err := OutcomeKey(key); err != nil {
			t.Fatalf("%s: OutcomeKey(%q): %v", what, key, err)
		}
	}
	for _, seq := range []int{0, 1, 12} {
		add(Key("e", seq), fmt.Sprintf("copy %d", seq))
		add(DeleteKey("e", seq), fmt.Sprintf("delete %d", seq))
		for _, r := range []int{0, 1, 12} {
			add(RangeKey("e", r, seq), fmt.Sprintf("range %d copy %d", r, seq))
			add(RangeDeleteKey("e", r, seq), fmt.Sprintf("range %d delete %d", r, seq))
		}
		for _, n := range names {
			add(DestinationKey("e", n, seq), fmt.Sprintf("%s copy %d", n, seq))
			add(DestinationDeleteKey("e", n, seq), fmt.Sprintf("%s delete %d", n, seq))
			for _, r := range []int{0, 1, 12} {
				add(RangeDestinationKey("e", n, r, seq), fmt.Sprintf("%s range %d copy %d", n, r, seq))
				add(RangeDestinationDeleteKey("e", n, r, seq), fmt.Sprintf("%s range %d delete %d", n, r, seq))
			}
		}
	}
}
