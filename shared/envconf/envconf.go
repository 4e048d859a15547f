// Package envconf reads function settings from environment variables, failing with a
// fault.ConfigError that names the variable.
package envconf

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/bucketvault/bucketvault/shared/fault"
)

// Lookup reads one variable; os.LookupEnv in production, a map in tests.
type Lookup func(name string) (string, bool)

// Env is the process environment.
func Env() Lookup { return os.LookupEnv }

// Map is a fixed environment, for tests and the local executor.
func Map(m map[string]string) Lookup {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

// Reader collects the first error so a constructor can read every variable and check once.
type Reader struct {
	lookup Lookup
	err    error
}

// NewReader reads from lookup.
func NewReader(lookup Lookup) *Reader { return &Reader{lookup: lookup} }

// Err returns the first problem met, as a *fault.ConfigError.
func (r *Reader) Err() error { return r.err }

func (r *Reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &fault.ConfigError{Msg: fmt.Sprintf(format, args...)}
	}
}

// Required returns a variable that must be set and non-empty.
func (r *Reader) Required(name string) string {
	v, _ := r.lookup(name)
	v = strings.TrimSpace(v)
	if v == "" {
		r.fail("environment variable %s is required and not set", name)
	}
	return v
}

// List returns a comma-separated list, blanks dropped; empty when unset.
func (r *Reader) List(name string) []string {
	v, _ := r.lookup(name)
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Int returns a whole number within [min, max], or def when unset.
func (r *Reader) Int(name string, def, min, max int64) int64 {
	v, ok := r.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < min || n > max {
		r.fail("environment variable %s=%q must be a whole number from %d to %d", name, v, min, max)
		return def
	}
	return n
}

// IntOrWord returns a whole number within [min, max], wordValue when the variable is word (such
// as "auto"), or def when unset.
func (r *Reader) IntOrWord(name, word string, wordValue, def, min, max int64) int64 {
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return def
	}
	if v == word {
		return wordValue
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		r.fail("environment variable %s=%q must be %s or a whole number from %d to %d", name, v, word, min, max)
		return def
	}
	return n
}

// OneOf returns one of the allowed values, or def when unset.
func (r *Reader) OneOf(name, def string, allowed ...string) string {
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return def
	}
	if !slices.Contains(allowed, v) {
		r.fail("environment variable %s=%q must be one of %s", name, v, strings.Join(allowed, ", "))
		return def
	}
	return v
}

// String returns the variable's value, or def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	if v, ok := r.lookup(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

// Bytes returns a size such as 5368709120, 8MiB or 5GiB, within [min, max], or def when unset.
func (r *Reader) Bytes(name string, def, min, max int64) int64 {
	v, ok := r.lookup(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	n, err := ParseBytes(v)
	if err != nil || n < min || n > max {
		r.fail("environment variable %s=%q must be a size from %d to %d bytes (suffixes KiB, MiB, GiB)", name, v, min, max)
		return def
	}
	return n
}

// ParseBytes parses a byte count with an optional binary suffix (KiB, MiB, GiB, TiB).
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}} {
		if strings.HasSuffix(s, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %d out of range", n)
	}
	return n * mult, nil
}
