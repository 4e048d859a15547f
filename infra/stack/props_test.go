package stack

import (
	"strings"
	"testing"
)

// validProps are the defaults for a source bucket: they pass Validate.
func validProps() Props { return Defaults(Props{SourceBucketName: "example-source"}) }

// TestValidateLifecycle: lifecycle settings S3 would refuse when CloudFormation puts the
// configuration are refused at synth time, naming the setting and S3's rule; settings S3
// accepts pass.
func TestValidateLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(l *Lifecycle)
		want string // "" = valid
	}{
		{"defaults", func(l *Lifecycle) {}, ""},
		{"no transitions", func(l *Lifecycle) {
			*l = Lifecycle{ExpireDays: 1, NoncurrentExpireDays: 1, AbortMultipartDays: 1, SmallObjects: "all_storage_classes_128K"}
		}, ""},
		{"Glacier on day 1 without Standard-IA", func(l *Lifecycle) { l.InfrequentAccessDays, l.GlacierDays, l.DeepArchiveDays = 0, 1, 2 }, ""},
		{"Glacier 30 days after Standard-IA", func(l *Lifecycle) { l.InfrequentAccessDays, l.GlacierDays, l.DeepArchiveDays = 30, 60, 61 }, ""},
		{"Deep Archive 30 days after Standard-IA", func(l *Lifecycle) { l.GlacierDays, l.DeepArchiveDays, l.ExpireDays = 0, 60, 61 }, ""},
		{"Standard-IA before 30 days", func(l *Lifecycle) { l.InfrequentAccessDays = 10 },
			"lifecycleInfrequentAccessDays: 10: S3 transitions current versions to STANDARD_IA no sooner than 30 days after creation"},
		{"Glacier less than 30 days after Standard-IA", func(l *Lifecycle) { l.GlacierDays = 45 },
			"lifecycleGlacierDays: 45: S3 refuses a rule that moves current versions on to GLACIER less than 30 days after their STANDARD_IA transition (lifecycleInfrequentAccessDays: 30"},
		{"Deep Archive less than 30 days after Standard-IA", func(l *Lifecycle) { l.GlacierDays, l.DeepArchiveDays = 0, 59 },
			"lifecycleDeepArchiveDays: 59: S3 refuses a rule that moves current versions on to DEEP_ARCHIVE less than 30 days"},
		{"Glacier before Standard-IA", func(l *Lifecycle) { l.InfrequentAccessDays, l.GlacierDays = 60, 40 },
			"lifecycleGlacierDays: 40: S3 refuses a rule that moves current versions on to GLACIER"},
		{"Deep Archive on Glacier's day", func(l *Lifecycle) { l.InfrequentAccessDays, l.GlacierDays, l.DeepArchiveDays = 0, 90, 90 },
			"lifecycleDeepArchiveDays: 90: S3 moves current versions from GLACIER to DEEP_ARCHIVE, never back: want more days than lifecycleGlacierDays (90)"},
		{"Deep Archive before Glacier", func(l *Lifecycle) { l.GlacierDays, l.DeepArchiveDays = 180, 90 },
			"lifecycleDeepArchiveDays: 90: S3 moves current versions from GLACIER to DEEP_ARCHIVE, never back"},
		{"expiration on the last transition's day", func(l *Lifecycle) { l.ExpireDays = 180 },
			"lifecycleExpireDays: 180: S3 requires the expiration of current versions after its last transition (DEEP_ARCHIVE, lifecycleDeepArchiveDays: 180)"},
		{"expiration before Standard-IA", func(l *Lifecycle) { l.GlacierDays, l.DeepArchiveDays, l.ExpireDays = 0, 0, 20 },
			"lifecycleExpireDays: 20: S3 requires the expiration of current versions after its last transition (STANDARD_IA"},
		{"noncurrent Standard-IA before 30 days", func(l *Lifecycle) { l.NoncurrentInfrequentAccessDays = 29 },
			"noncurrentInfrequentAccessDays: 29: S3 transitions noncurrent versions to STANDARD_IA no sooner than 30 days after becoming noncurrent"},
		{"noncurrent Glacier less than 30 days after Standard-IA", func(l *Lifecycle) { l.NoncurrentGlacierDays = 59 },
			"noncurrentGlacierDays: 59: S3 refuses a rule that moves noncurrent versions on to GLACIER less than 30 days after their STANDARD_IA transition (noncurrentInfrequentAccessDays: 30"},
		{"noncurrent Deep Archive before Glacier", func(l *Lifecycle) { l.NoncurrentDeepArchiveDays = 80 },
			"noncurrentDeepArchiveDays: 80: S3 moves noncurrent versions from GLACIER to DEEP_ARCHIVE, never back"},
		{"noncurrent expiration before the last transition", func(l *Lifecycle) { l.NoncurrentExpireDays = 90 },
			"noncurrentExpireDays: 90: S3 requires the expiration of noncurrent versions after its last transition (DEEP_ARCHIVE, noncurrentDeepArchiveDays: 180)"},
		{"negative days", func(l *Lifecycle) { l.NoncurrentGlacierDays = -1 }, "noncurrentGlacierDays: -1: want 0 (none)"},
		{"no multipart cleanup", func(l *Lifecycle) { l.AbortMultipartDays = 0 }, "abortMultipartDays: 0: want at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validProps()
			tc.edit(&p.Lifecycle)
			checkValidate(t, p, tc.want)
		})
	}
}

// TestValidateSchedule: schedule expressions and time zones EventBridge Scheduler would refuse
// are refused at synth time, naming the rule; those it accepts pass.
func TestValidateSchedule(t *testing.T) {
	for _, tc := range []struct {
		schedule, timeZone string
		want               string // "" = valid
	}{
		{"cron(0 2 * * ? *)", "UTC", ""},
		{"cron(30 1 ? * MON-FRI *)", "Europe/Berlin", ""},
		{"cron(0/15 * * * ? *)", "America/New_York", ""},
		{"cron(5,35 8-18/2 ? * 2-6 2026-2030)", "Asia/Kolkata", ""},
		{"cron(0 10 ? * 6L *)", "UTC", ""},
		{"cron(0 8 ? * 2#1 *)", "UTC", ""},
		{"cron(0 12 L * ? *)", "UTC", ""},
		{"cron(0 12 LW * ? *)", "UTC", ""},
		{"cron(0 12 15W JAN,JUL ? *)", "UTC", ""},
		{"rate(1 day)", "UTC", ""},
		{"rate(12 hours)", "UTC", ""},
		{"at(2027-01-01T02:00:00)", "Australia/Sydney", ""},
		{"0 2 * * *", "UTC", `schedule: "0 2 * * *": want cron(...), rate(...) or at(...)`},
		{"cron(0 2 * * * *)", "UTC", "exactly one of day-of-month and day-of-week must be ?"},
		{"cron(0 2 ? * ? *)", "UTC", "exactly one of day-of-month and day-of-week must be ?"},
		{"cron(0 2 * * ?)", "UTC", "5 fields separated by single spaces, want 6"},
		{"cron(0  2 * * ? *)", "UTC", "7 fields separated by single spaces, want 6"},
		{"cron(60 2 * * ? *)", "UTC", `minutes "60": "60": want 0-59`},
		{"cron(0 24 * * ? *)", "UTC", `hours "24": "24": want 0-23`},
		{"cron(0 L * * ? *)", "UTC", `hours "L"`},
		{"cron(0 2 32 * ? *)", "UTC", `day-of-month "32": "32": want 1-31`},
		{"cron(0 2 ? 13 MON *)", "UTC", `month "13": "13": want 1-12 or JAN-DEC`},
		{"cron(0 2 ? * 8 *)", "UTC", `day-of-week "8": "8": want 1-7 or SUN-SAT`},
		{"cron(0 2 ? * MON#6 *)", "UTC", "#6: want the 1st to 5th weekday of the month"},
		{"cron(0 2 ? * 1#1,2#2 *)", "UTC", "# may appear once"},
		{"cron(0 2 * * ? 1969)", "UTC", `year "1969": "1969": want 1970-2199`},
		{"cron(0/0 2 * * ? *)", "UTC", `increment "0": want a positive whole number`},
		{"cron(0 2 ?W * ? *)", "UTC", `day-of-month "?W"`},
		{"rate(0 minutes)", "UTC", "a rate's value must be a positive whole number"},
		{"rate(2 weeks)", "UTC", "a rate expression is rate(value unit), unit minute(s), hour(s) or day(s)"},
		{"rate(5minutes)", "UTC", "a rate expression is rate(value unit)"},
		{"at(2027-02-30T02:00:00)", "UTC", "not a date and time"},
		{"at(2027-01-01 02:00:00)", "UTC", "a one-time schedule is at(yyyy-mm-ddThh:mm:ss)"},
		{"cron(0 2 * * ? *)", "Mars/Olympus_Mons", `scheduleTimeZone: "Mars/Olympus_Mons" is not in the IANA time zone database`},
		{"cron(0 2 * * ? *)", "Local", `scheduleTimeZone: "Local": want an IANA time zone name`},
		{"cron(0 2 * * ? *)", "CET ", `scheduleTimeZone: "CET ": want an IANA time zone name`},
	} {
		t.Run(tc.schedule+" "+tc.timeZone, func(t *testing.T) {
			p := validProps()
			p.Schedule, p.ScheduleTimeZone = tc.schedule, tc.timeZone
			checkValidate(t, p, tc.want)
		})
	}
}

func checkValidate(t *testing.T, p Props, want string) {
	t.Helper()
	err := p.Validate()
	switch {
	case want == "" && err != nil:
		t.Errorf("Validate: %v, want nil (AWS accepts this)", err)
	case want != "" && err == nil:
		t.Errorf("Validate: nil, want an error containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("Validate: %v\nwant an error containing %q", err, want)
	}
}
