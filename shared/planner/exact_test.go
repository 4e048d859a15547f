package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// exactSetup is a backup of docs/ and a versioned target "vt" after an attack: at the moment,
// the backup held docs/a.txt, docs/b.txt and docs/z.txt; docs/gone.txt had been deleted before it;
// docs/later.txt was backed up only after it. The target (under prefix, "" for in place) holds
// a.txt as it was, b.txt overwritten, a ransom note and an encrypted copy that were never backed
// up, later.txt and gone.txt, and a key outside docs/.
func exactSetup(t *testing.T, prefix string) (*s3fake.S3, *Handler, string) {
	t.Helper()
	f, h := setup()
	h.Config.AllowExactRollback = true
	f.AddBucket("vt", true)
	h.Config.RestoreTargets = append(h.Config.RestoreTargets, "vt")
	ctx := context.Background()
	for _, k := range []string{"docs/a.txt", "docs/b.txt", "docs/gone.txt", "docs/z.txt"} {
		f.Put("bak", k, []byte("v1 "+k))
	}
	if _, err := f.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("bak"), Key: aws.String("docs/gone.txt")}); err != nil {
		t.Fatal(err)
	}
	at := f.Tick(time.Minute)
	f.Tick(time.Minute)
	f.Put("bak", "docs/later.txt", []byte("later"))
	for k, body := range map[string]string{
		"docs/a.txt": "v1 docs/a.txt", "docs/b.txt": "encrypted", "docs/a.txt.locked": "encrypted a", "docs/note.txt": "pay us",
		"docs/later.txt": "later", "docs/gone.txt": "back again", "docs/z.txt": "v1 docs/z.txt", "other/x": "out of scope",
	} {
		f.Put("vt", prefix+k, []byte(body))
	}
	return f, h, at.Format(time.RFC3339Nano)
}

// removals returns the removal items of a plan's batches, as restored key → destination key.
func removals(t *testing.T, f *s3fake.S3, n int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, it := range planned(t, f, n) {
		if it.Op == batch.OpDelete {
			if it.ETag == "" || it.Reason == "" {
				t.Errorf("removal %+v has no ETag or reason", it)
			}
			out[it.Key] = it.Destination()
		}
	}
	return out
}

// An exact restore removes, in its selection, what the backup did not hold at the moment: never
// backed up, backed up only later, deleted by then. A dry run counts and writes only those
// removals (for its report to name) and a preview manifest, never the Map's manifest.
func TestExactPlansRemovals(t *testing.T) {
	tests := []struct {
		name, selection, targetPrefix string
		maxKeys                       int64
		want                          []string // restored keys removed
		copies                        int64
	}{
		{name: "a folder in place", selection: `"prefix": "docs/"`,
			want: []string{"docs/a.txt.locked", "docs/gone.txt", "docs/later.txt", "docs/note.txt"}, copies: 1},
		{name: "one key per invocation", selection: `"prefix": "docs/"`, maxKeys: 1,
			want: []string{"docs/a.txt.locked", "docs/gone.txt", "docs/later.txt", "docs/note.txt"}, copies: 1},
		{name: "under a target prefix", selection: `"prefix": "docs/"`, targetPrefix: "restored/",
			want: []string{"docs/a.txt.locked", "docs/gone.txt", "docs/later.txt", "docs/note.txt"}, copies: 1},
		{name: "the whole bucket", selection: `"prefix": ""`,
			want: []string{"docs/a.txt.locked", "docs/gone.txt", "docs/later.txt", "docs/note.txt", "other/x"}, copies: 1},
		{name: "keys: only those keys, not the keys they begin", selection: `"keys": ["docs/a.txt", "docs/note.txt", "docs/gone.txt"]`,
			want: []string{"docs/gone.txt", "docs/note.txt"}},
		{name: "keys, one per invocation", selection: `"keys": ["docs/a.txt", "docs/note.txt", "docs/gone.txt"]`, maxKeys: 1,
			want: []string{"docs/gone.txt", "docs/note.txt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h, at := exactSetup(t, tt.targetPrefix)
			h.Config.MaxKeysPerInvocation = tt.maxKeys
			base := fmt.Sprintf(`{"at": %q, %s, "targetBucket": "vt", "targetPrefix": %q, "exact": true`, at, tt.selection, tt.targetPrefix)

			dry := planAll(t, h, base+`, "dryRun": true}`)
			if got := dry.Cursor.Totals.ToDelete; got != int64(len(tt.want)) {
				t.Fatalf("dry run: toDelete %d, want %d", got, len(tt.want))
			}
			if got := keysOf(removals(t, f, dry.Cursor.Totals.Batches)); !slices.Equal(got, tt.want) {
				t.Errorf("dry run names %v, want %v", got, tt.want)
			}
			if dry.ManifestKey != "" || exists(f, batch.ManifestKey("exec")) || !exists(f, batch.PreviewManifestKey("exec")) {
				t.Errorf("dry run: manifest key %q, manifest %v, preview manifest %v", dry.ManifestKey,
					exists(f, batch.ManifestKey("exec")), exists(f, batch.PreviewManifestKey("exec")))
			}

			resp := planAll(t, h, base+fmt.Sprintf(`, "confirmRemovals": %d}`, len(tt.want)))
			tot := resp.Cursor.Totals
			if tot.ToDelete != int64(len(tt.want)) || tot.Changed != tt.copies || resp.ManifestKey == "" {
				t.Fatalf("run: totals %+v, manifest %q", tot, resp.ManifestKey)
			}
			got := removals(t, f, tot.Batches)
			if !slices.Equal(keysOf(got), tt.want) {
				t.Errorf("run removes %v, want %v", keysOf(got), tt.want)
			}
			for k, dest := range got {
				if dest != tt.targetPrefix+k {
					t.Errorf("removal of %q writes %q, want %q", k, dest, tt.targetPrefix+k)
				}
			}
		})
	}
}

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func exists(f *s3fake.S3, key string) bool {
	_, err := f.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("run"), Key: aws.String(key)})
	return err == nil
}

// An exact restore is refused, before anything is written or thawed, when the deployment has not
// enabled it, when its target is not versioned, and when the removals it plans are not the
// number confirmed.
func TestExactRefusals(t *testing.T) {
	tests := []struct {
		name     string
		disabled bool
		target   string
		confirm  string
		want     any // a pointer to the named error type
		msg      string
	}{
		{name: "not enabled", disabled: true, target: "vt", confirm: `"confirmRemovals": 4`, want: new(*fault.InvalidInput), msg: "ALLOW_EXACT_ROLLBACK"},
		{name: "unversioned target", target: "target", confirm: `"confirmRemovals": 4`, want: new(*fault.TargetNotVersioned), msg: `bucket "target" is never enabled`},
		{name: "fewer confirmed", target: "vt", confirm: `"confirmRemovals": 3`, want: new(*fault.RemovalsUnconfirmed), msg: "would remove 4 objects from s3://vt/, but confirmRemovals is 3"},
		{name: "more confirmed", target: "vt", confirm: `"confirmRemovals": 5`, want: new(*fault.RemovalsUnconfirmed), msg: "confirm 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h, at := exactSetup(t, "")
			f.Put("target", "docs/note.txt", []byte("pay us"))
			f.Archive("bak", "GLACIER")
			h.Config.AllowExactRollback = !tt.disabled
			input := fmt.Sprintf(`{"at": %q, "prefix": "docs/", "targetBucket": %q, "exact": true, %s}`, at, tt.target, tt.confirm)
			err := planErr(h, input)
			if !errors.As(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want a %T containing %q", err, tt.want, tt.msg)
			}
			if exists(f, batch.ManifestKey("exec")) || f.Count("RestoreObject") != 0 || f.Count("DeleteObject") != 1 || f.Count("CopyObject") != 0 {
				t.Errorf("refused restore: manifest %v, %d RestoreObject, %d DeleteObject (1 is the setup's), %d CopyObject",
					exists(f, batch.ManifestKey("exec")), f.Count("RestoreObject"), f.Count("DeleteObject"), f.Count("CopyObject"))
			}
		})
	}
}

// planErr plans to the end and returns the error that stopped it.
func planErr(h *Handler, input string) error {
	var cur *Cursor
	for range 1000 {
		resp, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: cur, Mode: ModePlan})
		if err != nil || resp.Done {
			return err
		}
		cur = &resp.Cursor
	}
	return errors.New("planner never finished")
}

// An exact restore leaves its thaws to the first thaw check, after its confirmation passed, and
// that check comes at once.
func TestExactDefersThaws(t *testing.T) {
	f, h, at := exactSetup(t, "")
	f.Archive("bak", "GLACIER")
	input := fmt.Sprintf(`{"at": %q, "prefix": "docs/", "targetBucket": "vt", "exact": true, "confirmRemovals": 4}`, at)
	resp := planAll(t, h, input)
	if resp.ThawPending != 1 || resp.ThawWaitSeconds != 0 || f.Count("RestoreObject") != 0 {
		t.Fatalf("plan: pending %d, wait %d, %d RestoreObject calls", resp.ThawPending, resp.ThawWaitSeconds, f.Count("RestoreObject"))
	}
	r, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(input), Cursor: &resp.Cursor, Mode: ModeThaw})
	if err != nil {
		t.Fatal(err)
	}
	if r.ThawPending != 1 || f.Count("RestoreObject") != 1 {
		t.Fatalf("first check: pending %d, %d RestoreObject calls", r.ThawPending, f.Count("RestoreObject"))
	}
}

// ALLOW_EXACT_ROLLBACK is off by default and reads true or false only.
func TestAllowExactRollbackSetting(t *testing.T) {
	env := map[string]string{"SOURCE_BUCKET": "s", "BACKUP_BUCKET": "b", "RUN_BUCKET": "r"}
	lookup := func(extra map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if v, ok := extra[k]; ok {
				return v, true
			}
			v, ok := env[k]
			return v, ok
		}
	}
	for _, tt := range []struct {
		value   string
		want    bool
		wantErr bool
	}{{"", DefaultAllowExactRollback, false}, {"true", true, false}, {"false", false, false}, {"yes", false, true}} {
		cfg, err := ConfigFromEnv(lookup(map[string]string{"ALLOW_EXACT_ROLLBACK": tt.value}))
		if (err != nil) != tt.wantErr || cfg.AllowExactRollback != tt.want {
			t.Errorf("ALLOW_EXACT_ROLLBACK=%q: %v, %v", tt.value, cfg.AllowExactRollback, err)
		}
	}
	if DefaultAllowExactRollback {
		t.Error("exact restores must be off unless a deployment enables them")
	}
}

// ThawTime gives S3's documented retrieval times ("Understanding archive retrieval options",
// Amazon S3 User Guide): Expedited 1–5 minutes (Flexible Retrieval only), Standard 3–5 hours or
// within 12 hours (Deep Archive), Bulk 5–12 hours or within 48 hours (Deep Archive).
func TestThawTime(t *testing.T) {
	for _, tt := range []struct {
		tier, class string
		want        time.Duration
	}{
		{"Expedited", "GLACIER", 5 * time.Minute},
		{"Standard", "GLACIER", 5 * time.Hour},
		{"Bulk", "GLACIER", 12 * time.Hour},
		{"Expedited", "DEEP_ARCHIVE", 0},
		{"Standard", "DEEP_ARCHIVE", 12 * time.Hour},
		{"Bulk", "DEEP_ARCHIVE", 48 * time.Hour},
		{"Fast", "GLACIER", 0},
	} {
		if got := ThawTime(tt.tier, tt.class); got != tt.want {
			t.Errorf("ThawTime(%s, %s) = %s, want %s", tt.tier, tt.class, got, tt.want)
		}
	}
}
