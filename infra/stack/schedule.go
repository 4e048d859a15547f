package stack

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	// The IANA time zone database, built in: a time zone is judged the same on every machine
	// that synthesizes the stack, whatever its /usr/share/zoneinfo holds.
	_ "time/tzdata"
)

// EventBridge Scheduler's expressions ("Schedule types in EventBridge Scheduler"):
// rate(value unit), cron(minutes hours day-of-month month day-of-week year) and
// at(yyyy-mm-ddThh:mm:ss), evaluated in an IANA time zone.
var (
	rateRe = regexp.MustCompile(`^rate\(([0-9]+) (minute|minutes|hour|hours|day|days)\)$`)
	atRe   = regexp.MustCompile(`^at\(([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})\)$`)
	cronRe = regexp.MustCompile(`^cron\((.*)\)$`)
)

// ValidateSchedule reports why EventBridge Scheduler would refuse expr, naming the rule.
func ValidateSchedule(expr string) error {
	switch {
	case strings.HasPrefix(expr, "rate("):
		m := rateRe.FindStringSubmatch(expr)
		if m == nil {
			return fmt.Errorf("%q: a rate expression is rate(value unit), unit minute(s), hour(s) or day(s)", expr)
		}
		if n, err := strconv.Atoi(m[1]); err != nil || n < 1 {
			return fmt.Errorf("%q: a rate's value must be a positive whole number", expr)
		}
		return nil
	case strings.HasPrefix(expr, "at("):
		m := atRe.FindStringSubmatch(expr)
		if m == nil {
			return fmt.Errorf("%q: a one-time schedule is at(yyyy-mm-ddThh:mm:ss)", expr)
		}
		if _, err := time.Parse("2006-01-02T15:04:05", m[1]); err != nil {
			return fmt.Errorf("%q: not a date and time: %v", expr, err)
		}
		return nil
	case strings.HasPrefix(expr, "cron("):
		m := cronRe.FindStringSubmatch(expr)
		if m == nil {
			return fmt.Errorf("%q: a cron expression is cron(minutes hours day-of-month month day-of-week year)", expr)
		}
		if err := validateCron(m[1]); err != nil {
			return fmt.Errorf("%q: %w", expr, err)
		}
		return nil
	}
	return fmt.Errorf("%q: want cron(...), rate(...) or at(...)", expr)
}

// ValidateTimeZone reports whether tz is an IANA time zone name, as ScheduleExpressionTimezone
// requires.
func ValidateTimeZone(tz string) error {
	if tz == "" || tz == "Local" || strings.TrimSpace(tz) != tz {
		return fmt.Errorf("%q: want an IANA time zone name (UTC, Europe/Berlin, America/New_York, …)", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("%q is not in the IANA time zone database: want a name such as UTC, Europe/Berlin or America/New_York", tz)
	}
	return nil
}

// cronField is one field of a cron expression: its range of values, the names it accepts for
// them (months, week days) and the wildcards beyond , - * / it allows.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is min+i
	extra    string   // of ? L W #
}

var cronFields = []cronField{
	{name: "minutes", min: 0, max: 59},
	{name: "hours", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31, extra: "?LW"},
	{name: "month", min: 1, max: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{name: "day-of-week", min: 1, max: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}, extra: "?L#"},
	{name: "year", min: 1970, max: 2199},
}

// validateCron checks the six fields of a cron expression against the values and wildcards the
// cron reference allows each, and the rule that exactly one of day-of-month and day-of-week is ?.
func validateCron(body string) error {
	fields := strings.Split(body, " ")
	if len(fields) != len(cronFields) {
		return fmt.Errorf("%d fields separated by single spaces, want 6 (minutes hours day-of-month month day-of-week year)", len(fields))
	}
	var errs []error
	for i, f := range cronFields {
		if err := f.validate(fields[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", f.name, fields[i], err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	dom, dow := fields[2] == "?", fields[4] == "?"
	if dom == dow {
		return errors.New("exactly one of day-of-month and day-of-week must be ? (a value or * in one needs ? in the other)")
	}
	return nil
}

func (f cronField) validate(s string) error {
	if s == "?" {
		if !strings.Contains(f.extra, "?") {
			return errors.New("? is allowed only in day-of-month and day-of-week")
		}
		return nil
	}
	if strings.Count(s, "#") > 1 {
		return errors.New("# may appear once (one nth-weekday expression per field)")
	}
	for _, item := range strings.Split(s, ",") {
		if err := f.item(item); err != nil {
			return err
		}
	}
	return nil
}

// item checks one comma-separated element: *, a value, a range a-b, an increment (*|a|a-b)/n, or
// the field's special forms (L, LW, nW in day-of-month; L, nL, n#k in day-of-week).
func (f cronField) item(s string) error {
	if s == "" {
		return errors.New("empty element")
	}
	switch {
	case strings.Contains(f.extra, "W") && (s == "L" || s == "LW"):
		return nil
	case strings.Contains(f.extra, "W") && strings.HasSuffix(s, "W"):
		return f.value(strings.TrimSuffix(s, "W"))
	case strings.Contains(f.extra, "#") && strings.Contains(s, "#"):
		day, nth, _ := strings.Cut(s, "#")
		if err := f.value(day); err != nil {
			return err
		}
		if n, err := strconv.Atoi(nth); err != nil || n < 1 || n > 5 {
			return fmt.Errorf("#%s: want the 1st to 5th weekday of the month", nth)
		}
		return nil
	case strings.Contains(f.extra, "#") && s == "L":
		return nil
	case strings.Contains(f.extra, "#") && strings.HasSuffix(s, "L"):
		return f.value(strings.TrimSuffix(s, "L"))
	}
	base, step, stepped := strings.Cut(s, "/")
	if stepped {
		if n, err := strconv.Atoi(step); err != nil || n < 1 {
			return fmt.Errorf("increment %q: want a positive whole number", step)
		}
	}
	if base == "*" {
		return nil
	}
	if lo, hi, isRange := strings.Cut(base, "-"); isRange {
		if err := f.value(lo); err != nil {
			return err
		}
		return f.value(hi)
	}
	return f.value(base)
}

func (f cronField) value(s string) error {
	for _, n := range f.names {
		if strings.EqualFold(s, n) {
			return nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		if len(f.names) > 0 {
			return fmt.Errorf("%q: want %d-%d or %s-%s", s, f.min, f.max, f.names[0], f.names[len(f.names)-1])
		}
		return fmt.Errorf("%q: want %d-%d", s, f.min, f.max)
	}
	return nil
}
