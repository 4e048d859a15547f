//go:build integration

package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// TestRangedListing: with LISTER_RANGES set, a backup of a bucket bigger than one listing page
// is listed in key-space ranges (the split writes its ranges file and the ListRanges Map runs a
// lister per range) and backs up exactly what the sequential lister would: every key once, then
// an idle run copies nothing, then a change, a deletion and a new key are found across ranges.
// Keys are skewed (most under one prefix) and include characters above U+FFFF. A further
// destination (dr) is listed in the same ranges and ends each run holding what the source holds.
func TestRangedListing(t *testing.T) {
	dr := "dr-" + strings.ToLower(randomHex(4))
	e := newEnv(t, envOptions{vars: map[string]string{"DESTINATIONS": fmt.Sprintf(`[{"name":"dr","bucket":%q}]`, dr)}})
	if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(dr)}); err != nil {
		t.Fatal(err)
	}
	e.versioning(dr)
	e.runner.Env["LISTER_RANGES"] = "8"
	key := func(i int) string {
		switch {
		case i%10 == 0:
			return fmt.Sprintf("photos/😀/%05d.jpg", i)
		case i%10 == 1:
			return fmt.Sprintf("z-%05d", i)
		}
		return fmt.Sprintf("logs/2026/%05d.log", i)
	}
	const n = 2500
	e.putMany(e.source, n, key, func(i int) []byte { return []byte(fmt.Sprint("v1 ", i)) })

	first := e.mustBackup(`{}`)
	if r := first.Report; r.Copied != n || r.Failed != 0 || r.Listed != n {
		t.Fatalf("first run: listed %d, copied %d, failed %d; want %d, %d, 0\n%s", r.Listed, r.Copied, r.Failed, n, n, first.ReportJSON)
	}
	if d := section(t, first.Report, "dr"); d.New != n || d.Copied != n || d.Failed != 0 {
		t.Fatalf("first run, dr: %+v; want %d new and copied", d, n)
	}
	sameAsSource := func(run string) {
		t.Helper()
		if got, want := e.contentOf(e.s3, dr), e.contentOf(e.s3, e.source); !sameMaps(got, want) {
			t.Fatalf("%s: dr holds %d keys, the source %d (or their content differs)", run, len(got), len(want))
		}
	}
	sameAsSource("first run")
	if _, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.run), Key: aws.String("work/" + first.Execution.Name + "/ranges.jsonl")}); err != nil {
		t.Fatalf("the first run was not listed in ranges (no ranges file): %v", err)
	}
	v := e.versions(e.backup)
	if len(v) != n {
		t.Fatalf("backup holds %d keys, want %d", len(v), n)
	}
	for k, vi := range v {
		if vi.data != 1 || vi.latestMarker {
			t.Fatalf("%s in the backup: %+v, want one version", k, vi)
		}
	}

	idle := e.mustBackup(`{}`)
	if r := idle.Report; r.Copied != 0 || r.Unchanged != n || r.ToDelete != 0 {
		t.Fatalf("idle run: copied %d, unchanged %d, toDelete %d\n%s", r.Copied, r.Unchanged, r.ToDelete, idle.ReportJSON)
	}
	if d := section(t, idle.Report, "dr"); d.Unchanged != n || d.Copied != 0 || d.Deleted != 0 {
		t.Fatalf("idle run, dr: %+v", d)
	}

	changed := []string{key(0), key(1), key(1234)}
	for _, k := range changed {
		e.putBytes(e.source, k, []byte("v2 "+k))
	}
	e.del(e.source, key(2))
	e.putBytes(e.source, "zz-new", []byte("new"))
	third := e.mustBackup(`{}`)
	if r := third.Report; r.Copied != 4 || r.Deleted != 1 || r.Changed != 3 || r.New != 1 || r.Failed != 0 {
		t.Fatalf("third run: copied %d (changed %d, new %d), deleted %d, failed %d\n%s", r.Copied, r.Changed, r.New, r.Deleted, r.Failed, third.ReportJSON)
	}
	if d := section(t, third.Report, "dr"); d.Copied != 4 || d.Deleted != 1 || d.Changed != 3 || d.New != 1 || d.Failed != 0 {
		t.Fatalf("third run, dr: %+v", d)
	}
	sameAsSource("third run")
	v = e.versions(e.backup)
	for _, k := range changed {
		if v[k] == nil || v[k].data != 2 {
			t.Errorf("%s: %+v, want two versions", k, v[k])
		}
	}
	if v[key(2)] == nil || !v[key(2)].latestMarker {
		t.Errorf("%s: %+v, want a delete marker", key(2), v[key(2)])
	}
	if keys := e.keys(e.backup); !slices.Contains(keys, "zz-new") || len(keys) != n {
		t.Errorf("backup's current keys: %d, want %d with zz-new", len(keys), n)
	}
}

// TestRangedListingKMS: into an SSE-KMS backup (ETags never the source's) every run is listed in
// key-space ranges, each range reading the ETag index from its own start: the first run copies
// everything, an idle run nothing, a run after three changes exactly those three, and the next
// run nothing again.
func TestRangedListingKMS(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.kmsDefault(e.backup)
	e.runner.Env["LISTER_RANGES"] = "8"
	key := func(i int) string { return fmt.Sprintf("%s/%05d", []string{"a", "logs/2026", "z"}[i%3], i) }
	const n = 2500
	e.putMany(e.source, n, key, func(i int) []byte { return []byte(fmt.Sprint("v1 ", i)) })
	ranged := func(res *localrun.Result) {
		t.Helper()
		if _, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e.run), Key: aws.String("work/" + res.Execution.Name + "/ranges.jsonl")}); err != nil {
			t.Fatalf("%s was not listed in ranges (no ranges file): %v", res.Execution.Name, err)
		}
	}
	first := e.mustBackup(`{}`)
	if r := first.Report; r.Copied != n || r.Failed != 0 {
		t.Fatalf("first run: copied %d, failed %d\n%s", r.Copied, r.Failed, first.ReportJSON)
	}
	ranged(first)
	e.requireKMS(e.backup, key(7))
	for _, step := range []struct {
		name    string
		changed []int
	}{{name: "idle"}, {name: "three changed", changed: []int{0, 1234, n - 1}}, {name: "idle again"}} {
		for _, i := range step.changed {
			e.putBytes(e.source, key(i), []byte("v2"))
		}
		res := e.mustBackup(`{}`)
		ranged(res)
		if r := res.Report; r.Copied != int64(len(step.changed)) || r.Changed != int64(len(step.changed)) || r.Unchanged != int64(n-len(step.changed)) {
			t.Fatalf("%s: copied %d changed %d unchanged %d; want %d, %d, %d\n%s", step.name, r.Copied, r.Changed, r.Unchanged, len(step.changed), len(step.changed), n-len(step.changed), res.ReportJSON)
		}
	}
}
