package filter

import (
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/bmatcuk/doublestar/v4"
)

// Verdict is what a filter says about an object.
type Verdict int

// The verdicts.
const (
	// Include: back the object up.
	Include Verdict = iota
	// Exclude: neither copy it nor mark it deleted (unless DeleteExcluded); Decision.Rule says why.
	Exclude
	// NeedTags: the outcome depends on the object's tags; read them (only if the object would
	// otherwise be copied) and call MatchTags.
	NeedTags
)

func (v Verdict) String() string {
	switch v {
	case Include:
		return "include"
	case Exclude:
		return "exclude"
	case NeedTags:
		return "needTags"
	}
	return "unknown"
}

// Decision is a filter's verdict on one object, with the rule that excluded it.
type Decision struct {
	Verdict Verdict
	// Rule names what excluded the object: an exclude rule as written (conditions joined by
	// " & "), or NotIncluded. Empty unless Verdict is Exclude.
	Rule string
	obj  object // for MatchTags
}

// Included says the object is backed up.
func (d Decision) Included() bool { return d.Verdict == Include }

// Excluded says the object is excluded.
func (d Decision) Excluded() bool { return d.Verdict == Exclude }

// NeedTags says the outcome depends on the object's tags.
func (d Decision) NeedTags() bool { return d.Verdict == NeedTags }

type object struct {
	key                   string
	size                  int64
	lastModified, now     time.Time
	keyOnly               bool
	tags                  map[string]string
	haveTags, haveDetails bool
}

// Match decides on a source object from its listing: key, size and last-modified time, and now,
// the run's clock. It makes no request. NeedTags means a tag condition decides.
func (f *Filter) Match(key string, size int64, lastModified, now time.Time) Decision {
	return f.decide(object{key: key, size: size, lastModified: lastModified, now: now, haveDetails: true})
}

// MatchTags completes a NeedTags decision with the object's tags (map key to value); any other
// decision is returned as it is.
func (f *Filter) MatchTags(d Decision, tags map[string]string) Decision {
	if d.Verdict != NeedTags {
		return d
	}
	o := d.obj
	o.tags, o.haveTags = tags, true
	if o.tags == nil {
		o.tags = map[string]string{}
	}
	return f.decide(o)
}

// MatchKey decides on a key the backup holds and the source no longer has, by its key alone: it
// is Exclude only when no include rule can match the key, or an exclude rule whose conditions are
// all on the key (prefix, glob) matches it. Otherwise it is Include: mark it deleted.
func (f *Filter) MatchKey(key string) Decision {
	d := f.decide(object{key: key, keyOnly: true})
	if d.Verdict == NeedTags {
		d.Verdict = Include
	}
	d.obj = object{}
	return d
}

// Tags turns an S3 tag set into the map MatchTags reads.
func Tags(set []types.Tag) map[string]string {
	m := make(map[string]string, len(set))
	for _, t := range set {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// tri is a condition's truth: known true, known false, or not known without more detail.
type tri int8

const (
	no tri = iota
	yes
	unknown
)

func (f *Filter) decide(o object) Decision {
	if f == nil {
		return Decision{Verdict: Include}
	}
	pending := false
	for _, r := range f.exclude {
		switch r.eval(&o) {
		case yes:
			return Decision{Verdict: Exclude, Rule: r.name}
		case unknown:
			pending = true
		}
	}
	if len(f.include) > 0 {
		in := no
		for _, r := range f.include {
			if t := r.eval(&o); t == yes {
				in = yes
				break
			} else if t == unknown {
				in = unknown
			}
		}
		switch in {
		case no:
			return Decision{Verdict: Exclude, Rule: NotIncluded}
		case unknown:
			pending = true
		}
	}
	if pending {
		return Decision{Verdict: NeedTags, obj: o}
	}
	return Decision{Verdict: Include}
}

// eval is a rule's truth: false if any condition is false, true if all are true.
func (r *rule) eval(o *object) tri {
	t := yes
	for i := range r.conds {
		switch r.conds[i].eval(o) {
		case no:
			return no
		case unknown:
			t = unknown
		}
	}
	return t
}

func (c *cond) eval(o *object) tri {
	switch c.kind {
	case kindPrefix:
		return truth(strings.HasPrefix(o.key, c.text))
	case kindGlob:
		name := o.key
		if c.base {
			name = strings.TrimSuffix(name, "/")
			name = name[strings.LastIndexByte(name, '/')+1:]
		}
		return truth(doublestar.MatchUnvalidated(c.text, name))
	case kindSize:
		if !o.haveDetails {
			return unknown
		}
		return truth(compare(o.size, c.op, c.n))
	case kindAge:
		if !o.haveDetails {
			return unknown
		}
		return truth(compare(int64(o.now.Sub(o.lastModified)), c.op, c.n))
	case kindTag:
		if !o.haveTags {
			return unknown
		}
		v, ok := o.tags[c.text]
		return truth(ok && (c.anyVal || v == c.value))
	}
	return unknown
}

func compare(a int64, op string, b int64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	}
	return false
}

func truth(b bool) tri {
	if b {
		return yes
	}
	return no
}

// Counts are excluded objects by the rule that excluded them (Decision.Rule), for the report.
type Counts map[string]int64

// Add counts d if it excludes, and returns the counts (a new map when c is nil), like append.
func (c Counts) Add(d Decision) Counts {
	if d.Verdict != Exclude {
		return c
	}
	if c == nil {
		c = Counts{}
	}
	c[d.Rule]++
	return c
}

// ListPrefixes returns the key prefixes to list, in key order, so that every object under within
// (the run's prefix, "" for the whole bucket) that an include rule can match is listed: each
// include rule's literal key prefix, limited to within, none a prefix of another (so listing them
// one after the other yields keys in order, each once). Exclude rules never narrow it. It is
// []string{within} when the rules cannot narrow the listing (no include rules, or one with no
// literal prefix), and empty (not nil) when no key under within can be included.
func (f *Filter) ListPrefixes(within string) []string {
	if f == nil || len(f.include) == 0 {
		return []string{within}
	}
	var ps []string
	for _, r := range f.include {
		p, ok := r.literal()
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(p, within):
			ps = append(ps, p)
		case strings.HasPrefix(within, p):
			ps = append(ps, within)
		}
	}
	return minimal(ps)
}

// BackupPrefixes returns the key prefixes of the backup to list beside ListPrefixes: the same,
// except with DeleteExcluded, where the backup is listed in full (within) so that keys no include
// rule can match are found and marked deleted.
func (f *Filter) BackupPrefixes(within string) []string {
	if f.DeleteExcluded() {
		return []string{within}
	}
	return f.ListPrefixes(within)
}

// literal is the longest literal prefix of the rule's key conditions; ok is false when two of them
// cannot both hold (the rule matches no key).
func (r *rule) literal() (p string, ok bool) {
	for _, c := range r.conds {
		l := c.literal
		switch {
		case strings.HasPrefix(p, l):
		case strings.HasPrefix(l, p):
			p = l
		default:
			return "", false
		}
	}
	return p, true
}

// Within says whether key is under one of prefixes (ListPrefixes' result): the keys a listing of
// them sees, and so the ETag index entries the run owns.
func Within(prefixes []string, key string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// After returns the prefixes still to list once every key up to and including after is done:
// those with a key greater than after. A lister resuming from a cursor lists these, each with
// StartAfter after.
func After(prefixes []string, after string) []string {
	if after == "" {
		return prefixes
	}
	out := []string{}
	for _, p := range prefixes {
		if p > after || strings.HasPrefix(after, p) {
			out = append(out, p)
		}
	}
	return out
}
