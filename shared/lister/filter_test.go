package lister

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/etagindex"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/filter"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/runlock"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// filterFixture fills the buckets with keys of every class, sizes, ages and tags; it returns the
// run's clock (two days after old.csv was written, seconds after the rest).
//
//	big.bin          new, 2 KiB
//	data/a.csv       new
//	data/b.csv       unchanged
//	data/c.tmp       new
//	data/gone.csv    gone from the source
//	data/kept.csv    unchanged, tagged backup=false (never read: unchanged)
//	data/secret.csv  new, tagged backup=false
//	logs/old.log     gone from the source
//	logs/x.log       changed
//	old.csv          new, written two days before the others
func filterFixture(f *s3fake.S3) time.Time {
	f.Put("src", "old.csv", []byte("old"))
	f.Tick(48 * time.Hour)
	f.Put("src", "big.bin", []byte(strings.Repeat("b", 2048)))
	f.Put("src", "data/a.csv", []byte("a"))
	f.Put("src", "data/b.csv", []byte("b"))
	f.Put("bak", "data/b.csv", []byte("b"))
	f.Put("src", "data/c.tmp", []byte("c"))
	f.Put("bak", "data/gone.csv", []byte("g"))
	f.PutTagged("src", "data/kept.csv", []byte("k"), map[string]string{"backup": "false"})
	f.Put("bak", "data/kept.csv", []byte("k"))
	f.PutTagged("src", "data/secret.csv", []byte("s"), map[string]string{"backup": "false", "team": "finance"})
	f.Put("bak", "logs/old.log", []byte("o"))
	f.Put("src", "logs/x.log", []byte("x2"))
	f.Put("bak", "logs/x.log", []byte("x1"))
	return f.Tick(time.Minute)
}

// Each kind of rule and a combination, against one fixture: the work items, the counts (which
// add up: listed = new + changed + unchanged + excluded, the counts by rule sum to excluded), the
// tags read (only for new or changed objects a tag rule could decide), and what was listed.
func TestFilters(t *testing.T) {
	tests := []struct {
		name               string
		input              string // the execution's input
		env                string // the deployment's FILTERS
		items              []string
		excluded           map[string]int64
		excludedDeletions  int64
		tagReads           int
		listedPrefixes     []string // the ListObjectsV2 prefixes of the source, in order
		listedBackup       []string
		listed, unchanged  int64
		toDelete, backupOb int64
	}{
		{name: "no filters", input: `{}`,
			items:          []string{"copy new big.bin", "copy new data/a.csv", "copy new data/c.tmp", "copy new data/secret.csv", "copy changed logs/x.log", "copy new old.csv", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{},
			listedPrefixes: []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 2, toDelete: 2, backupOb: 5},
		{name: "prefix include lists only the prefix", input: `{"filters":{"include":["prefix:data/"]}}`,
			items:          []string{"copy new data/a.csv", "copy new data/c.tmp", "copy new data/secret.csv", "delete deleted data/gone.csv"},
			excluded:       map[string]int64{},
			listedPrefixes: []string{"data/"}, listedBackup: []string{"data/"}, listed: 5, unchanged: 2, toDelete: 1, backupOb: 3},
		{name: "two prefixes, listed one after the other", input: `{"filters":{"include":["prefix:logs/","glob:data/*.csv"]}}`,
			items:          []string{"copy new data/a.csv", "copy new data/secret.csv", "copy changed logs/x.log", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{filter.NotIncluded: 1}, // data/c.tmp: listed under data/, not a .csv
			listedPrefixes: []string{"data/", "logs/"}, listedBackup: []string{"data/", "logs/"}, listed: 6, unchanged: 2, toDelete: 2, backupOb: 5},
		{name: "glob exclude", input: `{"filters":{"exclude":["glob:**/*.tmp"]}}`,
			items:          []string{"copy new big.bin", "copy new data/a.csv", "copy new data/secret.csv", "copy changed logs/x.log", "copy new old.csv", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{"glob:**/*.tmp": 1},
			listedPrefixes: []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 2, toDelete: 2, backupOb: 5},
		{name: "key-only exclude leaves the gone keys it matches alone", input: `{"filters":{"exclude":["glob:logs/**"]}}`,
			items:             []string{"copy new big.bin", "copy new data/a.csv", "copy new data/c.tmp", "copy new data/secret.csv", "copy new old.csv", "delete deleted data/gone.csv"},
			excluded:          map[string]int64{"glob:logs/**": 1},
			excludedDeletions: 1,
			listedPrefixes:    []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 2, toDelete: 1, backupOb: 5},
		{name: "size exclude", input: `{"filters":{"exclude":["size>1KiB"]}}`,
			items:          []string{"copy new data/a.csv", "copy new data/c.tmp", "copy new data/secret.csv", "copy changed logs/x.log", "copy new old.csv", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{"size>1KiB": 1},
			listedPrefixes: []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 2, toDelete: 2, backupOb: 5},
		{name: "age exclude, by the run's clock", input: `{"filters":{"exclude":["age>1d"]}}`,
			items:          []string{"copy new big.bin", "copy new data/a.csv", "copy new data/c.tmp", "copy new data/secret.csv", "copy changed logs/x.log", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{"age>1d": 1},
			listedPrefixes: []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 2, toDelete: 2, backupOb: 5},
		{name: "tag exclude reads tags of new and changed objects only", input: `{"filters":{"exclude":["tag:backup=false"]}}`,
			items:          []string{"copy new big.bin", "copy new data/a.csv", "copy new data/c.tmp", "copy changed logs/x.log", "copy new old.csv", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{"tag:backup=false": 1},
			tagReads:       6, // big.bin, a.csv, c.tmp, secret.csv, x.log, old.csv; never b.csv or kept.csv
			listedPrefixes: []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 2, toDelete: 2, backupOb: 5},
		{name: "a tag rule after a key rule reads no tags for what the key rule decides", input: `{"filters":{"include":["prefix:data/"],"exclude":["glob:*.tmp",["prefix:data/s","tag:team=finance"]]}}`,
			items:          []string{"copy new data/a.csv", "delete deleted data/gone.csv"},
			excluded:       map[string]int64{"glob:*.tmp": 1, "prefix:data/s & tag:team=finance": 1},
			tagReads:       1, // data/secret.csv alone
			listedPrefixes: []string{"data/"}, listedBackup: []string{"data/"}, listed: 5, unchanged: 2, toDelete: 1, backupOb: 3},
		{name: "combination with deleteExcluded", input: `{"filters":{"include":["prefix:data/","prefix:logs/"],"exclude":["glob:**/*.tmp","glob:**/x.log","tag:backup=false"],"deleteExcluded":true}}`,
			// data/c.tmp was never backed up: nothing to mark; logs/x.log is; old.csv and big.bin
			// are not under an include: unlisted in the source, absent from the backup.
			items:          []string{"copy new data/a.csv", "delete deleted data/gone.csv", "delete deleted logs/old.log", "delete excluded logs/x.log"},
			excluded:       map[string]int64{"glob:**/*.tmp": 1, "glob:**/x.log": 1, "tag:backup=false": 1},
			tagReads:       2, // a.csv, secret.csv
			listedPrefixes: []string{"data/", "logs/"}, listedBackup: []string{""}, listed: 6, unchanged: 2, toDelete: 3, backupOb: 5},
		{name: "deleteExcluded marks an excluded unchanged object deleted", input: `{"filters":{"exclude":["prefix:data/b"],"deleteExcluded":true}}`,
			items:          []string{"copy new big.bin", "copy new data/a.csv", "copy new data/c.tmp", "copy new data/secret.csv", "copy changed logs/x.log", "copy new old.csv", "delete excluded data/b.csv", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{"prefix:data/b": 1},
			listedPrefixes: []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 1, toDelete: 3, backupOb: 5},
		{name: "the deployment's filters", input: `{}`, env: `{"include":["prefix:logs/"]}`,
			items:          []string{"copy changed logs/x.log", "delete deleted logs/old.log"},
			excluded:       map[string]int64{},
			listedPrefixes: []string{"logs/"}, listedBackup: []string{"logs/"}, listed: 1, toDelete: 1, backupOb: 2},
		{name: "the execution's {} replaces the deployment's filters", input: `{"filters":{}}`, env: `{"include":["prefix:logs/"]}`,
			items:          []string{"copy new big.bin", "copy new data/a.csv", "copy new data/c.tmp", "copy new data/secret.csv", "copy changed logs/x.log", "copy new old.csv", "delete deleted data/gone.csv", "delete deleted logs/old.log"},
			excluded:       map[string]int64{},
			listedPrefixes: []string{""}, listedBackup: []string{""}, listed: 8, unchanged: 2, toDelete: 2, backupOb: 5},
		{name: "nothing can be included", input: `{"prefix":"logs/","filters":{"include":["prefix:data/"]}}`,
			excluded: map[string]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, h := setup(true)
			now := filterFixture(f)
			h.Now = func() time.Time { return now }
			if tt.env != "" {
				flt, err := filter.FromEnv(envconf.Map(map[string]string{filter.EnvVar: tt.env}))
				if err != nil {
					t.Fatal(err)
				}
				h.Config.Filter = flt
			}
			calls := len(f.Calls())
			resp, _ := listAll(t, h, tt.input)
			if got := describe(items(t, f, manifest(t, f, resp))); !reflect.DeepEqual(got, tt.items) {
				t.Errorf("items\n got %q\nwant %q", got, tt.items)
			}
			c := resp.Cursor.Totals
			excluded := int64(0)
			for _, n := range tt.excluded {
				excluded += n
			}
			if c.Excluded != excluded || !maps.Equal(c.ExcludedByRule, tt.excluded) || c.ExcludedDeletions != tt.excludedDeletions ||
				c.TagReads != int64(tt.tagReads) || c.Listed != tt.listed || c.Unchanged != tt.unchanged || c.ToDelete != tt.toDelete || c.BackupObjects != tt.backupOb {
				t.Errorf("totals %+v", c)
			}
			if c.Listed != c.New+c.Changed+c.Unchanged+c.Excluded {
				t.Errorf("listed %d ≠ new %d + changed %d + unchanged %d + excluded %d", c.Listed, c.New, c.Changed, c.Unchanged, c.Excluded)
			}
			var srcLists, bakLists, tagReads []string
			for _, call := range f.Calls()[calls:] {
				op, where, _ := strings.Cut(call, " ")
				switch {
				case op == "ListObjectsV2" && strings.HasPrefix(where, "src/"):
					srcLists = append(srcLists, strings.TrimPrefix(where, "src/"))
				case op == "ListObjectsV2" && strings.HasPrefix(where, "bak/"):
					bakLists = append(bakLists, strings.TrimPrefix(where, "bak/"))
				case op == "GetObjectTagging":
					tagReads = append(tagReads, where)
				}
			}
			if len(tagReads) != tt.tagReads || slices.Contains(tagReads, "src/data/b.csv") || slices.Contains(tagReads, "src/data/kept.csv") {
				t.Errorf("tags read: %q, want %d, none of an unchanged object", tagReads, tt.tagReads)
			}
			if !slices.Equal(srcLists, tt.listedPrefixes) || !slices.Equal(bakLists, tt.listedBackup) {
				t.Errorf("listed source %q, backup %q; want %q, %q", srcLists, bakLists, tt.listedPrefixes, tt.listedBackup)
			}
		})
	}
}

// One clock for the whole run: an object's age is judged against the first invocation's clock,
// kept in the cursor, however long the listing takes.
func TestFilterClockAndResume(t *testing.T) {
	f, h := setup(true)
	f.PageSize = 1
	for _, k := range []string{"a/1", "a/2", "b/1", "c/1", "c/2", "d/1"} {
		f.Put("src", k, []byte(k))
	}
	f.Put("bak", "c/0", []byte("gone"))
	clock := f.Tick(time.Minute)
	// Five minutes pass at each look at the clock: the first invocation takes the run's clock
	// minutes after the objects were written, the later ones more than half an hour after.
	h.Now = func() time.Time { t := clock; clock = clock.Add(5 * time.Minute); return t }
	h.Config.MaxKeysPerInvocation = 1
	resp, invocations := listAll(t, h, `{"filters":{"include":["prefix:a/","prefix:c/"],"exclude":["age>30m"]}}`)
	got := describe(items(t, f, manifest(t, f, resp)))
	if want := []string{"copy new a/1", "copy new a/2", "copy new c/1", "copy new c/2", "delete deleted c/0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("items %q, want %q", got, want)
	}
	if c := resp.Cursor.Totals; invocations < 5 || c.Listed != 4 || c.Excluded != 0 || c.ToDelete != 1 {
		t.Errorf("%d invocations, totals %+v", invocations, c)
	}
	for _, call := range f.Calls() {
		if strings.HasPrefix(call, "ListObjectsV2 src/b") || strings.HasPrefix(call, "ListObjectsV2 src/d") || call == "ListObjectsV2 src/" {
			t.Errorf("listed outside the include prefixes: %s", call)
		}
	}
}

// A malformed rule in the execution's filters is an InvalidInput naming it, before anything is
// written: no lock, no batch, no index.
func TestMalformedFilterWritesNothing(t *testing.T) {
	for _, in := range []struct{ input, want string }{
		{`{"filters":{"exclude":["size>10MB"]}}`, `exclude[0] "size>10MB": size "10MB" is not a byte count`},
		{`{"filters":{"include":["glob:logs/[a-z.log"]}}`, `include[0] "glob:logs/[a-z.log": glob "logs/[a-z.log" is malformed`},
		{`{"filters":{"exclude":[["prefix:a/","tag:"]]}}`, `exclude[0][1] "tag:": empty tag key`},
	} {
		f, h := setup(true)
		f.Put("src", "k", []byte("k"))
		payload, _ := json.Marshal(Request{Execution: "exec", Input: json.RawMessage(in.input)})
		_, err := lambdafn.Handler(h.Handle, nil).Invoke(context.Background(), payload)
		if err == nil || reflect.TypeOf(err).Elem().Name() != "InvalidInput" || !strings.Contains(err.Error(), in.want) {
			t.Errorf("%s: error %T %v; want InvalidInput mentioning %q", in.input, err, err, in.want)
		}
		for _, call := range f.Calls() {
			if !strings.HasPrefix(call, "Put") {
				continue
			}
			if strings.Contains(call, runlock.Key("src", "bak")) {
				t.Errorf("%s: the lock was taken", in.input)
			} else {
				t.Errorf("%s: written: %s", in.input, call)
			}
		}
	}
}

// FILTERS is read and checked with the rest of the configuration; a malformed one names the
// variable and the rule.
func TestConfigFilters(t *testing.T) {
	base := map[string]string{"SOURCE_BUCKET": "s", "BACKUP_BUCKET": "b", "RUN_BUCKET": "r"}
	with := func(v string) envconf.Lookup {
		m := maps.Clone(base)
		m[filter.EnvVar] = v
		return envconf.Map(m)
	}
	c, err := ConfigFromEnv(with(`{"include":["prefix:data/"],"deleteExcluded":true}`))
	if err != nil || !c.Filter.DeleteExcluded() || !slices.Equal(c.Filter.ListPrefixes(""), []string{"data/"}) {
		t.Fatalf("FILTERS: %+v, %v", c.Filter, err)
	}
	if c, err := ConfigFromEnv(envconf.Map(base)); err != nil || c.Filter != nil {
		t.Fatalf("no FILTERS: %+v, %v", c.Filter, err)
	}
	_, err = ConfigFromEnv(with(`{"exclude":["age>3y"]}`))
	var ce *fault.ConfigError
	var ii *fault.InvalidInput
	if !errors.As(err, &ce) || !errors.As(err, &ii) || !strings.Contains(err.Error(), `FILTERS: filters: exclude[0] "age>3y"`) {
		t.Fatalf("malformed FILTERS: %T %v", err, err)
	}
}

// A tag read that fails (no s3:GetObjectTagging) fails the invocation, naming the object and
// the permission; an object deleted since it was listed is judged without tags.
func TestTagReadErrors(t *testing.T) {
	f, h := setup(true)
	f.PutTagged("src", "a", []byte("a"), map[string]string{"backup": "false"})
	f.Put("src", "b", []byte("b"))
	f.Fail = func(op, _, key string) error {
		switch {
		case op == "GetObjectTagging" && key == "a":
			return s3fake.APIError("AccessDenied")
		case op == "GetObjectTagging" && key == "b":
			return s3fake.APIError("NoSuchKey")
		}
		return nil
	}
	_, err := h.Handle(context.Background(), Request{Execution: "exec", Input: json.RawMessage(`{"filters":{"exclude":["tag:backup=false"]}}`)})
	if !fault.IsCode(err, "AccessDenied") || !strings.Contains(err.Error(), "s3:GetObjectTagging") || !strings.Contains(err.Error(), "s3://src/a") {
		t.Fatalf("err = %v", err)
	}
	f.Fail = func(op, _, key string) error {
		if op == "GetObjectTagging" && key == "b" {
			return s3fake.APIError("NoSuchKey")
		}
		return nil
	}
	f.DeleteObject(context.Background(), deleteInput("run", runlock.Key("src", "bak")))
	resp, _ := listAll(t, h, `{"filters":{"exclude":["tag:backup=false"]}}`)
	if got := describe(items(t, f, manifest(t, f, resp))); !reflect.DeepEqual(got, []string{"copy new b"}) {
		t.Fatalf("items %q", got)
	}
}

// The ETag index of the keys a filter keeps out of the listing is carried, not dropped: with an
// SSE-KMS backup (whose ETags never equal the source's), a filtered run and then an unfiltered
// one copy nothing that did not change. Without the carry, the unfiltered run would copy every
// object the filtered run did not list again.
func TestFilterCarriesIndex(t *testing.T) {
	f, h := setup(true)
	f.SetEncryption("bak", types.ServerSideEncryptionAwsKms)
	for _, k := range []string{"data/1", "data/2", "logs/1", "logs/2", "z"} {
		f.Put("src", k, []byte(k))
	}
	run := func(execution, input string) []string {
		t.Helper()
		var cur *Cursor
		for {
			resp, err := h.Handle(context.Background(), Request{Execution: execution, Input: json.RawMessage(input), Cursor: cur})
			if err != nil {
				t.Fatal(err)
			}
			if !resp.Done {
				cur = &resp.Cursor
				continue
			}
			// Act as the copier: copy each item and record the pair of ETags in the index.
			var copied []string
			for seq := range resp.Cursor.Position.CopyBatches {
				key := batch.Key(execution, seq)
				var entries []etagindex.Entry
				_, err := batch.Read(strings.NewReader(string(read(t, f, key))), func(it batch.Item) error {
					etag := f.Put("bak", it.Key, []byte(it.Key))
					entries = append(entries, etagindex.Entry{Key: it.Key, Source: it.ETag, Backup: etag, Size: it.Size})
					copied = append(copied, it.Key)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := etagindex.WriteCopied(context.Background(), f, "run", execution, key, entries); err != nil {
					t.Fatal(err)
				}
			}
			f.DeleteObject(context.Background(), deleteInput("run", runlock.Key("src", "bak")))
			return copied
		}
	}
	if got := run("e1", `{}`); len(got) != 5 {
		t.Fatalf("first run copied %q", got)
	}
	if got := run("e2", `{"filters":{"include":["prefix:data/"]}}`); len(got) != 0 {
		t.Fatalf("filtered run copied %q", got)
	}
	if got := run("e3", `{"filters":{"exclude":["prefix:logs/"]}}`); len(got) != 0 {
		t.Fatalf("run with an exclusion copied %q", got)
	}
	if got := run("e4", `{}`); len(got) != 0 {
		t.Fatalf("unfiltered run after the filtered ones copied %q: the index of the keys the filters left out was dropped", got)
	}
}
