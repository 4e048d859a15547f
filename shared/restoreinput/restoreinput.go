// Package restoreinput parses a restore execution's input: the moment to restore, what to
// restore, where to, and how.
package restoreinput

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// Thaw tiers of RestoreObject.
var thawTiers = []string{"Standard", "Bulk", "Expedited"}

// Defaults and bounds of the thaw options.
const (
	DefaultThawTier     = "Standard" // RestoreObject tier when thawTier is not given
	DefaultThawDays     = 7          // days a thawed copy stays readable when thawDays is not given
	MaxThawDays         = 365        // thawDays, at most
	MinThawCheckSeconds = 60         // thawCheckSeconds, at least: no thaw completes sooner, and each check costs history events
	MaxThawCheckSeconds = 86400      // thawCheckSeconds, at most
	MaxKeyBytes         = 1024       // S3's limit on a key, and on a prefix
	MaxRequestedByBytes = 256        // requestedBy, at most
)

// Options is a restore request.
type Options struct {
	// At is the moment to restore: an RFC 3339 timestamp, or the name of a backup execution (the
	// moment its report says it finished). Required unless VersionID is given.
	At string `json:"at"`
	// Prefixes selects keys starting with any of them; Prefix is a shorthand for one. Neither
	// (and no Keys) means the whole bucket.
	Prefixes []string `json:"prefixes"`
	Prefix   string   `json:"prefix"`
	// Keys selects exact keys.
	Keys []string `json:"keys"`
	// VersionID restores this version of the single key in Keys.
	VersionID string `json:"versionId"`
	// TargetBucket receives the restore (default: the source bucket); TargetPrefix is put in
	// front of every restored key.
	TargetBucket string `json:"targetBucket"`
	TargetPrefix string `json:"targetPrefix"`
	// Overwrite false never replaces an existing object in the target; by default an object that
	// differs from the version being restored is replaced, and one that is the same is left alone.
	Overwrite *bool `json:"overwrite"`
	// DryRun plans and counts; it copies nothing and thaws nothing.
	DryRun bool `json:"dryRun"`
	// ThawTier, ThawDays and ThawCheckSeconds tune RestoreObject for archived versions.
	ThawTier         string `json:"thawTier"`
	ThawDays         int    `json:"thawDays"`
	ThawCheckSeconds *int   `json:"thawCheckSeconds"`
	// Exact makes the selection in the target exactly what it was at the moment: besides copying
	// what differs, every object in the target under the selection (each prefix, or each key,
	// with TargetPrefix in front) whose key did not exist in the backup at the moment — never
	// backed up, or deleted as of then — is removed with a DeleteObject without a version id, a
	// delete marker over its versions. Only where the deployment allows it (the planner's
	// ALLOW_EXACT_ROLLBACK), only into a target with versioning enabled, and, unless DryRun,
	// only with ConfirmRemovals.
	Exact bool `json:"exact"`
	// ConfirmRemovals is the number of removals the caller accepts, from a dry run's toDelete: an
	// exact restore that plans any other number refuses before it copies or removes anything.
	// Required by an exact restore that is not a dry run; not allowed without exact.
	ConfirmRemovals *int64 `json:"confirmRemovals"`
	// RequestedBy names the person who asked for the restore (the console's signed-in user); it
	// is carried into the report. Optional; UTF-8 without control characters, at most
	// MaxRequestedByBytes.
	RequestedBy string `json:"requestedBy"`
	// From restores from a further destination (package destination) by name instead of the
	// backup bucket; empty or "primary" means the backup bucket. Each destination keeps its own
	// history, so any moment restores from any of them.
	From string `json:"from"`
}

// Scopes returns the key ranges to walk, in key order: exact keys (keysOnly=true) or prefixes.
// Prefixes contained in another prefix are dropped.
func (o Options) Scopes() (scopes []string, keysOnly bool) {
	if len(o.Keys) > 0 {
		keys := slices.Clone(o.Keys)
		slices.Sort(keys)
		return keys, true
	}
	ps := slices.Clone(o.Prefixes)
	if o.Prefix != "" {
		ps = append(ps, o.Prefix)
	}
	if len(ps) == 0 {
		return []string{""}, false
	}
	slices.Sort(ps)
	var out []string
	for _, p := range ps {
		if len(out) > 0 && strings.HasPrefix(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out, false
}

// OverwriteAllowed reports whether differing objects in the target are replaced.
func (o Options) OverwriteAllowed() bool { return o.Overwrite == nil || *o.Overwrite }

var fromPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Parse reads and checks restore input; problems are *fault.InvalidInput naming the field.
func Parse(raw []byte) (Options, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return Options{}, invalid("restore input must be a JSON object with at least \"at\" (an RFC 3339 time or a backup execution name)")
	}
	var o Options
	if err := strictjson.Unmarshal(raw, &o); err != nil {
		return Options{}, invalid("restore input: %v (fields: at, prefix, prefixes, keys, versionId, targetBucket, targetPrefix, overwrite, dryRun, thawTier, thawDays, thawCheckSeconds, exact, confirmRemovals, requestedBy, from)", err)
	}
	if o.At == "" && o.VersionID == "" {
		return Options{}, invalid("restore input needs \"at\": an RFC 3339 time (2026-11-20T10:00:00Z) or a backup execution name")
	}
	if len(o.Keys) > 0 && (len(o.Prefixes) > 0 || o.Prefix != "") {
		return Options{}, invalid("restore input: give keys or prefixes, not both")
	}
	seen := map[string]bool{}
	for i, k := range o.Keys {
		switch {
		case k == "":
			return Options{}, invalid("restore input: keys[%d] is empty", i)
		case len(k) > MaxKeyBytes || !utf8.ValidString(k):
			return Options{}, invalid("restore input: keys[%d] is not a valid S3 key (UTF-8, at most %d bytes)", i, MaxKeyBytes)
		case seen[k]:
			return Options{}, invalid("restore input: key %q is listed twice", k)
		}
		seen[k] = true
	}
	if o.VersionID != "" && len(o.Keys) != 1 {
		return Options{}, invalid("restore input: versionId needs exactly one key in keys")
	}
	prefixes := map[string]string{"prefix": o.Prefix, "targetPrefix": o.TargetPrefix}
	for i, p := range o.Prefixes {
		prefixes[fmt.Sprintf("prefixes[%d]", i)] = p
	}
	for _, field := range slices.Sorted(maps.Keys(prefixes)) {
		if p := prefixes[field]; len(p) > MaxKeyBytes || !utf8.ValidString(p) {
			return Options{}, invalid("restore input: %s is not a valid key prefix (UTF-8, at most %d bytes)", field, MaxKeyBytes)
		}
	}
	if err := o.checkExact(); err != nil {
		return Options{}, err
	}
	if len(o.RequestedBy) > MaxRequestedByBytes || !utf8.ValidString(o.RequestedBy) || strings.ContainsFunc(o.RequestedBy, unicode.IsControl) {
		return Options{}, invalid("restore input: requestedBy must be UTF-8 text without control characters, at most %d bytes", MaxRequestedByBytes)
	}
	if o.From != "" && !fromPattern.MatchString(o.From) {
		return Options{}, invalid("restore input: from %q is not a destination name (lower-case letters, digits and hyphens, at most 32)", o.From)
	}
	if o.ThawTier == "" {
		o.ThawTier = DefaultThawTier
	}
	if !slices.Contains(thawTiers, o.ThawTier) {
		return Options{}, invalid("restore input: thawTier %q must be one of %v", o.ThawTier, thawTiers)
	}
	if o.ThawDays == 0 {
		o.ThawDays = DefaultThawDays
	}
	if o.ThawDays < 1 || o.ThawDays > MaxThawDays {
		return Options{}, invalid("restore input: thawDays %d must be from 1 to %d", o.ThawDays, MaxThawDays)
	}
	if o.ThawCheckSeconds != nil && (*o.ThawCheckSeconds < MinThawCheckSeconds || *o.ThawCheckSeconds > MaxThawCheckSeconds) {
		return Options{}, invalid("restore input: thawCheckSeconds %d must be from %d to %d: every check costs the execution history events, of which a restore has 25,000",
			*o.ThawCheckSeconds, MinThawCheckSeconds, MaxThawCheckSeconds)
	}
	return o, nil
}

// checkExact refuses the combinations an exact restore cannot honour.
func (o Options) checkExact() error {
	switch {
	case o.ConfirmRemovals != nil && !o.Exact:
		return invalid("restore input: confirmRemovals is only for an exact restore (exact: true)")
	case o.ConfirmRemovals != nil && *o.ConfirmRemovals < 0:
		return invalid("restore input: confirmRemovals %d must be 0 or more", *o.ConfirmRemovals)
	case !o.Exact:
		return nil
	case o.VersionID != "":
		return invalid("restore input: exact cannot be combined with versionId: a single version restores one key, it does not make a selection as it was at a moment")
	case !o.OverwriteAllowed():
		return invalid("restore input: exact cannot be combined with overwrite false: an exact restore replaces every object that differs")
	case !o.DryRun && o.ConfirmRemovals == nil:
		return invalid("restore input: exact needs confirmRemovals, the number of objects a dry run (dryRun: true) says it would remove")
	}
	return nil
}

// ParseMoment reads At when it is a timestamp; ok is false when it is an execution name
// (execution names cannot contain ':', and a date alone is not a moment).
func ParseMoment(at string) (t time.Time, ok bool, err error) {
	if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
		return t, true, nil
	}
	if strings.Contains(at, ":") || datePrefix.MatchString(at) {
		return time.Time{}, false, invalid("restore input: at %q is not an RFC 3339 time such as 2026-11-20T10:00:00Z", at)
	}
	return time.Time{}, false, nil
}

var datePrefix = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)

func invalid(format string, args ...any) error {
	return &fault.InvalidInput{Msg: fmt.Sprintf(format, args...)}
}
