package lister

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// unlistable is a destination whose listing fails once it has served okPages pages.
type unlistable struct {
	*s3fake.S3
	okPages int
}

func (u *unlistable) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if u.okPages <= 0 {
		return nil, errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	u.okPages--
	return u.S3.ListObjectsV2(ctx, in, opts...)
}

// byDestination reads the batches the manifest lists and describes their items per destination
// name ("" for the backup bucket), checking each header's buckets.
func byDestination(t *testing.T, f *s3fake.S3, keys []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, key := range keys {
		var its []batch.Item
		h, err := batch.Read(bytes.NewReader(read(t, f, key)), func(it batch.Item) error { its = append(its, it); return nil })
		if err != nil {
			t.Fatalf("batch %s: %v", key, err)
		}
		want := map[string]string{"": "bak", "dr": "dr-bucket", "far": "far-bucket"}[h.DestinationName]
		if h.Source != "src" || h.Destination != want {
			t.Fatalf("batch %s header %+v: want src → %s", key, h, want)
		}
		named := func(sep string) bool {
			return strings.Contains(key, "/to-"+h.DestinationName+sep) || strings.Contains(key, "/delete-to-"+h.DestinationName+sep)
		}
		if h.DestinationName != "" && !named("-") && !named(".r") {
			t.Fatalf("batch %s of destination %q is not named after it", key, h.DestinationName)
		}
		out[h.DestinationName] = append(out[h.DestinationName], describe(its)...)
	}
	return out
}

// Each further destination is classified against its own listing, merged with the one source
// listing; a destination that cannot be checked or listed is marked failed while the backup
// bucket and the others go on; guards judge each destination's own counts.
func TestFurtherDestinations(t *testing.T) {
	tests := []struct {
		name    string
		maxKeys int64
		// drClient wraps the fake for destination dr (nil: the fake itself).
		drClient     func(*s3fake.S3) S3
		drVersioned  bool
		limits       *guard.Limits
		wantItems    map[string][]string
		wantDR       report.DestinationTotals
		wantDRError  string
		wantWithheld bool
	}{
		{
			name: "each destination has its own changes", drVersioned: true,
			wantItems: map[string][]string{
				"":    {"copy new a", "copy changed b", "delete deleted y"},
				"dr":  {"copy new b", "delete deleted z", "delete deleted z2", "delete deleted z3"},
				"far": {"copy new a", "copy new b", "copy new c"},
			},
			wantDR: report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", New: 1, Unchanged: 2, ToDelete: 3, BackupObjects: 5, BytesToCopy: 2},
		},
		{
			name: "one key per invocation gives the same batches", drVersioned: true, maxKeys: 1,
			wantItems: map[string][]string{
				"":    {"copy new a", "copy changed b", "delete deleted y"},
				"dr":  {"copy new b", "delete deleted z", "delete deleted z2", "delete deleted z3"},
				"far": {"copy new a", "copy new b", "copy new c"},
			},
			wantDR: report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", New: 1, Unchanged: 2, ToDelete: 3, BackupObjects: 5, BytesToCopy: 2},
		},
		{
			name: "a destination that cannot be listed is left out", drVersioned: true,
			drClient: func(f *s3fake.S3) S3 { return &unlistable{S3: f} },
			wantItems: map[string][]string{
				"":    {"copy new a", "copy changed b", "delete deleted y"},
				"far": {"copy new a", "copy new b", "copy new c"},
			},
			wantDR:      report.DestinationTotals{Name: "dr", Bucket: "dr-bucket"},
			wantDRError: "listing it failed: list bucket \"dr-bucket\": dial tcp 127.0.0.1:1: connection refused",
		},
		{
			name: "a destination whose listing fails half-way keeps what it decided", drVersioned: true, maxKeys: 1,
			drClient: func(f *s3fake.S3) S3 { return &unlistable{S3: f, okPages: 2} },
			wantItems: map[string][]string{
				"":    {"copy new a", "copy changed b", "delete deleted y"},
				"dr":  {"copy new b"},
				"far": {"copy new a", "copy new b", "copy new c"},
			},
			// Keys a (unchanged) and b (new) were decided before the listing failed: their copies
			// stand; nothing after them is decided.
			wantDR:      report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", New: 1, Unchanged: 1, BackupObjects: 1, BytesToCopy: 2},
			wantDRError: "listing it failed",
		},
		{
			name: "an unversioned destination is refused", drVersioned: false,
			wantItems: map[string][]string{
				"":    {"copy new a", "copy changed b", "delete deleted y"},
				"far": {"copy new a", "copy new b", "copy new c"},
			},
			wantDR:      report.DestinationTotals{Name: "dr", Bucket: "dr-bucket"},
			wantDRError: `versioning must be enabled (it is "")`,
		},
		{
			name: "a destination's deletion guard withholds only its deletions", drVersioned: true,
			// dr would mark 3 of its 5 deleted (60%); the backup bucket 1 of 3, within the floor.
			limits: &guard.Limits{Delete: guard.Limit{MaxPercent: 50, Floor: guard.MinFloor}, Change: guard.Limit{MaxPercent: 100, Floor: guard.MinFloor}},
			wantItems: map[string][]string{
				"":    {"copy new a", "copy changed b", "delete deleted y"},
				"dr":  {"copy new b"},
				"far": {"copy new a", "copy new b", "copy new c"},
			},
			wantDR:       report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", New: 1, Unchanged: 2, ToDelete: 3, BackupObjects: 5, BytesToCopy: 2},
			wantWithheld: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup(true)
			f.AddBucket("dr-bucket", tt.drVersioned)
			f.AddBucket("far-bucket", true)
			f.Put("src", "a", []byte("a"))
			f.Put("src", "b", []byte("b2"))
			f.Put("src", "c", []byte("c"))
			f.Put("bak", "b", []byte("b1"))
			f.Put("bak", "c", []byte("c"))
			f.Put("bak", "y", []byte("y"))
			f.Put("dr-bucket", "a", []byte("a"))
			f.Put("dr-bucket", "c", []byte("c"))
			f.Put("dr-bucket", "z", []byte("z"))
			f.Put("dr-bucket", "z2", []byte("z"))
			f.Put("dr-bucket", "z3", []byte("z"))
			h.Config.MaxKeysPerInvocation = tt.maxKeys
			h.Config.Destinations = []destination.Destination{{Name: "dr", Bucket: "dr-bucket"}, {Name: "far", Bucket: "far-bucket"}}
			var dr S3 = f
			if tt.drClient != nil {
				dr = tt.drClient(f)
			}
			h.Destinations = map[string]S3{"dr": dr, "far": f}
			if tt.limits != nil {
				h.Config.Guards = *tt.limits
			}
			resp, _ := listAll(t, h, `{}`)
			got := byDestination(t, f, manifest(t, f, resp))
			for name, want := range tt.wantItems {
				if !slices.Equal(got[name], want) {
					t.Errorf("destination %q: items %q, want %q", name, got[name], want)
				}
			}
			for name := range got {
				if _, ok := tt.wantItems[name]; !ok {
					t.Errorf("destination %q has items %q, want none", name, got[name])
				}
			}
			tot := resp.Cursor.Totals
			if len(tot.Destinations) != 2 {
				t.Fatalf("totals of %d destinations, want 2", len(tot.Destinations))
			}
			dt := tot.Destinations[0]
			if !strings.Contains(dt.Error, tt.wantDRError) || (tt.wantDRError == "") != (dt.Error == "") {
				t.Errorf("dr error %q, want %q", dt.Error, tt.wantDRError)
			}
			dt.Error = ""
			if dt != tt.wantDR {
				t.Errorf("dr totals %+v, want %+v", dt, tt.wantDR)
			}
			// The backup bucket's counts are those of a run without destinations.
			if tot.New != 1 || tot.Changed != 1 || tot.Unchanged != 1 || tot.ToDelete != 1 || tot.Listed != 3 {
				t.Errorf("backup totals %+v", tot)
			}
			var drGuards, tripped int
			for _, g := range resp.Guards {
				if g.Destination == "dr" {
					drGuards++
				}
				if g.Tripped {
					tripped++
					if g.Destination != "dr" || g.Name != guard.Deletion || !strings.Contains(g.Message, `destination "dr"`) {
						t.Errorf("tripped guard %+v, want dr's deletion guard", g)
					}
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tt.wantWithheld]; tripped != want {
				t.Errorf("%d guards tripped, want %d", tripped, want)
			}
			if wantGuards := map[bool]int{true: 0, false: 2}[tt.wantDRError != ""]; drGuards != wantGuards {
				t.Errorf("%d guards of dr, want %d", drGuards, wantGuards)
			}
		})
	}
}

func TestDestinationsConfig(t *testing.T) {
	base := map[string]string{"SOURCE_BUCKET": "src", "BACKUP_BUCKET": "bak", "RUN_BUCKET": "run"}
	tests := []struct {
		name, destinations, ranges, wantErr string
	}{
		{name: "none"},
		{name: "two", destinations: `[{"name":"dr","bucket":"dr-b"},{"name":"far","bucket":"x","endpoint":"https://s3.example.com","credentials":"secretsmanager:arn:x"}]`},
		{name: "with ranges", destinations: `[{"name":"dr","bucket":"dr-b"}]`, ranges: "4"},
		{name: "the backup bucket again", destinations: `[{"name":"dr","bucket":"bak"}]`, wantErr: `bucket "bak" is already`},
		{name: "primary", destinations: `[{"name":"primary","bucket":"p"}]`, wantErr: `name "primary" is taken`},
		{name: "unknown field", destinations: `[{"name":"dr","bucket":"dr","kms":"x"}]`, wantErr: `unknown field "kms"`},
		{name: "env credentials missing", destinations: `[{"name":"dr","bucket":"dr","endpoint":"http://127.0.0.1:9000","credentials":"env:DR"}]`, wantErr: "DR_ACCESS_KEY_ID and DR_SECRET_ACCESS_KEY must be set"},
		{name: "plain http elsewhere", destinations: `[{"name":"dr","bucket":"dr","endpoint":"http://s3.example.com"}]`, wantErr: "not loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"DESTINATIONS": tt.destinations, "LISTER_RANGES": tt.ranges}
			for k, v := range base {
				env[k] = v
			}
			if tt.ranges == "" {
				delete(env, "LISTER_RANGES")
			}
			c, err := ConfigFromEnv(envconf.Map(env))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("config %+v, error %v; want %q", c.Destinations, err, tt.wantErr)
			}
		})
	}
}
