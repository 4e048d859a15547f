package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"

	"github.com/bucketvault/bucketvault/shared/filter"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/lister"
	"github.com/bucketvault/bucketvault/shared/lockcheck"
	"github.com/bucketvault/bucketvault/shared/notify"
	"github.com/bucketvault/bucketvault/statemachine/console/oidcauth"
)

// Props configures a BackupStack. The zero value of a field means its default (see Defaults);
// PropsFromContext reads them from CDK context, where README.md ("Deploy to AWS") lists each and infra/README.md ("Settings") documents it.
type Props struct {
	awscdk.StackProps

	// NamePrefix names the functions (<prefix>-lister, …), the state machine (<prefix>-backup),
	// the schedule group and the alarms, so that two deployments in one account and Region
	// differ by prefix.
	NamePrefix string
	// SourceBucketName is the existing bucket to back up, imported by name. Required.
	SourceBucketName string
	// BackupBucketName and RunBucketName name the buckets the stack creates; empty lets
	// CloudFormation generate unique names.
	BackupBucketName string
	RunBucketName    string
	// BackupKMS encrypts the backup bucket with a customer-managed KMS key (bucket keys on)
	// instead of SSE-S3. With SSE-KMS, S3 ETags are no longer MD5s of the content; the ETag index
	// in the run bucket (shared/etagindex) keeps change detection incremental.
	BackupKMS bool
	// Lifecycle is the backup bucket's lifecycle.
	Lifecycle Lifecycle
	// ObjectLockMode, when set (GOVERNANCE or COMPLIANCE), turns on S3 Object Lock for the backup
	// bucket with a default retention of ObjectLockDays or ObjectLockYears (exactly one): every
	// version written is locked for that long (infra/README.md "Immutable backups").
	ObjectLockMode                  string
	ObjectLockDays, ObjectLockYears int
	// RunResultsExpiryDays expires the short-lived work files (work/: batches, outcomes, thaw
	// lists) and the Distributed Map results (map-results/); RunRecordsExpiryDays the lasting
	// records under runs/ (reports, histories).
	RunResultsExpiryDays int
	RunRecordsExpiryDays int
	// Filters are the deployment's backup filters (package shared/filter's JSON: include, exclude,
	// deleteExcluded), the lister's FILTERS; an execution's "filters" replaces them for one run.
	Filters string
	// Destinations are further destinations every backup also writes (the destinations
	// setting's JSON array, DestinationSetting; destinations.go): a bucket the app creates in
	// another Region, an existing bucket (another account's), or another provider's.
	Destinations string
	// RestoreTargets are the buckets the restore state machine may write; empty means the
	// source bucket. Only the restore copier's role can write to them.
	RestoreTargets []string
	// AllowExactRollback lets a restore be exact ("exact": true): it also removes, with a delete
	// marker, every object in the selection that the backup did not hold at the moment. Only
	// then does the restore copier's role get s3:DeleteObject on the restore targets (and the
	// planner's s3:GetBucketVersioning: an exact restore needs a versioned target).
	AllowExactRollback bool

	// Schedule is an EventBridge Scheduler expression, evaluated in ScheduleTimeZone (an IANA
	// name). ScheduleDisabled creates the schedule disabled.
	Schedule         string
	ScheduleTimeZone string
	ScheduleDisabled bool
	// VerifySchedule runs a restore drill (the verify state machine: a sample of the backup
	// checked against the source) on this Scheduler expression, in ScheduleTimeZone;
	// VerifyScheduleDisabled creates it disabled.
	VerifySchedule         string
	VerifyScheduleDisabled bool
	// AlarmEmail, when set, subscribes an address to the alarm topic.
	AlarmEmail string
	// Notifications (infra/README.md "Notifications"): every run's summary goes to the notify
	// topic (NotifyEmail subscribes an address), to NotifyURLs (webhooks and chat URLs; ones
	// with credentials belong in the Secrets Manager secret NotifyURLsSecret instead, read at
	// run time) and to the HeartbeatURL dead-man's switch. NotifyOn is always, failure or change.
	NotifyOn, NotifyEmail, NotifyURLs, NotifyURLsSecret, HeartbeatURL string
	// SilenceHours raises the "no successful backup" alarm when no backup of the whole bucket
	// has succeeded for this many hours (missing data counts as breaching): 26 for a daily
	// schedule; 1–168.
	SilenceHours int
	// LogRetentionDays applies to the functions' and the state machine's log groups. It must
	// be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, …).
	LogRetentionDays int
	// StateMachineLogLevel is ALL, ERROR, FATAL or OFF.
	StateMachineLogLevel string
	// The backup guards (package shared/guard): a run trips the deletion guard when it would mark
	// more than MaxDeletePercent of the backup's current objects deleted and more than
	// DeleteGuardFloor objects; the change guard when more than MaxChangePercent of them and more
	// than ChangeGuardFloor objects changed. Zero means the default (guard.Default…).
	MaxDeletePercent, MaxChangePercent int
	DeleteGuardFloor, ChangeGuardFloor int
	// ArchivedSources is what a backup does with a new or changed source object in GLACIER or
	// DEEP_ARCHIVE: "skip" (name it in the report and go on) or "fail" (a named failure).
	ArchivedSources string
	// ListConcurrency is how many key-space ranges of a big source are listed at once
	// (LISTER_CONCURRENCY; statemachine/README.md "Listing in key-space ranges"): each uses up to 3
	// concurrent Lambda executions of the account's (1,000 by default).
	ListConcurrency int
	// The restore console is deployed unless ConsoleDisabled (infra/README.md "The restore console"): an API
	// Gateway HTTP API in front of a Lambda function, signing people in through a Cognito user
	// pool the stack creates (no self sign-up: an administrator adds people). Members of
	// ConsoleRestoreGroup may restore; every other signed-in person may browse and download.
	// ConsoleDomainPrefix is the Cognito sign-in domain's prefix (<prefix>.auth.<region>.
	// amazoncognito.com; unique in the Region; empty: <NamePrefix>-<account>). ConsoleAdminEmail,
	// when set, creates that user in the restore group (Cognito e-mails a temporary password).
	ConsoleDisabled                                             bool
	ConsoleDomainPrefix, ConsoleRestoreGroup, ConsoleAdminEmail string
	// Memory of each function in MB (the restore copier is sized as the copier).
	ListerMemoryMB, CopierMemoryMB, ReporterMemoryMB, PlannerMemoryMB, ConsoleMemoryMB int

	// AssetDir holds <function>.zip for each function, as `make build` writes them
	// (<repo>/build). Empty means DefaultAssetDir().
	AssetDir string
}

// Lifecycle is the backup bucket's lifecycle in days; 0 leaves a transition or expiry out.
type Lifecycle struct {
	// Current versions.
	InfrequentAccessDays, GlacierDays, DeepArchiveDays, ExpireDays int
	// Noncurrent versions (the point-in-time history), counted from when they became
	// noncurrent.
	NoncurrentInfrequentAccessDays, NoncurrentGlacierDays, NoncurrentDeepArchiveDays, NoncurrentExpireDays int
	// AbortMultipartDays aborts incomplete multipart uploads (a copier killed mid-copy).
	AbortMultipartDays int
	// SmallObjects is S3's TransitionDefaultMinimumObjectSize: "all_storage_classes_128K"
	// (objects under 128 KB are never transitioned: their per-object transition fee and
	// archive overhead exceed the saving) or "varies_by_storage_class" (they may go to Glacier
	// and Deep Archive, not to Standard-IA).
	SmallObjects string
}

// Function names, relative to NamePrefix; statemachine/localrun uses the same with the default prefix.
const (
	Lister        = "lister"
	Copier        = "copier"
	Reporter      = "reporter"
	Planner       = "restore-planner"
	RestoreCopier = "restore-copier"
	Console       = "console"
	Verifier      = "verifier"
	// BackupStateMachine and RestoreStateMachine are the state machines' names relative to NamePrefix.
	BackupStateMachine  = "backup"
	RestoreStateMachine = "restore"
	VerifyStateMachine  = "verify"
)

// Functions are the functions the stack deploys, in order.
var Functions = []string{Lister, Copier, Reporter, Planner, RestoreCopier, Console, Verifier}

// Asset is the make build zip a function runs: the restore copier runs the copier's code.
func Asset(function string) string {
	switch function {
	case RestoreCopier:
		return Copier
	case Planner:
		return "planner"
	}
	return function
}

// Defaults returns p with every zero field set to its default.
func Defaults(p Props) Props {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defs := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	defs(&p.NamePrefix, "bucketvault")
	defs(&p.Schedule, "cron(0 2 * * ? *)")
	defs(&p.VerifySchedule, DefaultVerifySchedule)
	defs(&p.ScheduleTimeZone, "UTC")
	defs(&p.StateMachineLogLevel, "ERROR")
	def(&p.RunResultsExpiryDays, 7)
	def(&p.RunRecordsExpiryDays, 365)
	def(&p.LogRetentionDays, 90)
	def(&p.MaxDeletePercent, guard.DefaultMaxDeletePercent)
	def(&p.DeleteGuardFloor, guard.DefaultDeleteFloor)
	def(&p.MaxChangePercent, guard.DefaultMaxChangePercent)
	def(&p.ChangeGuardFloor, guard.DefaultChangeFloor)
	defs(&p.ArchivedSources, lister.DefaultArchivedSources)
	def(&p.ListConcurrency, lister.DefaultListConcurrency)
	def(&p.ListerMemoryMB, 256)
	def(&p.CopierMemoryMB, 1024)
	def(&p.ReporterMemoryMB, 512)
	def(&p.PlannerMemoryMB, 512)
	def(&p.ConsoleMemoryMB, 512)
	def(&p.SilenceHours, DefaultSilenceHours)
	defs(&p.NotifyOn, notify.OnAlways)
	defs(&p.ConsoleRestoreGroup, oidcauth.DefaultRestoreGroup)
	if len(p.RestoreTargets) == 0 && p.SourceBucketName != "" {
		p.RestoreTargets = []string{p.SourceBucketName}
	}
	if p.Lifecycle == (Lifecycle{}) {
		p.Lifecycle = DefaultLifecycle()
	}
	defs(&p.Lifecycle.SmallObjects, "all_storage_classes_128K")
	return p
}

// DefaultLifecycle is the recipe's lifecycle for current versions, plus transitions and an
// expiry for noncurrent versions (otherwise the history kept for point-in-time restore grows
// forever) and a cleanup of incomplete multipart uploads.
func DefaultLifecycle() Lifecycle {
	return Lifecycle{
		InfrequentAccessDays: 30, GlacierDays: 90, DeepArchiveDays: 180, ExpireDays: 2555,
		NoncurrentInfrequentAccessDays: 30, NoncurrentGlacierDays: 90, NoncurrentDeepArchiveDays: 180, NoncurrentExpireDays: 365,
		AbortMultipartDays: 7,
		SmallObjects:       "all_storage_classes_128K",
	}
}

var (
	namePrefixRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	bucketNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	// Cognito's rules for a domain prefix, a group name and (loosely) an e-mail address.
	domainPrefixRe   = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	reservedInPrefix = regexp.MustCompile(`aws|amazon|cognito`)
	groupNameRe      = regexp.MustCompile(`^[\p{L}\p{M}\p{S}\p{N}\p{P}]{1,128}$`)
	emailRe          = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// Validate reports every setting that cannot work, each naming its context key and the rule it breaks.
func (p Props) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if !namePrefixRe.MatchString(p.NamePrefix) {
		bad("namePrefix", "%q: want lower-case letters, digits and '-', starting with a letter, at most 40", p.NamePrefix)
	}
	if p.SourceBucketName == "" {
		bad("sourceBucketName", "required: the name of the existing bucket to back up (make deploy SOURCE_BUCKET_NAME=NAME, or cdk -c sourceBucketName=NAME)")
	} else if !bucketNameRe.MatchString(p.SourceBucketName) {
		bad("sourceBucketName", "%q is not a valid bucket name", p.SourceBucketName)
	}
	for key, name := range map[string]string{"backupBucketName": p.BackupBucketName, "runBucketName": p.RunBucketName} {
		if name != "" && !bucketNameRe.MatchString(name) {
			bad(key, "%q is not a valid bucket name", name)
		}
	}
	if err := ValidateSchedule(p.Schedule); err != nil {
		bad("schedule", "%v", err)
	}
	if err := ValidateSchedule(p.VerifySchedule); err != nil {
		bad("verifySchedule", "%v", err)
	}
	if err := ValidateTimeZone(p.ScheduleTimeZone); err != nil {
		bad("scheduleTimeZone", "%v", err)
	}
	switch p.StateMachineLogLevel {
	case "ALL", "ERROR", "FATAL", "OFF":
	default:
		bad("stateMachineLogLevel", "%q: want ALL, ERROR, FATAL or OFF", p.StateMachineLogLevel)
	}
	if !validRetention[p.LogRetentionDays] {
		bad("logRetentionDays", "%d is not a CloudWatch Logs retention", p.LogRetentionDays)
	}
	for key, pct := range map[string]int{"maxDeletePercent": p.MaxDeletePercent, "maxChangePercent": p.MaxChangePercent} {
		if pct < 0 || pct > 100 {
			bad(key, "%d: want 0–100", pct)
		}
	}
	for key, floor := range map[string]int{"deleteGuardFloor": p.DeleteGuardFloor, "changeGuardFloor": p.ChangeGuardFloor} {
		if floor < guard.MinFloor {
			bad(key, "%d: want at least %d (one deletion or change never trips a guard)", floor, guard.MinFloor)
		}
	}
	if p.ArchivedSources != lister.ArchivedSkip && p.ArchivedSources != lister.ArchivedFail {
		bad("archivedSources", "%q: want %s or %s", p.ArchivedSources, lister.ArchivedSkip, lister.ArchivedFail)
	}
	if p.ListConcurrency < 1 || p.ListConcurrency > lister.MaxListConcurrency {
		bad("listConcurrency", "%d: want 1–%d (a Map Run's concurrent child executions)", p.ListConcurrency, lister.MaxListConcurrency)
	}
	for _, t := range p.RestoreTargets {
		if !bucketNameRe.MatchString(t) || (t != "" && (t == p.BackupBucketName || t == p.RunBucketName)) {
			bad("restoreTargets", "%q is not a valid restore target (a bucket name other than the backup and run buckets)", t)
		}
	}
	for key, mb := range map[string]int{"listerMemoryMB": p.ListerMemoryMB, "copierMemoryMB": p.CopierMemoryMB, "reporterMemoryMB": p.ReporterMemoryMB, "plannerMemoryMB": p.PlannerMemoryMB, "consoleMemoryMB": p.ConsoleMemoryMB} {
		if mb < 128 || mb > 10240 {
			bad(key, "%d: want 128–10240", mb)
		}
	}
	if p.NotifyOn != notify.OnAlways && p.NotifyOn != notify.OnFailure && p.NotifyOn != notify.OnChange {
		bad("notifyOn", "%q: want %s, %s or %s", p.NotifyOn, notify.OnAlways, notify.OnFailure, notify.OnChange)
	}
	if p.SilenceHours < 1 || p.SilenceHours > MaxSilenceHours {
		bad("silenceHours", "%d: want 1–%d (an hourly alarm period, and CloudWatch evaluates at most 7 days)", p.SilenceHours, MaxSilenceHours)
	}
	if p.NotifyEmail != "" && !emailRe.MatchString(p.NotifyEmail) {
		bad("notifyEmail", "%q is not an e-mail address", p.NotifyEmail)
	}
	// The URLs are not repeated in the messages: they may hold credentials.
	for i, u := range strings.Split(p.NotifyURLs, ",") {
		if u = strings.TrimSpace(u); u != "" && !strings.Contains(u, "://") {
			bad("notifyUrls", "entry %d is not a URL (scheme://…)", i+1)
		}
	}
	if p.HeartbeatURL != "" && !strings.HasPrefix(p.HeartbeatURL, "https://") && !strings.HasPrefix(p.HeartbeatURL, "http://") {
		bad("heartbeatUrl", "want an http(s) URL")
	}
	if p.ConsoleDomainPrefix != "" && (!domainPrefixRe.MatchString(p.ConsoleDomainPrefix) || reservedInPrefix.MatchString(p.ConsoleDomainPrefix)) {
		bad("consoleDomainPrefix", "%q: want lower-case letters, digits and '-', 1–63, not starting or ending with '-', without aws, amazon or cognito", p.ConsoleDomainPrefix)
	}
	if !groupNameRe.MatchString(p.ConsoleRestoreGroup) {
		bad("consoleRestoreGroup", "%q: want 1–128 letters, digits and _+=,.@-", p.ConsoleRestoreGroup)
	}
	if p.ConsoleAdminEmail != "" && !emailRe.MatchString(p.ConsoleAdminEmail) {
		bad("consoleAdminEmail", "%q is not an e-mail address", p.ConsoleAdminEmail)
	}
	if p.ConsoleDisabled && (p.ConsoleDomainPrefix != "" || p.ConsoleAdminEmail != "") {
		bad("console", "false, but consoleDomainPrefix or consoleAdminEmail is set: they configure the console")
	}
	if p.RunResultsExpiryDays < 1 || p.RunRecordsExpiryDays < p.RunResultsExpiryDays {
		bad("runRecordsExpiryDays", "want runResultsExpiryDays ≥ 1 and runRecordsExpiryDays ≥ runResultsExpiryDays, got %d and %d", p.RunResultsExpiryDays, p.RunRecordsExpiryDays)
	}
	if err := p.Lifecycle.validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := filter.Parse([]byte(p.Filters)); err != nil {
		bad("filters", "%v", err)
	}
	if err := p.validateLock(); err != nil {
		errs = append(errs, err)
	}
	if _, err := p.destinationSettings(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateLock checks the Object Lock settings against each other and the lifecycle
// (shared/lockcheck: a noncurrent-version expiry shorter than the retention, which S3 would not
// honour, is refused).
func (p Props) validateLock() error {
	switch {
	case p.ObjectLockMode == "" && (p.ObjectLockDays != 0 || p.ObjectLockYears != 0):
		return errors.New("objectLockMode: not set, but objectLockDays or objectLockYears is: set GOVERNANCE or COMPLIANCE to turn Object Lock on")
	case p.ObjectLockMode == "":
		return nil
	case (p.ObjectLockDays == 0) == (p.ObjectLockYears == 0):
		return fmt.Errorf("objectLockDays, objectLockYears: exactly one is needed with objectLockMode %s (the default retention)", p.ObjectLockMode)
	case p.ObjectLockYears != 0:
		return lockcheck.ValidateLockYears(p.ObjectLockMode, p.ObjectLockYears, p.Lifecycle.NoncurrentExpireDays, p.Lifecycle.ExpireDays)
	}
	return lockcheck.ValidateLock(p.ObjectLockMode, p.ObjectLockDays, p.Lifecycle.NoncurrentExpireDays, p.Lifecycle.ExpireDays)
}

func (l Lifecycle) validate() error {
	var errs []error
	switch l.SmallObjects {
	case "all_storage_classes_128K", "varies_by_storage_class":
	default:
		errs = append(errs, fmt.Errorf("transitionDefaultMinimumObjectSize: %q: want all_storage_classes_128K or varies_by_storage_class", l.SmallObjects))
	}
	errs = append(errs, lifecycleRule("current versions", "days after creation",
		tier{"lifecycleInfrequentAccessDays", "STANDARD_IA", l.InfrequentAccessDays},
		tier{"lifecycleGlacierDays", "GLACIER", l.GlacierDays},
		tier{"lifecycleDeepArchiveDays", "DEEP_ARCHIVE", l.DeepArchiveDays},
		tier{"lifecycleExpireDays", expiration, l.ExpireDays})...)
	errs = append(errs, lifecycleRule("noncurrent versions", "days after becoming noncurrent",
		tier{"noncurrentInfrequentAccessDays", "STANDARD_IA", l.NoncurrentInfrequentAccessDays},
		tier{"noncurrentGlacierDays", "GLACIER", l.NoncurrentGlacierDays},
		tier{"noncurrentDeepArchiveDays", "DEEP_ARCHIVE", l.NoncurrentDeepArchiveDays},
		tier{"noncurrentExpireDays", expiration, l.NoncurrentExpireDays})...)
	if l.AbortMultipartDays < 1 {
		errs = append(errs, fmt.Errorf("abortMultipartDays: %d: want at least 1", l.AbortMultipartDays))
	}
	return errors.Join(errs...)
}

// S3's rules for the transitions of one lifecycle rule ("Transitioning objects using Amazon S3
// Lifecycle", Constraints; and the PutBucketLifecycleConfiguration errors they cause).
const (
	// MinDaysToInfrequentAccess: S3 moves an object to STANDARD_IA only after it spent this
	// many days in STANDARD (current versions: since creation; noncurrent: since it became
	// noncurrent).
	MinDaysToInfrequentAccess = 30
	// MinDaysInInfrequentAccess: one rule may not move objects on from STANDARD_IA to GLACIER or
	// DEEP_ARCHIVE sooner than this after its STANDARD_IA transition (STANDARD_IA's minimum
	// storage duration).
	MinDaysInInfrequentAccess = 30
)

// expiration stands for the expiry in a rule's tiers.
const expiration = "expiration"

// tier is one transition (to class) or the expiration of a lifecycle rule; days 0 leaves it out.
type tier struct {
	key, class string
	days       int
}

// lifecycleRule checks the tiers of one S3 lifecycle rule, in order (STANDARD_IA, GLACIER,
// DEEP_ARCHIVE, expiration), against the rules S3 enforces when the configuration is put, and
// names the setting and the rule broken:
//   - STANDARD_IA no sooner than 30 days (MinDaysToInfrequentAccess);
//   - GLACIER and DEEP_ARCHIVE at least 30 days after STANDARD_IA in the same rule
//     (MinDaysInInfrequentAccess);
//   - the waterfall: STANDARD_IA before GLACIER before DEEP_ARCHIVE (an object never goes back
//     from DEEP_ARCHIVE to GLACIER, nor from GLACIER to STANDARD_IA), each on a day of its own;
//   - the expiration after the last transition.
func lifecycleRule(rule, counted string, tiers ...tier) []error {
	var errs []error
	var prev, ia *tier
	for i := range tiers {
		t := &tiers[i]
		switch {
		case t.days < 0:
			errs = append(errs, fmt.Errorf("%s: %d: want 0 (none) or a number of %s (%s)", t.key, t.days, counted, rule))
			continue
		case t.days == 0:
			continue
		}
		if t.class == "STANDARD_IA" && t.days < MinDaysToInfrequentAccess {
			errs = append(errs, fmt.Errorf("%s: %d: S3 transitions %s to STANDARD_IA no sooner than %d %s (minimum days for a transition to Standard-IA)",
				t.key, t.days, rule, MinDaysToInfrequentAccess, counted))
		}
		switch {
		case prev != nil && t.class == expiration && t.days <= prev.days:
			errs = append(errs, fmt.Errorf("%s: %d: S3 requires the expiration of %s after its last transition (%s, %s: %d)",
				t.key, t.days, rule, prev.class, prev.key, prev.days))
		case ia != nil && t.class != expiration && t.days < ia.days+MinDaysInInfrequentAccess:
			errs = append(errs, fmt.Errorf("%s: %d: S3 refuses a rule that moves %s on to %s less than %d days after their STANDARD_IA transition (%s: %d; Standard-IA's minimum storage duration): want at least %d",
				t.key, t.days, rule, t.class, MinDaysInInfrequentAccess, ia.key, ia.days, ia.days+MinDaysInInfrequentAccess))
		case prev != nil && t.class != expiration && t.days <= prev.days:
			errs = append(errs, fmt.Errorf("%s: %d: S3 moves %s from %s to %s, never back: want more days than %s (%d)",
				t.key, t.days, rule, prev.class, t.class, prev.key, prev.days))
		}
		if t.class == "STANDARD_IA" {
			ia = t
		}
		prev = t
	}
	return errs
}

var validRetention = map[int]bool{1: true, 3: true, 5: true, 7: true, 14: true, 30: true, 60: true, 90: true, 120: true,
	150: true, 180: true, 365: true, 400: true, 545: true, 731: true, 1096: true, 1827: true, 2192: true, 2557: true,
	2922: true, 3288: true, 3653: true}

// Context keys, as listed in README.md ("Deploy to AWS") and documented in infra/README.md ("Settings").
var contextKeys = []string{
	"namePrefix", "sourceBucketName", "backupBucketName", "runBucketName", "backupKms",
	"lifecycleInfrequentAccessDays", "lifecycleGlacierDays", "lifecycleDeepArchiveDays", "lifecycleExpireDays",
	"noncurrentInfrequentAccessDays", "noncurrentGlacierDays", "noncurrentDeepArchiveDays", "noncurrentExpireDays",
	"abortMultipartDays", "transitionDefaultMinimumObjectSize", "runResultsExpiryDays", "runRecordsExpiryDays",
	"schedule", "scheduleTimeZone", "scheduleEnabled", "alarmEmail", "logRetentionDays", "stateMachineLogLevel",
	"maxDeletePercent", "deleteGuardFloor", "maxChangePercent", "changeGuardFloor", "archivedSources", "listConcurrency", "listerMemoryMB", "copierMemoryMB", "reporterMemoryMB", "plannerMemoryMB", "restoreTargets", "assetDir",
	"console", "consoleDomainPrefix", "consoleRestoreGroup", "consoleAdminEmail", "consoleMemoryMB", "allowExactRollback",
	"notifyOn", "notifyEmail", "notifyUrls", "notifyUrlsSecret", "heartbeatUrl", "silenceHours",
	"objectLockMode", "objectLockDays", "objectLockYears", "filters", "destinations", "verifySchedule", "verifyScheduleEnabled",
}

// ContextKeys returns the settings PropsFromContext reads.
func ContextKeys() []string { return append([]string(nil), contextKeys...) }

// PropsFromContext reads the settings from CDK context (cdk.json, or -c key=value on the
// command line, where every value arrives as a string), applies the defaults and validates.
func PropsFromContext(node constructs.Node) (Props, error) {
	c := ctxReader{node: node}
	var p Props
	p.NamePrefix = c.str("namePrefix")
	p.SourceBucketName = c.str("sourceBucketName")
	p.BackupBucketName = c.str("backupBucketName")
	p.RunBucketName = c.str("runBucketName")
	p.BackupKMS = c.boolean("backupKms", false)
	lifecycle := DefaultLifecycle()
	c.intInto(&lifecycle.InfrequentAccessDays, "lifecycleInfrequentAccessDays")
	c.intInto(&lifecycle.GlacierDays, "lifecycleGlacierDays")
	c.intInto(&lifecycle.DeepArchiveDays, "lifecycleDeepArchiveDays")
	c.intInto(&lifecycle.ExpireDays, "lifecycleExpireDays")
	c.intInto(&lifecycle.NoncurrentInfrequentAccessDays, "noncurrentInfrequentAccessDays")
	c.intInto(&lifecycle.NoncurrentGlacierDays, "noncurrentGlacierDays")
	c.intInto(&lifecycle.NoncurrentDeepArchiveDays, "noncurrentDeepArchiveDays")
	c.intInto(&lifecycle.NoncurrentExpireDays, "noncurrentExpireDays")
	c.intInto(&lifecycle.AbortMultipartDays, "abortMultipartDays")
	if v := c.str("transitionDefaultMinimumObjectSize"); v != "" {
		lifecycle.SmallObjects = v
	}
	p.Lifecycle = lifecycle
	p.Filters = c.json("filters")
	p.Destinations = c.json("destinations")
	p.ObjectLockMode = c.str("objectLockMode")
	c.intInto(&p.ObjectLockDays, "objectLockDays")
	c.intInto(&p.ObjectLockYears, "objectLockYears")
	c.intInto(&p.RunResultsExpiryDays, "runResultsExpiryDays")
	c.intInto(&p.RunRecordsExpiryDays, "runRecordsExpiryDays")
	p.Schedule = c.str("schedule")
	p.ScheduleTimeZone = c.str("scheduleTimeZone")
	p.ScheduleDisabled = !c.boolean("scheduleEnabled", true)
	p.VerifySchedule = c.str("verifySchedule")
	p.VerifyScheduleDisabled = !c.boolean("verifyScheduleEnabled", true)
	p.AlarmEmail = c.str("alarmEmail")
	p.NotifyOn = c.str("notifyOn")
	p.NotifyEmail = c.str("notifyEmail")
	p.NotifyURLs = c.str("notifyUrls")
	p.NotifyURLsSecret = c.str("notifyUrlsSecret")
	p.HeartbeatURL = c.str("heartbeatUrl")
	c.intInto(&p.SilenceHours, "silenceHours")
	c.intInto(&p.LogRetentionDays, "logRetentionDays")
	p.StateMachineLogLevel = c.str("stateMachineLogLevel")
	c.intInto(&p.MaxDeletePercent, "maxDeletePercent")
	c.intInto(&p.DeleteGuardFloor, "deleteGuardFloor")
	c.intInto(&p.MaxChangePercent, "maxChangePercent")
	c.intInto(&p.ChangeGuardFloor, "changeGuardFloor")
	p.ArchivedSources = c.str("archivedSources")
	c.intInto(&p.ListConcurrency, "listConcurrency")
	c.intInto(&p.ListerMemoryMB, "listerMemoryMB")
	c.intInto(&p.CopierMemoryMB, "copierMemoryMB")
	c.intInto(&p.ReporterMemoryMB, "reporterMemoryMB")
	c.intInto(&p.PlannerMemoryMB, "plannerMemoryMB")
	c.intInto(&p.ConsoleMemoryMB, "consoleMemoryMB")
	p.ConsoleDisabled = !c.boolean("console", true)
	p.AllowExactRollback = c.boolean("allowExactRollback", false)
	p.ConsoleDomainPrefix = c.str("consoleDomainPrefix")
	p.ConsoleRestoreGroup = c.str("consoleRestoreGroup")
	p.ConsoleAdminEmail = c.str("consoleAdminEmail")
	for _, t := range strings.Split(c.str("restoreTargets"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			p.RestoreTargets = append(p.RestoreTargets, t)
		}
	}
	p.AssetDir = c.str("assetDir")
	if err := errors.Join(c.errs...); err != nil {
		return Props{}, err
	}
	p = Defaults(p)
	if err := p.Validate(); err != nil {
		return Props{}, err
	}
	return p, nil
}

type ctxReader struct {
	node constructs.Node
	errs []error
}

func (c *ctxReader) raw(key string) any { return c.node.TryGetContext(&key) }

func (c *ctxReader) str(key string) string {
	switch v := c.raw(key).(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(v)
	default:
		c.errs = append(c.errs, fmt.Errorf("%s: want a string, got %v", key, v))
		return ""
	}
}

// json reads a JSON setting: a string holding JSON (-c key='{…}') or a value in cdk.json,
// returned as compact JSON ("" when unset).
func (c *ctxReader) json(key string) string {
	switch v := c.raw(key).(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: %v", key, err))
			return ""
		}
		return string(b)
	}
}

func (c *ctxReader) intInto(dst *int, key string) {
	switch v := c.raw(key).(type) {
	case nil:
	case float64:
		if v != float64(int(v)) {
			c.errs = append(c.errs, fmt.Errorf("%s: want a whole number, got %v", key, v))
			return
		}
		*dst = int(v)
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: want a whole number, got %q", key, v))
			return
		}
		*dst = n
	default:
		c.errs = append(c.errs, fmt.Errorf("%s: want a whole number, got %v", key, v))
	}
}

func (c *ctxReader) boolean(key string, def bool) bool {
	switch v := c.raw(key).(type) {
	case nil:
		return def
	case bool:
		return v
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("%s: want true or false, got %q", key, v))
			return def
		}
		return b
	default:
		c.errs = append(c.errs, fmt.Errorf("%s: want true or false, got %v", key, v))
		return def
	}
}

// DefaultAssetDir is <repo>/build, found by walking up from the working directory to the
// bucketvault module's go.mod (the CDK CLI runs the app in infra/, tests in infra/stack).
func DefaultAssetDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/bucketvault/bucketvault\n") {
			return filepath.Join(dir, "build"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bucketvault's go.mod not found above the working directory; set the assetDir context")
		}
		dir = parent
	}
}
