package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func mustParse(t *testing.T, s string) *Filter {
	t.Helper()
	f, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return f
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"unknown field", `{"includes":["prefix:a/"]}`, `filters: json: unknown field "includes" (fields: include, exclude, deleteExcluded)`},
		{"not an object", `["prefix:a/"]`, `filters: json: cannot unmarshal array`},
		{"trailing data", `{} {}`, `filters: trailing data after the JSON value`},
		{"rule of a number", `{"include":[3]}`, `a rule is a string or an array of strings, got 3`},
		{"deleteExcluded not a bool", `{"deleteExcluded":"yes"}`, `deleteExcluded`},
		{"empty rule array", `{"exclude":[[]]}`, `filters: exclude[0] is an empty rule`},
		{"empty rule string", `{"exclude":[""]}`, `filters: exclude[0] "": empty rule`},
		{"no kind", `{"exclude":["*.tmp"]}`, `filters: exclude[0] "*.tmp": unknown rule: write prefix:P, glob:PATTERN, size<N (or <=, >, >=), age>D (or <, <=, >=), tag:K=V or tag:K`},
		{"unknown kind", `{"include":["suffix:.gz"]}`, `filters: include[0] "suffix:.gz": unknown rule`},
		{"empty prefix", `{"include":["prefix:"]}`, `filters: include[0] "prefix:": empty prefix: it would match every key (to back up everything, leave include empty)`},
		{"prefix too long", `{"include":["prefix:` + strings.Repeat("k", 1025) + `"]}`, `prefix of 1025 bytes is longer than an S3 key (1024)`},
		{"empty glob", `{"exclude":["glob:"]}`, `filters: exclude[0] "glob:": empty glob`},
		{"unclosed class", `{"exclude":["glob:logs/[a-z.log"]}`, `filters: exclude[0] "glob:logs/[a-z.log": glob "logs/[a-z.log" is malformed (an unclosed [ or {, or a trailing \)`},
		{"unclosed brace", `{"exclude":["glob:{a,b"]}`, `glob "{a,b" is malformed`},
		{"trailing backslash", `{"exclude":["glob:a\\"]}`, `glob "a\\" is malformed`},
		{"size without comparison", `{"exclude":["size10MiB"]}`, `filters: exclude[0] "size10MiB": missing comparison: write <, <=, > or >= followed by a value`},
		{"size equals", `{"exclude":["size=0"]}`, `missing comparison`},
		{"size decimal unit", `{"exclude":["size>10MB"]}`, `filters: exclude[0] "size>10MB": size "10MB" is not a byte count (a whole number, optionally with KiB, MiB, GiB or TiB)`},
		{"size negative", `{"exclude":["size>-1"]}`, `size "-1" is not a byte count`},
		{"size empty", `{"exclude":["size>"]}`, `size "" is not a byte count`},
		{"size fraction", `{"exclude":["size<1.5GiB"]}`, `size "1.5GiB" is not a byte count`},
		{"size overflow", `{"exclude":["size<99999999999TiB"]}`, `size "99999999999TiB" is not a byte count`},
		{"age without comparison", `{"exclude":["age30d"]}`, `missing comparison`},
		{"age empty", `{"exclude":["age>"]}`, `filters: exclude[0] "age>": empty age: write a duration such as 30d, 12h or 1d12h`},
		{"age no unit", `{"exclude":["age>30"]}`, `age "30" is not a duration (whole numbers with units s, m, h, d, w, such as 30d or 1d12h)`},
		{"age unknown unit", `{"exclude":["age>3y"]}`, `age "3y" has an unknown unit "y" (units: s, m, h, d, w)`},
		{"age fraction", `{"exclude":["age>1.5d"]}`, `age "1.5d" has an unknown unit "."`},
		{"age negative", `{"exclude":["age>-1d"]}`, `age "-1d" is not a duration`},
		{"age too long", `{"exclude":["age>99999999999999w"]}`, `age "99999999999999w" is longer than 200 years`},
		{"age sum too long", `{"exclude":["age>10000w10000w"]}`, `is longer than 200 years`},
		{"tag empty key", `{"exclude":["tag:=x"]}`, `filters: exclude[0] "tag:=x": empty tag key: write tag:KEY=VALUE or tag:KEY`},
		{"tag nothing", `{"exclude":["tag:"]}`, `empty tag key`},
		{"tag key too long", `{"exclude":["tag:` + strings.Repeat("é", 129) + `"]}`, `tag key longer than S3's 128 characters`},
		{"tag value too long", `{"exclude":["tag:k=` + strings.Repeat("v", 257) + `"]}`, `tag value longer than S3's 256 characters`},
		{"bad condition in an AND rule", `{"include":["prefix:a/",["glob:**/*.csv","size<1XB"]]}`, `filters: include[1][1] "size<1XB": size "1XB" is not a byte count`},
		{"too many rules", `{"exclude":[` + strings.Repeat(`"prefix:a",`, 100) + `"prefix:b"]}`, `filters: 101 rules, at most 100`},
		{"too large", `{"exclude":["prefix:` + strings.Repeat("a", DefaultMaxBytes) + `"]}`, `bytes are larger than 16384`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.in))
			var invalid *fault.InvalidInput
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%s) = %v, %v (%T); want *fault.InvalidInput containing %q", clip(tt.in), f, err, err, tt.want)
			}
		})
	}
}

func TestCompileInvalidUTF8(t *testing.T) {
	// JSON decoding replaces invalid UTF-8; a Config built in Go is checked too.
	_, err := Compile(Config{Include: []Rule{{"prefix:\xff"}}})
	var invalid *fault.InvalidInput
	if !errors.As(err, &invalid) || err.Error() != `filters: include[0] "prefix:\xff": not valid UTF-8` {
		t.Fatalf("Compile = %v (%T)", err, err)
	}
}

func TestParseNone(t *testing.T) {
	for _, in := range []string{``, `  `, `null`} {
		f, err := Parse([]byte(in))
		if err != nil || f != nil {
			t.Fatalf("Parse(%q) = %v, %v; want nil, nil", in, f, err)
		}
		if d := f.Match("any/key", 1, now, now); d.Verdict != Include || !f.Empty() || f.NeedsTags() || f.DeleteExcluded() {
			t.Fatalf("nil filter: %+v", d)
		}
		if got := f.ListPrefixes("p/"); !slices.Equal(got, []string{"p/"}) {
			t.Fatalf("nil filter lists %q", got)
		}
	}
}

type obj struct {
	key  string
	size int64
	age  time.Duration
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		filters string
		obj     obj
		want    Verdict
		rule    string
	}{
		// prefix
		{"prefix include", `{"include":["prefix:logs/"]}`, obj{key: "logs/a.gz"}, Include, ""},
		{"prefix include, other key", `{"include":["prefix:logs/"]}`, obj{key: "data/a.gz"}, Exclude, NotIncluded},
		{"prefix is a string prefix", `{"include":["prefix:logs"]}`, obj{key: "logs2/a"}, Include, ""},
		{"trailing slash is literal", `{"include":["prefix:logs/"]}`, obj{key: "logs"}, Exclude, NotIncluded},
		{"prefix matches the folder marker", `{"include":["prefix:logs/"]}`, obj{key: "logs/"}, Include, ""},
		{"prefix exclude", `{"exclude":["prefix:tmp/"]}`, obj{key: "tmp/x"}, Exclude, "prefix:tmp/"},
		{"prefix exclude, other key", `{"exclude":["prefix:tmp/"]}`, obj{key: "tmpx"}, Include, ""},
		{"UTF-8 prefix", `{"include":["prefix:données/été/"]}`, obj{key: "données/été/çà.txt"}, Include, ""},
		{"UTF-8 prefix, other accent", `{"include":["prefix:données/été/"]}`, obj{key: "données/ete/a"}, Exclude, NotIncluded},
		// glob
		{"glob any depth", `{"exclude":["glob:**/*.tmp"]}`, obj{key: "a/b/c.tmp"}, Exclude, "glob:**/*.tmp"},
		{"glob ** matches top level", `{"exclude":["glob:**/*.tmp"]}`, obj{key: "c.tmp"}, Exclude, "glob:**/*.tmp"},
		{"glob other extension", `{"exclude":["glob:**/*.tmp"]}`, obj{key: "a/c.tmpx"}, Include, ""},
		{"name glob at depth", `{"include":["glob:*.parquet"]}`, obj{key: "warehouse/2026/a.parquet"}, Include, ""},
		{"name glob at top", `{"include":["glob:*.parquet"]}`, obj{key: "a.parquet"}, Include, ""},
		{"name glob, other name", `{"include":["glob:*.parquet"]}`, obj{key: "a.parquet/readme"}, Exclude, NotIncluded},
		{"name glob, folder marker", `{"include":["glob:*.parquet"]}`, obj{key: "t.parquet/"}, Include, ""},
		{"anchored glob", `{"include":["glob:logs/*.gz"]}`, obj{key: "logs/a.gz"}, Include, ""},
		{"anchored glob, deeper", `{"include":["glob:logs/*.gz"]}`, obj{key: "logs/x/a.gz"}, Exclude, NotIncluded},
		{"anchored glob, not at start", `{"include":["glob:logs/*.gz"]}`, obj{key: "x/logs/a.gz"}, Exclude, NotIncluded},
		{"glob logs/**", `{"exclude":["glob:logs/**"]}`, obj{key: "logs/a/b/c"}, Exclude, "glob:logs/**"},
		{"glob logs/** other", `{"exclude":["glob:logs/**"]}`, obj{key: "logsx/a"}, Include, ""},
		{"glob trailing slash means under", `{"exclude":["glob:tmp/"]}`, obj{key: "tmp/a/b"}, Exclude, "glob:tmp/"},
		{"glob ** matches everything", `{"exclude":["glob:**"]}`, obj{key: "a/b/c"}, Exclude, "glob:**"},
		{"glob alternatives", `{"include":["glob:{raw,clean}/**/*.csv"]}`, obj{key: "clean/2026/x.csv"}, Include, ""},
		{"glob class", `{"include":["glob:day[0-9]/*"]}`, obj{key: "day7/x"}, Include, ""},
		{"glob escaped star", `{"include":["glob:a\\*b"]}`, obj{key: "a*b"}, Include, ""},
		{"glob escaped star, literal only", `{"include":["glob:a\\*b"]}`, obj{key: "axb"}, Exclude, NotIncluded},
		{"UTF-8 glob ?", `{"include":["glob:photos/?.jpg"]}`, obj{key: "photos/é.jpg"}, Include, ""},
		{"UTF-8 name glob", `{"exclude":["glob:*.tmp"]}`, obj{key: "日本/ファイル.tmp"}, Exclude, "glob:*.tmp"},
		// size
		{"size below", `{"exclude":["size<10MiB"]}`, obj{key: "k", size: 10<<20 - 1}, Exclude, "size<10MiB"},
		{"size at bound, <", `{"exclude":["size<10MiB"]}`, obj{key: "k", size: 10 << 20}, Include, ""},
		{"size at bound, <=", `{"exclude":["size<=10MiB"]}`, obj{key: "k", size: 10 << 20}, Exclude, "size<=10MiB"},
		{"size above, >", `{"exclude":["size>1GiB"]}`, obj{key: "k", size: 1<<30 + 1}, Exclude, "size>1GiB"},
		{"size at bound, >", `{"exclude":["size>1GiB"]}`, obj{key: "k", size: 1 << 30}, Include, ""},
		{"size at bound, >=", `{"exclude":["size >= 1GiB"]}`, obj{key: "k", size: 1 << 30}, Exclude, "size >= 1GiB"},
		{"size in bytes", `{"include":["size<1"]}`, obj{key: "empty", size: 0}, Include, ""},
		{"size range by two excludes", `{"exclude":["size<1KiB","size>1MiB"]}`, obj{key: "k", size: 4096}, Include, ""},
		{"size range, too small", `{"exclude":["size<1KiB","size>1MiB"]}`, obj{key: "k", size: 10}, Exclude, "size<1KiB"},
		{"size range by one include", `{"include":[["size>=1KiB","size<=1MiB"]]}`, obj{key: "k", size: 2 << 20}, Exclude, NotIncluded},
		// age
		{"older than", `{"exclude":["age>30d"]}`, obj{key: "k", age: 31 * 24 * time.Hour}, Exclude, "age>30d"},
		{"exactly 30d, >", `{"exclude":["age>30d"]}`, obj{key: "k", age: 30 * 24 * time.Hour}, Include, ""},
		{"exactly 30d, >=", `{"exclude":["age>=30d"]}`, obj{key: "k", age: 30 * 24 * time.Hour}, Exclude, "age>=30d"},
		{"newer than", `{"include":["age<12h"]}`, obj{key: "k", age: time.Hour}, Include, ""},
		{"not newer", `{"include":["age<12h"]}`, obj{key: "k", age: 13 * time.Hour}, Exclude, NotIncluded},
		{"combined units", `{"include":["age<=1d12h"]}`, obj{key: "k", age: 36 * time.Hour}, Include, ""},
		{"modified in the future", `{"exclude":["age>1h"]}`, obj{key: "k", age: -time.Hour}, Include, ""},
		// combinations
		{"exclude wins over include", `{"include":["prefix:data/"],"exclude":["glob:**/*.tmp"]}`, obj{key: "data/x.tmp"}, Exclude, "glob:**/*.tmp"},
		{"include and not excluded", `{"include":["prefix:data/"],"exclude":["glob:**/*.tmp"]}`, obj{key: "data/x.csv"}, Include, ""},
		{"any include", `{"include":["prefix:a/","prefix:b/"]}`, obj{key: "b/x"}, Include, ""},
		{"first matching exclude is named", `{"exclude":["size>1","glob:*.tmp","prefix:x"]}`, obj{key: "x.tmp", size: 5}, Exclude, "size>1"},
		{"excluded by a later rule", `{"exclude":["size>100","glob:*.tmp"]}`, obj{key: "x.tmp", size: 5}, Exclude, "glob:*.tmp"},
		{"AND exclude, all hold", `{"exclude":[["glob:logs/**","age>30d"]]}`, obj{key: "logs/a", age: 40 * 24 * time.Hour}, Exclude, "glob:logs/** & age>30d"},
		{"AND exclude, one fails", `{"exclude":[["glob:logs/**","age>30d"]]}`, obj{key: "logs/a", age: 24 * time.Hour}, Include, ""},
		{"AND include with prefix and size", `{"include":[["prefix:media/","size<100MiB"]]}`, obj{key: "media/a.mp4", size: 200 << 20}, Exclude, NotIncluded},
		{"contradictory AND include", `{"include":[["prefix:a/","prefix:b/"]]}`, obj{key: "a/x"}, Exclude, NotIncluded},
		{"exclusion before a tag rule needs no tags", `{"exclude":["tag:backup=false","prefix:tmp/"]}`, obj{key: "tmp/x"}, Exclude, "prefix:tmp/"},
		{"include fails before a tag rule", `{"include":["prefix:a/"],"exclude":["tag:backup=false"]}`, obj{key: "b/x"}, Exclude, NotIncluded},
		{"tag rule needs tags", `{"include":["prefix:a/"],"exclude":["tag:backup=false"]}`, obj{key: "a/x"}, NeedTags, ""},
		{"AND with a tag, key fails: no tags needed", `{"exclude":[["prefix:a/","tag:backup=false"]]}`, obj{key: "b/x"}, Include, ""},
		{"tag include needs tags", `{"include":["tag:team=finance"]}`, obj{key: "x"}, NeedTags, ""},
		{"tag include, another include holds", `{"include":["tag:team=finance","prefix:x"]}`, obj{key: "x"}, Include, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.filters)
			d := f.Match(tt.obj.key, tt.obj.size, now.Add(-tt.obj.age), now)
			if d.Verdict != tt.want || d.Rule != tt.rule {
				t.Fatalf("Match(%q) = %v %q, want %v %q", tt.obj.key, d.Verdict, d.Rule, tt.want, tt.rule)
			}
			if d.Included() != (tt.want == Include) || d.Excluded() != (tt.want == Exclude) || d.NeedTags() != (tt.want == NeedTags) {
				t.Fatalf("predicates disagree with %v", d.Verdict)
			}
		})
	}
}

func TestMatchTags(t *testing.T) {
	tests := []struct {
		name    string
		filters string
		key     string
		tags    map[string]string
		want    Verdict
		rule    string
	}{
		{"key=value excludes", `{"exclude":["tag:backup=false"]}`, "k", map[string]string{"backup": "false"}, Exclude, "tag:backup=false"},
		{"other value", `{"exclude":["tag:backup=false"]}`, "k", map[string]string{"backup": "true"}, Include, ""},
		{"value is case-sensitive", `{"exclude":["tag:backup=false"]}`, "k", map[string]string{"backup": "False"}, Include, ""},
		{"key is case-sensitive", `{"exclude":["tag:backup=false"]}`, "k", map[string]string{"Backup": "false"}, Include, ""},
		{"no tags", `{"exclude":["tag:backup=false"]}`, "k", nil, Include, ""},
		{"key present", `{"include":["tag:team"]}`, "k", map[string]string{"team": "ops"}, Include, ""},
		{"key present, empty value", `{"include":["tag:team"]}`, "k", map[string]string{"team": ""}, Include, ""},
		{"key absent", `{"include":["tag:team"]}`, "k", map[string]string{"owner": "x"}, Exclude, NotIncluded},
		{"empty value wanted", `{"include":["tag:team="]}`, "k", map[string]string{"team": "ops"}, Exclude, NotIncluded},
		{"empty value present", `{"include":["tag:team="]}`, "k", map[string]string{"team": ""}, Include, ""},
		{"value with =", `{"include":["tag:expr=a=b"]}`, "k", map[string]string{"expr": "a=b"}, Include, ""},
		{"UTF-8 tag", `{"include":["tag:équipe=finances"]}`, "k", map[string]string{"équipe": "finances"}, Include, ""},
		{"include by tag, excluded by tag", `{"include":["tag:team=finance"],"exclude":["tag:backup=false"]}`, "k", map[string]string{"team": "finance", "backup": "false"}, Exclude, "tag:backup=false"},
		{"include by tag", `{"include":["tag:team=finance"],"exclude":["tag:backup=false"]}`, "k", map[string]string{"team": "finance"}, Include, ""},
		{"AND of key and tag", `{"exclude":[["prefix:a/","tag:backup=false"]]}`, "a/x", map[string]string{"backup": "false"}, Exclude, "prefix:a/ & tag:backup=false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.filters)
			if !f.NeedsTags() {
				t.Fatal("NeedsTags = false with a tag rule")
			}
			d := f.Match(tt.key, 1, now, now)
			if d.Verdict != NeedTags {
				t.Fatalf("Match = %v, want NeedTags", d.Verdict)
			}
			d = f.MatchTags(d, tt.tags)
			if d.Verdict != tt.want || d.Rule != tt.rule {
				t.Fatalf("MatchTags = %v %q, want %v %q", d.Verdict, d.Rule, tt.want, tt.rule)
			}
		})
	}
	// A decision that needs no tags is returned as it is.
	f := mustParse(t, `{"exclude":["prefix:a/","tag:x"]}`)
	d := f.Match("a/b", 1, now, now)
	if got := f.MatchTags(d, map[string]string{}); got.Verdict != Exclude || got.Rule != "prefix:a/" {
		t.Fatalf("MatchTags of a decided Exclude = %+v", got)
	}
	// The size and age of the listing still count once the tags are known.
	f = mustParse(t, `{"exclude":[["tag:tier=cold","size>1KiB"]],"include":[["tag:team","age<1d"]]}`)
	d = f.Match("k", 10, now.Add(-time.Hour), now)
	if got := f.MatchTags(d, map[string]string{"tier": "cold", "team": "a"}); got.Verdict != Include {
		t.Fatalf("small object: %+v, want include", got)
	}
	d = f.Match("k", 1<<20, now.Add(-time.Hour), now)
	if got := f.MatchTags(d, map[string]string{"tier": "cold", "team": "a"}); got.Verdict != Exclude || got.Rule != "tag:tier=cold & size>1KiB" {
		t.Fatalf("big object: %+v, want excluded by the tier rule", got)
	}
}

func TestTags(t *testing.T) {
	got := Tags([]types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("b"), Value: aws.String("")}})
	if len(got) != 2 || got["a"] != "1" || got["b"] != "" {
		t.Fatalf("Tags = %v", got)
	}
}

func TestMatchKey(t *testing.T) {
	tests := []struct {
		name, filters, key string
		want               Verdict
		rule               string
	}{
		{"no filters: deleted as usual", `{}`, "a", Include, ""},
		{"outside every include: excluded", `{"include":["prefix:data/"]}`, "logs/a", Exclude, NotIncluded},
		{"inside an include: deleted", `{"include":["prefix:data/"]}`, "data/a", Include, ""},
		{"key exclude: excluded", `{"exclude":["glob:**/*.tmp"]}`, "a/b.tmp", Exclude, "glob:**/*.tmp"},
		{"size exclude cannot be judged: deleted", `{"exclude":["size>1GiB"]}`, "big.iso", Include, ""},
		{"age exclude cannot be judged: deleted", `{"exclude":["age>30d"]}`, "old", Include, ""},
		{"tag exclude cannot be judged: deleted", `{"exclude":["tag:backup=false"]}`, "x", Include, ""},
		{"AND exclude with a size: deleted", `{"exclude":[["prefix:logs/","size>1MiB"]]}`, "logs/a", Include, ""},
		{"include with a size, key outside: excluded", `{"include":[["prefix:media/","size<1GiB"]]}`, "docs/a", Exclude, NotIncluded},
		{"include with a size, key inside: deleted", `{"include":[["prefix:media/","size<1GiB"]]}`, "media/a", Include, ""},
		{"include by tag only: deleted", `{"include":["tag:team=finance"]}`, "x", Include, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustParse(t, tt.filters).MatchKey(tt.key)
			if d.Verdict != tt.want || d.Rule != tt.rule {
				t.Fatalf("MatchKey(%q) = %v %q, want %v %q", tt.key, d.Verdict, d.Rule, tt.want, tt.rule)
			}
		})
	}
}

func TestListPrefixes(t *testing.T) {
	tests := []struct {
		name, filters, within string
		want                  []string
		backup                []string // BackupPrefixes, when it differs
	}{
		{"no filters", `{}`, "", []string{""}, nil},
		{"excludes never narrow", `{"exclude":["prefix:tmp/","glob:logs/**"]}`, "", []string{""}, nil},
		{"one prefix", `{"include":["prefix:data/"]}`, "", []string{"data/"}, nil},
		{"sorted, in key order", `{"include":["prefix:z/","prefix:a/","prefix:m/"]}`, "", []string{"a/", "m/", "z/"}, nil},
		{"overlapping prefixes", `{"include":["prefix:data/2026/","prefix:data/","prefix:data/2025/x"]}`, "", []string{"data/"}, nil},
		{"string overlap", `{"include":["prefix:log","prefix:logs/"]}`, "", []string{"log"}, nil},
		{"duplicates", `{"include":["prefix:a/","prefix:a/"]}`, "", []string{"a/"}, nil},
		{"one include without a prefix lists everything", `{"include":["prefix:data/","glob:*.parquet"]}`, "", []string{""}, nil},
		{"size include lists everything", `{"include":["prefix:data/","size<1MiB"]}`, "", []string{""}, nil},
		{"tag include lists everything", `{"include":["tag:team"]}`, "", []string{""}, nil},
		{"anchored glob narrows", `{"include":["glob:logs/2026/*.gz"]}`, "", []string{"logs/2026/"}, nil},
		{"glob ** drops its slash", `{"include":["glob:logs/**"]}`, "", []string{"logs"}, nil},
		{"glob trailing slash", `{"include":["glob:logs/"]}`, "", []string{"logs"}, nil},
		{"glob mid ** drops its slash too", `{"include":["glob:a/**/b"]}`, "", []string{"a"}, nil}, // conservative: a/**/{,} matches a
		{"glob ** at start", `{"include":["glob:**/x"]}`, "", []string{""}, nil},
		{"glob escape stops", `{"include":["glob:a\\*b/**"]}`, "", []string{"a"}, nil},
		{"glob brace stops", `{"include":["glob:x/{a,b}/*"]}`, "", []string{"x/"}, nil},
		{"glob class stops", `{"include":["glob:day[0-9]/*"]}`, "", []string{"day"}, nil},
		{"AND narrows by its longest prefix", `{"include":[["prefix:a/","glob:a/b/**/*.csv","size<1MiB"]]}`, "", []string{"a/b"}, nil},
		{"AND of disjoint prefixes matches nothing", `{"include":[["prefix:a/","prefix:b/"],"prefix:c/"]}`, "", []string{"c/"}, nil},
		{"only a contradictory include", `{"include":[["prefix:a/","prefix:b/"]]}`, "", []string{}, nil},
		{"within, inside includes", `{"include":["prefix:data/"]}`, "data/2026/", []string{"data/2026/"}, nil},
		{"within, around includes", `{"include":["prefix:data/2026/","prefix:logs/"]}`, "data/", []string{"data/2026/"}, nil},
		{"within, disjoint: nothing", `{"include":["prefix:data/"]}`, "logs/", []string{}, nil},
		{"within, no include", `{"exclude":["prefix:x"]}`, "logs/", []string{"logs/"}, nil},
		{"UTF-8 prefixes", `{"include":["prefix:été/","prefix:ete/","prefix:日本/"]}`, "", []string{"ete/", "été/", "日本/"}, nil},
		{"deleteExcluded lists the whole backup", `{"include":["prefix:data/"],"deleteExcluded":true}`, "", []string{"data/"}, []string{""}},
		{"deleteExcluded, within", `{"include":["prefix:data/"],"deleteExcluded":true}`, "d", []string{"data/"}, []string{"d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.filters)
			got := f.ListPrefixes(tt.within)
			if got == nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ListPrefixes(%q) = %#v, want %#v", tt.within, got, tt.want)
			}
			wantBackup := tt.backup
			if wantBackup == nil {
				wantBackup = tt.want
			}
			if b := f.BackupPrefixes(tt.within); !slices.Equal(b, wantBackup) {
				t.Fatalf("BackupPrefixes(%q) = %#v, want %#v", tt.within, b, wantBackup)
			}
		})
	}
}

// TestListPrefixesProperty checks, for random include rules and random keys, that a key an
// include rule matches is always under ListPrefixes, and that the prefixes are sorted with none a
// prefix of another (so listing them one after the other is in key order, each key once).
func TestListPrefixesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	conds := []string{
		"prefix:a", "prefix:a/", "prefix:ab", "prefix:a/b/", "prefix:é", "prefix:b/é/", "prefix:*",
		"glob:a/**", "glob:a/**/b", "glob:**/x", "glob:a*/b", "glob:a/{b,é}/*", "glob:a\\*b/**", "glob:a/",
		"glob:[ab]/x", "glob:b/?/**", "glob:*.x", "glob:a/*", "glob:**", "glob:é/**/*", "glob:a//**",
		"size<5", "age>1h", "tag:t=v",
	}
	alphabet := []string{"a", "b", "/", "é", "x", "*", "."}
	withins := []string{"", "a", "a/", "b/é/", "é", "z"}
	for trial := range 500 {
		var include []Rule
		for range 1 + rng.IntN(3) {
			var r Rule
			for range 1 + rng.IntN(2) {
				r = append(r, conds[rng.IntN(len(conds))])
			}
			include = append(include, r)
		}
		f, err := Compile(Config{Include: include})
		if err != nil {
			t.Fatal(err)
		}
		within := withins[rng.IntN(len(withins))]
		ps := f.ListPrefixes(within)
		for i := 1; i < len(ps); i++ {
			if ps[i-1] >= ps[i] || strings.HasPrefix(ps[i], ps[i-1]) {
				t.Fatalf("trial %d: %v: prefixes %q not sorted and disjoint", trial, include, ps)
			}
		}
		for range 200 {
			var b strings.Builder
			b.WriteString(within)
			for range rng.IntN(7) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			key := b.String()
			d := f.Match(key, int64(rng.IntN(10)), now.Add(-time.Duration(rng.IntN(7200))*time.Second), now)
			d = f.MatchTags(d, map[string]string{"t": "v"})
			if d.Included() && !Within(ps, key) {
				t.Fatalf("trial %d: include %v within %q: key %q is included but outside ListPrefixes %q", trial, include, within, key, ps)
			}
		}
	}
}

func TestAfter(t *testing.T) {
	ps := []string{"a/", "b/", "c"}
	tests := []struct {
		after string
		want  []string
	}{
		{"", []string{"a/", "b/", "c"}},
		{"0", []string{"a/", "b/", "c"}},
		{"a/", []string{"a/", "b/", "c"}}, // the key a/ itself is done; a/x is not
		{"a/zz", []string{"a/", "b/", "c"}},
		{"a0", []string{"b/", "c"}},
		{"b", []string{"b/", "c"}},
		{"b/x", []string{"b/", "c"}},
		{"c", []string{"c"}},
		{"cz", []string{"c"}},
		{"d", []string{}},
	}
	for _, tt := range tests {
		if got := After(ps, tt.after); !slices.Equal(got, tt.want) {
			t.Errorf("After(%q) = %q, want %q", tt.after, got, tt.want)
		}
	}
}

func TestWithin(t *testing.T) {
	ps := []string{"a/", "é/"}
	for key, want := range map[string]bool{"a/x": true, "a/": true, "a": false, "é/ü": true, "e/x": false, "": false} {
		if got := Within(ps, key); got != want {
			t.Errorf("Within(%q) = %v, want %v", key, got, want)
		}
	}
	if !Within([]string{""}, "anything") || Within([]string{}, "anything") {
		t.Error(`[""] must hold every key and [] none`)
	}
}

func TestParseAge(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0}, {"45s", 45 * time.Second}, {"90m", 90 * time.Minute}, {"12h", 12 * time.Hour},
		{"30d", 30 * 24 * time.Hour}, {"2w", 14 * 24 * time.Hour}, {"1d12h", 36 * time.Hour}, {"1h1d", 25 * time.Hour},
		{"10400w", 10400 * 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		got, err := ParseAge(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "d", "1", "1 d", "1D", "1.5h", "-1h", "1h-", "１d"} {
		if _, err := ParseAge(in); err == nil {
			t.Errorf("ParseAge(%q) accepted", in)
		}
	}
}

func TestJSON(t *testing.T) {
	// As the execution input holds it: a field of a struct decoded with unknown fields refused.
	type input struct {
		Prefix  string  `json:"prefix"`
		Filters *Filter `json:"filters"`
	}
	decode := func(s string) (input, error) {
		var in input
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		return in, dec.Decode(&in)
	}
	in, err := decode(`{"prefix":"p/","filters":{"include":["prefix:p/a",["glob:**/*.csv","size<1MiB"]],"exclude":["tag:backup=false"],"deleteExcluded":true}}`)
	if err != nil {
		t.Fatal(err)
	}
	f := in.Filters
	if f == nil || !f.DeleteExcluded() || !f.NeedsTags() || f.Empty() {
		t.Fatalf("decoded %+v", f)
	}
	if d := f.Match("p/a/x.csv", 10, now, now); d.Verdict != NeedTags {
		t.Fatalf("decoded filter: %v", d.Verdict)
	}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json writes < as \u003c, which reads back the same.
	if want := `{"include":["prefix:p/a",["glob:**/*.csv","size\u003c1MiB"]],"exclude":["tag:backup=false"],"deleteExcluded":true}`; string(out) != want {
		t.Fatalf("Marshal = %s, want %s", out, want)
	}
	if again := mustParse(t, string(out)); !slices.EqualFunc(again.Config().Include, f.Config().Include, slices.Equal) {
		t.Fatalf("round trip changed the rules: %v", again.Config())
	}
	// Absent and null leave no filter; a malformed rule fails the decoding and names the rule.
	if in, err := decode(`{"prefix":"p/"}`); err != nil || in.Filters != nil {
		t.Fatalf("absent: %v, %v", in.Filters, err)
	}
	if in, err := decode(`{"filters":null}`); err != nil || in.Filters != nil {
		t.Fatalf("null: %v, %v", in.Filters, err)
	}
	_, err = decode(`{"filters":{"exclude":["size>10MB"]}}`)
	var invalid *fault.InvalidInput
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), `exclude[0] "size>10MB"`) {
		t.Fatalf("malformed rule: %v (%T)", err, err)
	}
	_, err = decode(`{"filters":{"exclude":[],"deleteExcluded":false,"extra":1}}`)
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), `unknown field "extra"`) {
		t.Fatalf("unknown field: %v (%T)", err, err)
	}
	if b, _ := json.Marshal((*Filter)(nil)); !bytes.Equal(b, []byte("null")) {
		t.Fatalf("nil filter marshals as %s", b)
	}
}

func TestFromEnv(t *testing.T) {
	f, err := FromEnv(envconf.Map(map[string]string{}))
	if err != nil || f != nil {
		t.Fatalf("unset: %v, %v", f, err)
	}
	f, err = FromEnv(envconf.Map(map[string]string{"FILTERS": `{"exclude":["glob:**/*.tmp"]}`}))
	if err != nil || f.Match("a/b.tmp", 1, now, now).Verdict != Exclude {
		t.Fatalf("set: %v, %v", f, err)
	}
	_, err = FromEnv(envconf.Map(map[string]string{"FILTERS": `{"exclude":["age>30"]}`}))
	var cfg *fault.ConfigError
	var invalid *fault.InvalidInput
	if !errors.As(err, &cfg) || !errors.As(err, &invalid) ||
		!strings.HasPrefix(err.Error(), `environment variable FILTERS: filters: exclude[0] "age>30": age "30" is not a duration`) {
		t.Fatalf("malformed: %v (%T)", err, err)
	}
}

func TestCounts(t *testing.T) {
	f := mustParse(t, `{"include":["prefix:a/","prefix:b/"],"exclude":["glob:**/*.tmp","size>1KiB"]}`)
	var c Counts
	for _, o := range []obj{
		{key: "a/x"}, {key: "a/x.tmp"}, {key: "b/y.tmp", size: 5000}, {key: "b/big", size: 5000},
		{key: "c/z"}, {key: "d/z"}, {key: "a/ok"},
	} {
		c = c.Add(f.Match(o.key, o.size, now, now))
	}
	want := Counts{"glob:**/*.tmp": 2, "size>1KiB": 1, NotIncluded: 2}
	if len(c) != len(want) {
		t.Fatalf("counts %v, want %v", c, want)
	}
	for k, v := range want {
		if c[k] != v {
			t.Fatalf("counts %v, want %v", c, want)
		}
	}
	// The report's map type takes the counts as they are.
	var report map[string]int64 = c
	if report["size>1KiB"] != 1 {
		t.Fatal("counts do not convert")
	}
	if got := Counts(nil).Add(f.Match("a/x", 1, now, now)); got != nil {
		t.Fatalf("an included object counted: %v", got)
	}
}

// BenchmarkMatch measures a decision from the listing with a typical configuration (the lister
// makes one per listed key): go test -run '^$' -bench Match ./shared/filter/
func BenchmarkMatch(b *testing.B) {
	f, err := Parse([]byte(`{"include":["prefix:data/","glob:warehouse/**/*.parquet"],"exclude":["glob:**/*.tmp",["glob:logs/**","age>30d"],"size>5GiB","tag:backup=false"]}`))
	if err != nil {
		b.Fatal(err)
	}
	keys := []string{"data/2026/06/01/events-000123.json.gz", "warehouse/sales/year=2026/part-0001.parquet", "data/tmp/x.tmp", "other/readme.md"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f.Match(keys[i%len(keys)], 1<<20, now.Add(-time.Hour), now)
	}
}
