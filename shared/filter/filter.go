// Package filter decides which source objects a backup covers: include and exclude rules on the
// key (prefix, glob), the size, the age and the tags of an object, parsed and validated up front,
// evaluated cheapest first so that tags are read only when they can change the outcome.
//
// # Rules
//
// A rule is one condition written as a short string, or a JSON array of conditions that must all
// hold (AND):
//
//	prefix:logs/          the key starts with logs/ (a plain string prefix: prefix:logs also matches logs2/x)
//	glob:**/*.tmp         the key matches a doublestar glob (github.com/bmatcuk/doublestar/v4):
//	                      * any run of characters but /, ? one character but /, ** any number of
//	                      folders, [a-z] a class, {a,b} alternatives, \ escapes.
//	                      A glob with no / matches the object's name (the key after its last /,
//	                      a trailing / ignored) at any depth: glob:*.parquet matches a.parquet and
//	                      x/y/a.parquet. A glob with a / matches the whole key from its start:
//	                      glob:logs/*.gz matches logs/a.gz, not x/logs/a.gz (write glob:**/logs/*.gz).
//	                      A glob ending in / means everything under it: glob:tmp/ is glob:tmp/**.
//	size<10MiB            the size compared with a byte count: < <= > >=, a whole number with an
//	                      optional KiB, MiB, GiB or TiB (powers of 1024)
//	age>30d               the time since the object was last modified, compared the same way with a
//	                      duration of whole numbers and units s, m, h, d (24 h), w (7 d): 30d, 12h, 1d12h
//	tag:backup=false      the object has the tag backup with the value false (case-sensitive)
//	tag:team              the object has a tag team, whatever its value (tag:team= means an empty value;
//	                      the first = ends the key, so a tag key containing = cannot be named)
//
// # Which objects are backed up
//
// An object is backed up when it matches at least one include rule (or there are no include
// rules) and it matches no exclude rule. The order of the rules does not matter: an exclude rule
// always wins over an include rule, adding an include rule can only add objects and adding an
// exclude rule can only remove them. This is restic's and Kopia's model for excludes (any
// matching exclude drops a file) with includes as the set to start from, and not rclone's
// ordered first-match-wins filter list: in rclone the meaning of a rule depends on its position,
// rclone's own documentation warns against mixing --include and --exclude for that reason, and
// here rules come from two JSON lists (and from a deployment or an execution), where an order
// between them would be invisible. The price: an exception inside an exclusion (rclone's
// "+ logs/keep/**" before "- logs/**") is written as a narrower exclude instead, naming what
// goes (glob:logs/{debug,trace}/**) or when (["glob:logs/**", "age>30d"]).
//
// # What excluded means
//
// An excluded object is neither copied nor marked deleted: whatever the backup holds for its key
// stays as it is (the last version backed up before it was excluded, or nothing). With
// deleteExcluded set, a key the backup holds whose source object is excluded is marked deleted (a
// delete marker: the data stays as a noncurrent version and the deletion guard counts it).
//
// A key the backup holds and the source no longer has is judged by its key alone (prefix and glob
// conditions; its size, age and tags are those of an object that is gone): when no include rule
// can match the key, or an exclude rule of only key conditions matches it, it is excluded, and
// left alone unless deleteExcluded; otherwise it is marked deleted as without filters.
//
// # What it costs
//
// Key, size and age conditions are evaluated from the listing, with no request. Include rules
// narrow the listing itself (ListPrefixes): each include rule's literal key prefix (of its prefix
// conditions, and of its globs up to their first wildcard) is listed, nothing else; exclude rules
// never narrow it. Tag conditions need a GetObjectTagging request: Match says NeedTags only when
// the tags can change the outcome, and the lister reads them only for objects it would otherwise
// copy (new or changed), never for unchanged ones. So a tag change alone (which changes neither
// the ETag nor the last-modified time) takes effect the next time the object changes.
//
// # Configuration
//
// One JSON form, in the execution input's "filters" field and in the deployment's FILTERS
// environment variable (CDK context "filters"); an execution's filters replace the deployment's:
//
//	{"include": ["prefix:data/", "glob:**/*.parquet"],
//	 "exclude": ["glob:**/*.tmp", ["glob:logs/**", "age>30d"], "tag:backup=false"],
//	 "deleteExcluded": false}
//
// Every rule is checked before anything runs; a malformed one is a *fault.InvalidInput naming the
// rule and what is wrong with it.
package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// Limits on a configuration. They keep the report's counts by rule (which travel in the Step
// Functions state, 256 KiB at most) small.
const (
	// DefaultMaxRules is the most include and exclude rules together.
	DefaultMaxRules = 100
	// DefaultMaxBytes is the largest filters JSON.
	DefaultMaxBytes = 16 << 10
	// EnvVar is the environment variable holding a deployment's filters.
	EnvVar = "FILTERS"
	// NotIncluded is the rule an object is counted under when include rules exist and none
	// matched it.
	NotIncluded = "(no include rule matched)"
)

// S3's limits on tags (Tag Restrictions in the S3 user guide): a tag key or value longer than
// these can never match.
const (
	maxTagKey   = 128
	maxTagValue = 256
	maxKey      = 1024 // bytes of an S3 key
)

// Config is the JSON form of filters.
type Config struct {
	Include        []Rule `json:"include,omitempty"`
	Exclude        []Rule `json:"exclude,omitempty"`
	DeleteExcluded bool   `json:"deleteExcluded,omitempty"`
}

// Rule is one rule: conditions that must all hold. In JSON, a string (one condition) or an array
// of strings.
type Rule []string

// UnmarshalJSON reads a string or an array of strings.
func (r *Rule) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = Rule{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return fmt.Errorf("a rule is a string or an array of strings, got %s", clip(string(b)))
	}
	*r = ss
	return nil
}

// MarshalJSON writes a one-condition rule as a string.
func (r Rule) MarshalJSON() ([]byte, error) {
	if len(r) == 1 {
		return json.Marshal(r[0])
	}
	return json.Marshal([]string(r))
}

// String is the rule as the report names it: its conditions joined by " & ".
func (r Rule) String() string { return strings.Join(r, " & ") }

// Filter is a parsed, validated configuration. A nil *Filter backs up everything.
type Filter struct {
	config         Config
	include        []rule
	exclude        []rule
	deleteExcluded bool
	tags           bool // some condition is on tags
}

type rule struct {
	name  string
	conds []cond
}

type kind int

const (
	kindPrefix kind = iota
	kindGlob
	kindSize
	kindAge
	kindTag
)

type cond struct {
	kind    kind
	text    string // as written: prefix, glob pattern, or tag key
	base    bool   // glob: match the object's name instead of the whole key
	op      string // size, age: < <= > >=
	n       int64  // size: bytes; age: nanoseconds
	value   string // tag value
	anyVal  bool   // tag: present with any value
	literal string // the literal key prefix every matching key starts with ("" when none)
}

// Parse reads filters JSON. Empty input or null means no filters (a nil *Filter). Errors are
// *fault.InvalidInput naming the rule and what is wrong.
func Parse(raw []byte) (*Filter, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if len(raw) > DefaultMaxBytes {
		return nil, invalid("filters of %d bytes are larger than %d", len(raw), DefaultMaxBytes)
	}
	var c Config
	if err := strictjson.Unmarshal(raw, &c); err != nil {
		return nil, invalid("filters: %v (fields: include, exclude, deleteExcluded)", err)
	}
	return Compile(c)
}

// Compile validates c. Errors are *fault.InvalidInput naming the rule and what is wrong.
func Compile(c Config) (*Filter, error) {
	if n := len(c.Include) + len(c.Exclude); n > DefaultMaxRules {
		return nil, invalid("filters: %d rules, at most %d", n, DefaultMaxRules)
	}
	f := &Filter{config: c, deleteExcluded: c.DeleteExcluded}
	for _, list := range []struct {
		name  string
		rules []Rule
		dst   *[]rule
	}{{"include", c.Include, &f.include}, {"exclude", c.Exclude, &f.exclude}} {
		for i, r := range list.rules {
			if len(r) == 0 {
				return nil, invalid("filters: %s[%d] is an empty rule", list.name, i)
			}
			cr := rule{name: r.String()}
			for j, s := range r {
				cd, err := parseCond(s)
				if err != nil {
					at := fmt.Sprintf("%s[%d]", list.name, i)
					if len(r) > 1 {
						at += fmt.Sprintf("[%d]", j)
					}
					return nil, invalid("filters: %s %q: %v", at, s, err)
				}
				f.tags = f.tags || cd.kind == kindTag
				cr.conds = append(cr.conds, cd)
			}
			*list.dst = append(*list.dst, cr)
		}
	}
	return f, nil
}

// FromEnv reads a deployment's filters from FILTERS; unset or blank means none. A malformed
// value is a *fault.ConfigError naming the variable, whose cause is the *fault.InvalidInput.
func FromEnv(lookup envconf.Lookup) (*Filter, error) {
	v, _ := lookup(EnvVar)
	f, err := Parse([]byte(v))
	if err != nil {
		return nil, &fault.ConfigError{Msg: "environment variable " + EnvVar + ": " + err.Error(), Err: err}
	}
	return f, nil
}

// UnmarshalJSON parses and validates filters, so that a struct holding a *Filter (the execution
// input) is checked as it is decoded.
func (f *Filter) UnmarshalJSON(b []byte) error {
	g, err := Parse(b)
	if err != nil {
		return err
	}
	if g == nil {
		g = &Filter{}
	}
	*f = *g
	return nil
}

// MarshalJSON writes the configuration the filter was parsed from.
func (f *Filter) MarshalJSON() ([]byte, error) {
	if f == nil {
		return []byte("null"), nil
	}
	return json.Marshal(f.config)
}

// Config returns the configuration f was parsed from.
func (f *Filter) Config() Config {
	if f == nil {
		return Config{}
	}
	return f.config
}

// DeleteExcluded says whether the backup of an excluded key is marked deleted.
func (f *Filter) DeleteExcluded() bool { return f != nil && f.deleteExcluded }

// NeedsTags says whether some rule is on tags: the lister then needs s3:GetObjectTagging on the
// source.
func (f *Filter) NeedsTags() bool { return f != nil && f.tags }

// Empty says whether f has no rules (and so backs up everything).
func (f *Filter) Empty() bool { return f == nil || len(f.include) == 0 && len(f.exclude) == 0 }

func parseCond(s string) (cond, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return cond{}, fmt.Errorf("not valid UTF-8")
	}
	switch {
	case strings.HasPrefix(s, "prefix:"):
		p := strings.TrimPrefix(s, "prefix:")
		switch {
		case p == "":
			return cond{}, fmt.Errorf("empty prefix: it would match every key (to back up everything, leave include empty)")
		case len(p) > maxKey:
			return cond{}, fmt.Errorf("prefix of %d bytes is longer than an S3 key (%d)", len(p), maxKey)
		}
		return cond{kind: kindPrefix, text: p, literal: p}, nil
	case strings.HasPrefix(s, "glob:"):
		return parseGlob(strings.TrimPrefix(s, "glob:"))
	case strings.HasPrefix(s, "tag:"):
		return parseTag(strings.TrimPrefix(s, "tag:"))
	case strings.HasPrefix(s, "size"):
		op, v, err := comparison(strings.TrimPrefix(s, "size"))
		if err != nil {
			return cond{}, err
		}
		n, err := envconf.ParseBytes(v)
		if err != nil || v == "" || strings.HasPrefix(v, "-") || strings.HasPrefix(v, "+") {
			return cond{}, fmt.Errorf("size %q is not a byte count (a whole number, optionally with KiB, MiB, GiB or TiB)", v)
		}
		return cond{kind: kindSize, op: op, n: n}, nil
	case strings.HasPrefix(s, "age"):
		op, v, err := comparison(strings.TrimPrefix(s, "age"))
		if err != nil {
			return cond{}, err
		}
		d, err := ParseAge(v)
		if err != nil {
			return cond{}, err
		}
		return cond{kind: kindAge, op: op, n: int64(d)}, nil
	case s == "":
		return cond{}, fmt.Errorf("empty rule")
	}
	return cond{}, fmt.Errorf("unknown rule: write prefix:P, glob:PATTERN, size<N (or <=, >, >=), age>D (or <, <=, >=), tag:K=V or tag:K")
}

// comparison splits "<10MiB" (spaces allowed) into its operator and value.
func comparison(s string) (op, value string, err error) {
	s = strings.TrimSpace(s)
	for _, o := range []string{"<=", ">=", "<", ">"} {
		if strings.HasPrefix(s, o) {
			return o, strings.TrimSpace(strings.TrimPrefix(s, o)), nil
		}
	}
	return "", "", fmt.Errorf("missing comparison: write <, <=, > or >= followed by a value")
}

func parseGlob(p string) (cond, error) {
	switch {
	case p == "":
		return cond{}, fmt.Errorf("empty glob")
	case len(p) > maxKey+2:
		return cond{}, fmt.Errorf("glob of %d bytes is longer than an S3 key (%d)", len(p), maxKey)
	}
	pattern := p
	if strings.HasSuffix(pattern, "/") {
		pattern += "**"
	}
	if !doublestar.ValidatePattern(pattern) {
		return cond{}, fmt.Errorf("glob %q is malformed (an unclosed [ or {, or a trailing \\)", p)
	}
	c := cond{kind: kindGlob, text: pattern, base: !strings.Contains(pattern, "/")}
	if !c.base {
		c.literal = literalPrefix(pattern)
	}
	return c, nil
}

// literalPrefix is a string every key matching a whole-key glob starts with: the pattern up to
// its first special character, without a / that a following ** may match away (doublestar
// matches logs/** and logs/**/ with logs).
func literalPrefix(pattern string) string {
	i := strings.IndexAny(pattern, `*?[{\`)
	if i < 0 {
		return pattern
	}
	lit := pattern[:i]
	if strings.HasPrefix(pattern[i:], "**") {
		lit = strings.TrimSuffix(lit, "/")
	}
	return lit
}

func parseTag(s string) (cond, error) {
	k, v, hasValue := strings.Cut(s, "=")
	switch {
	case k == "":
		return cond{}, fmt.Errorf("empty tag key: write tag:KEY=VALUE or tag:KEY")
	case utf8.RuneCountInString(k) > maxTagKey:
		return cond{}, fmt.Errorf("tag key longer than S3's %d characters", maxTagKey)
	case utf8.RuneCountInString(v) > maxTagValue:
		return cond{}, fmt.Errorf("tag value longer than S3's %d characters", maxTagValue)
	}
	return cond{kind: kindTag, text: k, value: v, anyVal: !hasValue}, nil
}

// ParseAge reads a duration of whole numbers with units s, m, h, d (24 hours) and w (7 days),
// largest first or not: 30d, 12h, 1d12h, 90m.
func ParseAge(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("empty age: write a duration such as 30d, 12h or 1d12h")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) {
			return 0, fmt.Errorf("age %q is not a duration (whole numbers with units s, m, h, d, w, such as 30d or 1d12h)", orig)
		}
		var unit time.Duration
		switch s[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("age %q has an unknown unit %q (units: s, m, h, d, w)", orig, s[i:i+1])
		}
		var n int64
		for _, c := range s[:i] {
			n = n*10 + int64(c-'0')
			if n > int64(maxAge/unit) {
				return 0, fmt.Errorf("age %q is longer than %d years", orig, maxAge/(365*24*time.Hour))
			}
		}
		d := time.Duration(n) * unit
		if total > maxAge-d {
			return 0, fmt.Errorf("age %q is longer than %d years", orig, maxAge/(365*24*time.Hour))
		}
		total += d
		s = s[i+1:]
	}
	return total, nil
}

// maxAge keeps every age within time.Duration.
const maxAge = 200 * 365 * 24 * time.Hour

func invalid(format string, args ...any) error {
	return &fault.InvalidInput{Msg: fmt.Sprintf(format, args...)}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// minimal sorts prefixes and drops each one another of them is a prefix of: the result lists every
// key the input does, each once, in key order.
func minimal(prefixes []string) []string {
	ps := slices.Clone(prefixes)
	slices.Sort(ps)
	out := []string{}
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}
