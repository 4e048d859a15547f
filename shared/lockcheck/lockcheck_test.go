package lockcheck

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateLock(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		mode                  string
		days, noncurrent, exp int
		// want lists what the error must name, in order; none means valid.
		want []string
	}{
		{name: "compliance, history kept longer than locked", mode: Compliance, days: 30, noncurrent: 365, exp: 2555},
		{name: "governance, expiry equal to retention", mode: Governance, days: 365, noncurrent: 365, exp: 0},
		{name: "no lifecycle expiry at all", mode: Compliance, days: MaxDays},
		{name: "current-version expiry shorter than retention only adds delete markers", mode: Compliance, days: 90, noncurrent: 0, exp: 30},
		{name: "shortest retention", mode: Governance, days: MinDays, noncurrent: 1},
		{name: "noncurrent expiry shorter than retention", mode: Compliance, days: 365, noncurrent: 90,
			want: []string{"noncurrentExpireDays: 90 is shorter than the Object Lock retention of 365 days", "at least 365"}},
		{name: "noncurrent expiry one day short", mode: Governance, days: 31, noncurrent: 30, want: []string{"noncurrentExpireDays: 30 is shorter"}},
		{name: "lower-case mode", mode: "compliance", days: 1, want: []string{`objectLockMode: "compliance": want GOVERNANCE`}},
		{name: "no mode", mode: "", days: 1, want: []string{`objectLockMode: ""`}},
		{name: "legal hold is not a mode", mode: "LEGAL_HOLD", days: 1, want: []string{"objectLockMode"}},
		{name: "zero days", mode: Compliance, days: 0, want: []string{"objectLockDays: 0: want 1 to 36500"}},
		{name: "too many days", mode: Compliance, days: MaxDays + 1, want: []string{"objectLockDays: 36501"}},
		{name: "negative expiries", mode: Compliance, days: 1, noncurrent: -1, exp: -2,
			want: []string{"noncurrentExpireDays: -1", "lifecycleExpireDays: -2"}},
		{name: "every problem named", mode: "x", days: 0, noncurrent: -1,
			want: []string{"objectLockDays: 0", "objectLockMode", "noncurrentExpireDays: -1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertRefusal(t, ValidateLock(tc.mode, tc.days, tc.noncurrent, tc.exp), tc.want)
		})
	}
}

func TestValidateLockYears(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		mode                   string
		years, noncurrent, exp int
		want                   []string
	}{
		{name: "one year, expiry covers a leap year", mode: Compliance, years: 1, noncurrent: 366},
		{name: "one year, 365 days can fall short by the leap day", mode: Compliance, years: 1, noncurrent: 365,
			want: []string{"noncurrentExpireDays: 365 is shorter than the Object Lock retention of 1 years (up to 366 days)"}},
		{name: "seven years", mode: Governance, years: 7, noncurrent: 2557},
		{name: "seven years, a day short", mode: Governance, years: 7, noncurrent: 2556, want: []string{"at least 2557"}},
		{name: "hundred years", mode: Compliance, years: MaxYears},
		{name: "too many years", mode: Compliance, years: 101, want: []string{"objectLockYears: 101: want 1 to 100"}},
		{name: "zero years", mode: Compliance, years: 0, noncurrent: 10, want: []string{"objectLockYears: 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertRefusal(t, ValidateLockYears(tc.mode, tc.years, tc.noncurrent, tc.exp), tc.want)
		})
	}
}

func TestMaxDaysIn(t *testing.T) {
	for years, want := range map[int]int{0: 0, 1: 366, 3: 1096, 4: 1461, 5: 1827, 100: 36525} {
		if got := MaxDaysIn(years); got != want {
			t.Errorf("MaxDaysIn(%d) = %d, want %d", years, got, want)
		}
	}
}

func assertRefusal(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("refused valid settings: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v does not wrap ErrInvalid", err)
	}
	msg, at := err.Error(), 0
	for _, w := range want {
		i := strings.Index(msg[at:], w)
		if i < 0 {
			t.Fatalf("error %q does not name %q (in order)", msg, w)
		}
		at += i + len(w)
	}
}
