//go:build integration

package integration

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/runlock"
)

// filterSource fills a source bucket with keys of mixed sizes, ages and tags: old/o.csv is
// written at least three seconds before everything else. It returns the LastModified times the
// listing gives (what the lister's age rules read) of old/o.csv and of the oldest of the others.
func filterSource(e *env) (old, newer time.Time) {
	e.t.Helper()
	e.put(e.source, object{key: "old/o.csv", body: "old"})
	old = e.listedModified(e.source)["old/o.csv"]
	for time.Now().Before(old.Add(3 * time.Second)) { // the age rule needs objects seconds apart
		time.Sleep(100 * time.Millisecond)
	}
	for _, o := range []object{
		{key: "data/a.csv", body: "a"},
		{key: "data/b.tmp", body: "b"},
		{key: "data/big.bin", body: strings.Repeat("x", 2048)},
		{key: "logs/x.log", body: "x"},
		{key: "secret/s.csv", body: "s", tags: "backup=false&team=finance"},
		{key: "secret/t.csv", body: "t", tags: "team=finance"},
	} {
		e.put(e.source, o)
	}
	for k, t := range e.listedModified(e.source) {
		if k != "old/o.csv" && (newer.IsZero() || t.Before(newer)) {
			newer = t
		}
	}
	return old, newer
}

// listedModified is the LastModified of each key as ListObjectsV2 gives it.
func (e *env) listedModified(bucket string) map[string]time.Time {
	e.t.Helper()
	out, err := e.s3.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]time.Time{}
	for _, o := range out.Contents {
		m[aws.ToString(o.Key)] = aws.ToTime(o.LastModified)
	}
	return m
}

// backupKeys lists the backup's versions and delete markers with the AWS CLI, an independent
// client: the keys with a current version, and the keys whose latest entry is a delete marker.
func (e *env) backupKeys() (current, deleted []string, versions int) {
	e.t.Helper()
	var listing struct {
		Versions []struct {
			Key      string
			IsLatest bool
		}
		DeleteMarkers []struct {
			Key      string
			IsLatest bool
		}
	}
	e.aws(&listing, "s3api", "list-object-versions", "--bucket", e.backup)
	for _, v := range listing.Versions {
		if v.IsLatest {
			current = append(current, v.Key)
		}
	}
	for _, d := range listing.DeleteMarkers {
		if d.IsLatest {
			deleted = append(deleted, d.Key)
		}
	}
	slices.Sort(current)
	slices.Sort(deleted)
	return current, deleted, len(listing.Versions)
}

// Each kind of rule and a combination against one source of mixed keys, sizes, ages and tags:
// exactly the expected keys are in the backup (AWS CLI), the report counts what was excluded by
// rule, and an idle second run copies nothing and reads no tags.
func TestFilterRules(t *testing.T) {
	src := newEnv(t, envOptions{})
	old, newer := filterSource(src)
	all := []string{"data/a.csv", "data/b.tmp", "data/big.bin", "logs/x.log", "old/o.csv", "secret/s.csv", "secret/t.csv"}
	without := func(keys ...string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(k string) bool { return slices.Contains(keys, k) })
	}
	tests := []struct {
		name     string
		filters  func() string
		want     []string
		byRule   map[string]int64
		tagReads int64
		// idleTags are the tag reads of the idle run: an object a tag rule excludes is never
		// backed up, so it is new to every run, and its tags are read again.
		idleTags int64
	}{
		{"prefix", func() string { return `{"include":["prefix:data/"]}` }, []string{"data/a.csv", "data/b.tmp", "data/big.bin"}, map[string]int64{}, 0, 0},
		{"glob", func() string { return `{"exclude":["glob:**/*.tmp"]}` }, without("data/b.tmp"), map[string]int64{"glob:**/*.tmp": 1}, 0, 0},
		{"glob include of file names", func() string { return `{"include":["glob:*.csv"]}` }, []string{"data/a.csv", "old/o.csv", "secret/s.csv", "secret/t.csv"},
			map[string]int64{"(no include rule matched)": 3}, 0, 0},
		{"size", func() string { return `{"exclude":["size>1KiB"]}` }, without("data/big.bin"), map[string]int64{"size>1KiB": 1}, 0, 0},
		{"age", func() string {
			// Halfway between the ages of old/o.csv and of the newer objects (three seconds or
			// more apart), in whole seconds: the lister, a moment later, finds old/o.csv older.
			now := time.Now()
			d := int(math.Round((now.Sub(old).Seconds() + now.Sub(newer).Seconds()) / 2))
			return fmt.Sprintf(`{"exclude":["age>%ds"]}`, d)
		}, without("old/o.csv"), nil, 0, 0},
		{"tag", func() string { return `{"exclude":["tag:backup=false"]}` }, without("secret/s.csv"), map[string]int64{"tag:backup=false": 1}, 7, 1},
		{"tag include", func() string { return `{"include":["tag:team=finance"]}` }, []string{"secret/s.csv", "secret/t.csv"}, map[string]int64{"(no include rule matched)": 5}, 7, 5},
		{"combination", func() string {
			return `{"include":["prefix:data/","prefix:secret/"],"exclude":["glob:**/*.tmp",["prefix:secret/","tag:backup=false"]]}`
		}, []string{"data/a.csv", "data/big.bin", "secret/t.csv"}, map[string]int64{"glob:**/*.tmp": 1, "prefix:secret/ & tag:backup=false": 1}, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{vars: map[string]string{"SOURCE_BUCKET": src.source}})
			e.source = src.source
			in := `{"filters":` + tt.filters() + `}`
			res := e.mustBackup(in)
			r := res.Report
			current, deleted, _ := e.backupKeys()
			if !slices.Equal(current, tt.want) || len(deleted) != 0 {
				t.Fatalf("%s: backup holds %q (deleted %q), want %q\nreport %s", in, current, deleted, tt.want, res.ReportJSON)
			}
			e.sameContent(tt.want)
			var excluded int64
			for _, n := range r.ExcludedByRule {
				excluded += n
			}
			if r.Copied != int64(len(tt.want)) || r.Excluded != excluded || r.Listed != r.New+r.Changed+r.Unchanged+r.Excluded || r.TagReads != tt.tagReads ||
				tt.byRule != nil && !mapsEqual(r.ExcludedByRule, tt.byRule) {
				t.Fatalf("%s: report copied %d excluded %d by rule %v tag reads %d listed %d", in, r.Copied, r.Excluded, r.ExcludedByRule, r.TagReads, r.Listed)
			}
			if tt.byRule == nil && (r.Excluded != 1 || len(r.ExcludedByRule) != 1) { // the age rule's text depends on the clock
				t.Fatalf("%s: excluded %d by rule %v, want old/o.csv alone", in, r.Excluded, r.ExcludedByRule)
			}
			idle := e.mustBackup(`{"filters":` + tt.filters() + `}`).Report
			if idle.Copied != 0 || idle.New+idle.Changed+idle.ToDelete != 0 || idle.TagReads != tt.idleTags {
				t.Fatalf("idle run: copied %d new %d changed %d toDelete %d tag reads %d", idle.Copied, idle.New, idle.Changed, idle.ToDelete, idle.TagReads)
			}
		})
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Keys already in the backup that a filter now excludes are left alone — not copied when they
// change, not marked deleted when they go — and marked deleted only with deleteExcluded, which
// the deletion guard counts.
func TestFilterExcludedLeftAlone(t *testing.T) {
	e := newEnv(t, envOptions{vars: map[string]string{"DELETE_GUARD_FLOOR": "1"}})
	for _, k := range []string{"data/a.csv", "data/b.tmp", "logs/x.log", "logs/y.log"} {
		e.put(e.source, object{key: k, body: k})
	}
	e.mustBackup(`{}`)
	e.put(e.source, object{key: "logs/x.log", body: "changed"})
	e.del(e.source, "data/b.tmp")
	e.del(e.source, "logs/y.log")

	const rules = `"exclude":["glob:logs/**","glob:**/*.tmp"]`
	r := e.mustBackup(`{"filters":{` + rules + `}}`).Report
	current, deleted, versions := e.backupKeys()
	if want := []string{"data/a.csv", "data/b.tmp", "logs/x.log", "logs/y.log"}; !slices.Equal(current, want) || len(deleted) != 0 || versions != 4 {
		t.Fatalf("without deleteExcluded: backup holds %q, deleted %q, %d versions; want %q untouched", current, deleted, versions, want)
	}
	if got := e.get(e.backup, "logs/x.log"); string(got) != "logs/x.log" {
		t.Fatalf("logs/x.log in the backup is %q, want the old content", got)
	}
	if r.Excluded != 1 || r.ExcludedDeletions != 2 || r.ToDelete != 0 || r.Copied != 0 || r.Unchanged != 1 {
		t.Fatalf("report excluded %d excludedDeletions %d toDelete %d copied %d unchanged %d", r.Excluded, r.ExcludedDeletions, r.ToDelete, r.Copied, r.Unchanged)
	}

	// With deleteExcluded the excluded keys are marked deleted — logs/x.log although the source still
	// has it — and the deletion guard counts them: at 50% (floor 1) it trips on 3 of 4 and withholds
	// them all.
	res := e.backupRun(`{"filters":{` + rules + `,"deleteExcluded":true},"maxDeletePercent":50}`)
	if res.Succeeded() || res.Execution.Error != "DeletionGuardTripped" || res.Report == nil || res.Report.ToDelete != 3 || res.Report.Withheld != 3 {
		t.Fatalf("guard at 50%%: %s %s: %s", res.Execution.Status, res.Execution.Error, res.ReportJSON)
	}
	if _, deleted, _ := e.backupKeys(); len(deleted) != 0 {
		t.Fatalf("the tripped guard let %q be marked deleted", deleted)
	}
	r = e.mustBackup(`{"filters":{` + rules + `,"deleteExcluded":true},"maxDeletePercent":100}`).Report
	current, deleted, versions = e.backupKeys()
	if !slices.Equal(current, []string{"data/a.csv"}) || !slices.Equal(deleted, []string{"data/b.tmp", "logs/x.log", "logs/y.log"}) || versions != 4 {
		t.Fatalf("with deleteExcluded: backup holds %q, deleted %q, %d versions", current, deleted, versions)
	}
	if r.ToDelete != 3 || r.Deleted != 3 || r.Excluded != 1 || r.Skipped != 0 {
		t.Fatalf("report toDelete %d deleted %d excluded %d skipped %d", r.ToDelete, r.Deleted, r.Excluded, r.Skipped)
	}
}

// A prefix rule narrows the listing itself: the source's LIST requests, counted on the wire,
// drop from one per 1,000 keys of the bucket to one per 1,000 keys under the prefix.
func TestFilterPrefixNarrowsListing(t *testing.T) {
	var bucket atomic.Value
	bucket.Store("")
	var lists atomic.Int64
	count := func(next s3.HTTPClient) s3.HTTPClient {
		return httpFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" && strings.HasPrefix(r.URL.Path, "/"+bucket.Load().(string)) {
				lists.Add(1)
			}
			return next.Do(r)
		})
	}
	e := newEnv(t, envOptions{wrapHTTP: count})
	bucket.Store(e.source)
	e.putMany(e.source, 3000, func(i int) string { return fmt.Sprintf("bulk/%05d", i) }, func(i int) []byte { return []byte{byte(i)} })
	e.putMany(e.source, 10, func(i int) string { return fmt.Sprintf("data/%02d", i) }, func(i int) []byte { return []byte{byte(i)} })

	r := e.mustBackup(`{"dryRun":true}`).Report
	unfiltered := lists.Swap(0)
	rf := e.mustBackup(`{"dryRun":true,"filters":{"include":["prefix:data/"]}}`).Report
	filtered := lists.Load()
	t.Logf("source LIST requests: %d unfiltered (%d keys listed), %d with prefix:data/ (%d keys listed)", unfiltered, r.Listed, filtered, rf.Listed)
	if r.Listed != 3010 || rf.Listed != 10 || unfiltered < 4 || filtered != 1 {
		t.Fatalf("source LIST requests: %d unfiltered (%d listed), %d filtered (%d listed); want ≥ 4 and 1", unfiltered, r.Listed, filtered, rf.Listed)
	}
}

// A malformed rule fails the run with InvalidInput naming the rule, before anything is written:
// no lock, no batch, no index, nothing in the backup; the run bucket holds the failed run's
// report alone.
func TestFilterMalformedRule(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(e.source, object{key: "a", body: "a"})
	res := e.backupRun(`{"filters":{"exclude":["glob:**/*.tmp","size>10MB"]}}`)
	if res.Succeeded() || res.Execution.Error != "InvalidInput" || !strings.Contains(res.Execution.Cause, `exclude[1] \"size>10MB\"`) && !strings.Contains(res.Execution.Cause, `exclude[1] "size>10MB"`) {
		t.Fatalf("execution %s %s: %s", res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	if keys := e.keys(e.backup); len(keys) != 0 {
		t.Fatalf("backup holds %q", keys)
	}
	runKeys := e.keys(e.run)
	if !slices.Equal(runKeys, []string{batch.RunPrefix(res.Execution.Name) + "history.json", batch.ReportKey(res.Execution.Name)}) {
		t.Fatalf("run bucket holds %q, want the failed run's history and report alone (no %s, no batches)", runKeys, runlock.Key(e.source, e.backup))
	}
}
