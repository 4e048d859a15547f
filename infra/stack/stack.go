// Package stack is bucketvault's AWS deployment as a CDK stack: the buckets, the functions with a
// least-privilege role each, the backup and restore state machines built from
// statemachine/backup.asl.json and restore.asl.json, a time-zoned EventBridge Scheduler schedule,
// and alarms.
package stack

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/verify"
	"github.com/bucketvault/bucketvault/statemachine"
)

// Logical ids the stack fixes, so that the template reads plainly and tests (and the MinIO
// least-privilege test) can find each role and bucket.
const (
	BackupBucketID     = "BackupBucket"
	RunBucketID        = "RunBucket"
	BackupKeyID        = "BackupKey"
	StateMachineID     = "BackupStateMachine"
	StateMachineRoleID = "BackupStateMachineRole"
	StateMachineLogsID = "BackupStateMachineLogs"
	// The restore state machine's.
	RestoreStateMachineID     = "RestoreStateMachine"
	RestoreStateMachineRoleID = "RestoreStateMachineRole"
	RestoreStateMachineLogsID = "RestoreStateMachineLogs"
	VerifyStateMachineID      = "VerifyStateMachine"
	VerifyStateMachineRoleID  = "VerifyStateMachineRole"
	VerifyStateMachineLogsID  = "VerifyStateMachineLogs"
	VerifyScheduleID          = "VerifySchedule"
	// DefaultVerifySchedule runs a restore drill weekly: Sundays at 04:00 in ScheduleTimeZone.
	DefaultVerifySchedule = "cron(0 4 ? * SUN *)"
	AlarmTopicID          = "AlarmTopic"
	ScheduleDLQID         = "ScheduleDeadLetterQueue"
	ScheduleID            = "BackupSchedule"
)

// RoleID is the logical id of a function's role ("ListerRole"), FunctionID the function's.
func RoleID(function string) string     { return title(function) + "Role" }
func FunctionID(function string) string { return title(function) + "Function" }

// LogGroupID is the logical id of a function's log group.
func LogGroupID(function string) string { return title(function) + "Logs" }

// title turns a function name ("restore-copier") into an id part ("RestoreCopier").
func title(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(s, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// IndexExpiryDays expires an ETag index generation (index/ in the run bucket) this long after it
// was written. Each run writes a new one, so it matters only when backups stop for that long.
const IndexExpiryDays = 35

// Map state label in backup.asl.json and restore.asl.json; child executions are named
// <state machine>/Copy:<id>.
const copyMapLabel = "Copy"

// BackupStack is the deployed stack and the constructs tests look at.
type BackupStack struct {
	Stack        awscdk.Stack
	Props        Props
	SourceBucket awss3.IBucket
	BackupBucket awss3.Bucket
	RunBucket    awss3.Bucket
	BackupKey    awskms.Key // nil unless Props.BackupKMS
	Functions    map[string]awslambda.Function
	Roles        map[string]awsiam.Role
	StateMachine awsstepfunctions.StateMachine
	// RestoreStateMachine restores any selection as of any moment (statemachine/restore.asl.json).
	RestoreStateMachine awsstepfunctions.StateMachine
	// VerifyStateMachine is the restore drill (statemachine/verify.asl.json).
	VerifyStateMachine awsstepfunctions.StateMachine
	AlarmTopic         awssns.Topic
	// Console is the restore console; nil when Props.ConsoleDisabled.
	Console *ConsoleResources
	// NotifyTopic receives every run's summary; SilenceAlarm fires when backups stop succeeding.
	NotifyTopic  awssns.Topic
	SilenceAlarm awscloudwatch.Alarm
	// Destinations are the further destinations (Props.Destinations; destinations.go).
	Destinations []*DestinationResources
}

// NewBackupStack defines the stack. props must have passed Defaults and Validate
// (PropsFromContext does both); the zips in AssetDir must exist.
func NewBackupStack(scope constructs.Construct, id string, props Props) (*BackupStack, error) {
	if err := props.Validate(); err != nil {
		return nil, err
	}
	if props.AssetDir == "" {
		dir, err := DefaultAssetDir()
		if err != nil {
			return nil, err
		}
		props.AssetDir = dir
	}
	for _, fn := range Functions {
		if fn == Console && props.ConsoleDisabled {
			continue
		}
		if err := checkAsset(filepath.Join(props.AssetDir, Asset(fn)+".zip")); err != nil {
			return nil, err
		}
	}
	sp := props.StackProps
	if sp.Description == nil {
		sp.Description = jsii.String("bucketvault: scheduled, incremental, point-in-time-restorable S3 backups (Step Functions)")
	}
	s := &BackupStack{
		Stack:     awscdk.NewStack(scope, &id, &sp),
		Props:     props,
		Functions: map[string]awslambda.Function{},
		Roles:     map[string]awsiam.Role{},
	}
	s.buckets()
	if err := s.destinations(scope, id); err != nil {
		return nil, err
	}
	s.functions()
	if err := s.stateMachines(); err != nil {
		return nil, err
	}
	s.alarmsAndSchedule()
	s.notifications()
	if !props.ConsoleDisabled {
		s.console()
		// The summaries link to the run's page in the console.
		s.Functions[Reporter].AddEnvironment(jsii.String("CONSOLE_URL"), s.Console.API.ApiEndpoint(), nil)
	}
	s.outputs()
	s.destinationOutputs()
	return s, nil
}

func (s *BackupStack) name(suffix string) string { return s.Props.NamePrefix + "-" + suffix }

func overrideID(c constructs.Construct, id string) {
	c.Node().DefaultChild().(awscdk.CfnResource).OverrideLogicalId(jsii.String(id))
}

func days(n int) awscdk.Duration { return awscdk.Duration_Days(jsii.Number(float64(n))) }

// ptrIf is nil for "" (let CloudFormation choose), else s.
func ptrIf(s string) *string {
	if s == "" {
		return nil
	}
	return jsii.String(s)
}

func strs(v ...string) *[]*string { return jsii.Strings(v...) }

// numIf is nil for 0 (the property left out), else n.
func numIf(n int) *float64 {
	if n == 0 {
		return nil
	}
	return jsii.Number(float64(n))
}

// buckets imports the source and creates the backup and run buckets.
func (s *BackupStack) buckets() {
	p := s.Props
	s.SourceBucket = awss3.Bucket_FromBucketName(s.Stack, jsii.String("SourceBucket"), jsii.String(p.SourceBucketName))

	backup := historyBucketProps(p, ptrIf(p.BackupBucketName))
	if p.BackupKMS {
		s.BackupKey = awskms.NewKey(s.Stack, jsii.String(BackupKeyID), &awskms.KeyProps{
			Description:       jsii.String("bucketvault backup bucket encryption"),
			Alias:             jsii.String("alias/" + s.name("backup")),
			EnableKeyRotation: jsii.Bool(true),
			RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
			Policy:            keyPolicy(),
		})
		overrideID(s.BackupKey, BackupKeyID)
		backup.Encryption = awss3.BucketEncryption_KMS
		backup.EncryptionKey = s.BackupKey
		backup.BucketKeyEnabled = jsii.Bool(true)
	}
	s.BackupBucket = awss3.NewBucket(s.Stack, jsii.String(BackupBucketID), backup)
	overrideID(s.BackupBucket, BackupBucketID)
	lockBucket(s.BackupBucket, p)
	retainPolicy(s.BackupBucket)

	runRules := []*awss3.LifecycleRule{
		{
			Id: jsii.String("map-results"), Prefix: jsii.String("map-results/"),
			Expiration: days(p.RunResultsExpiryDays),
		},
		{
			// Batches, outcomes and thaw lists: needed only while a run runs (and for a redrive).
			Id: jsii.String("work"), Prefix: jsii.String("work/"),
			Expiration: days(p.RunResultsExpiryDays),
		},
		{
			// The ETag index (SSE-KMS change detection): every run writes a new generation and
			// carries the entries that still hold, so only a generation untouched for this long
			// expires; the next run then copies each object whose ETags differ once more.
			Id: jsii.String("index"), Prefix: jsii.String("index/"),
			Expiration: days(IndexExpiryDays),
		},
		{
			// Reports and execution histories: the audit trail.
			Id: jsii.String("runs"), Prefix: jsii.String("runs/"),
			Expiration: days(p.RunRecordsExpiryDays),
		},
		{Id: jsii.String("abort-incomplete-uploads"), AbortIncompleteMultipartUploadAfter: days(1)},
	}
	s.RunBucket = awss3.NewBucket(s.Stack, jsii.String(RunBucketID), &awss3.BucketProps{
		BucketName:        ptrIf(p.RunBucketName),
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:        jsii.Bool(true),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		// Reports are the audit trail of every run; emptying the bucket is left to a person.
		RemovalPolicy:  awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &runRules,
	})
	overrideID(s.RunBucket, RunBucketID)
	retainPolicy(s.RunBucket)
}

// historyBucketProps are the properties of a bucket that keeps a backup's history: the backup
// bucket, and each further destination the app creates (destinations.go). Versioned, with the
// lifecycle p.Lifecycle, no public access, TLS only, SSE-S3, retained with the stack, and with
// Object Lock when p.ObjectLockMode is set (lockBucket sets its default retention).
func historyBucketProps(p Props, name *string) *awss3.BucketProps {
	l := p.Lifecycle
	var transitions []*awss3.Transition
	for _, t := range []struct {
		days  int
		class awss3.StorageClass
	}{{l.InfrequentAccessDays, awss3.StorageClass_INFREQUENT_ACCESS()}, {l.GlacierDays, awss3.StorageClass_GLACIER()}, {l.DeepArchiveDays, awss3.StorageClass_DEEP_ARCHIVE()}} {
		if t.days > 0 {
			transitions = append(transitions, &awss3.Transition{StorageClass: t.class, TransitionAfter: days(t.days)})
		}
	}
	var noncurrent []*awss3.NoncurrentVersionTransition
	for _, t := range []struct {
		days  int
		class awss3.StorageClass
	}{{l.NoncurrentInfrequentAccessDays, awss3.StorageClass_INFREQUENT_ACCESS()}, {l.NoncurrentGlacierDays, awss3.StorageClass_GLACIER()}, {l.NoncurrentDeepArchiveDays, awss3.StorageClass_DEEP_ARCHIVE()}} {
		if t.days > 0 {
			noncurrent = append(noncurrent, &awss3.NoncurrentVersionTransition{StorageClass: t.class, TransitionAfter: days(t.days)})
		}
	}
	current := &awss3.LifecycleRule{Id: jsii.String("current-versions")}
	if len(transitions) > 0 {
		current.Transitions = &transitions
	}
	if l.ExpireDays > 0 {
		// On a versioned bucket this adds a delete marker; the data becomes noncurrent and the
		// noncurrent rule below decides when it goes. A key still in the source is copied anew
		// by the next run.
		current.Expiration = days(l.ExpireDays)
	}
	history := &awss3.LifecycleRule{
		Id:                                  jsii.String("noncurrent-versions"),
		AbortIncompleteMultipartUploadAfter: days(l.AbortMultipartDays),
		// A delete marker whose versions have all expired protects nothing; S3 refuses this
		// flag in a rule that also expires current versions, hence a rule of its own.
		ExpiredObjectDeleteMarker: jsii.Bool(true),
	}
	if len(noncurrent) > 0 {
		history.NoncurrentVersionTransitions = &noncurrent
	}
	if l.NoncurrentExpireDays > 0 {
		history.NoncurrentVersionExpiration = days(l.NoncurrentExpireDays)
	}
	rules := []*awss3.LifecycleRule{history}
	if current.Transitions != nil || current.Expiration != nil {
		rules = append([]*awss3.LifecycleRule{current}, rules...)
	}
	small := awss3.TransitionDefaultMinimumObjectSize_ALL_STORAGE_CLASSES_128_K
	if l.SmallObjects == "varies_by_storage_class" {
		small = awss3.TransitionDefaultMinimumObjectSize_VARIES_BY_STORAGE_CLASS
	}
	props := &awss3.BucketProps{
		BucketName:                         name,
		Versioned:                          jsii.Bool(true),
		BlockPublicAccess:                  awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:                    awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:                         jsii.Bool(true),
		Encryption:                         awss3.BucketEncryption_S3_MANAGED,
		RemovalPolicy:                      awscdk.RemovalPolicy_RETAIN,
		LifecycleRules:                     &rules,
		TransitionDefaultMinimumObjectSize: small,
	}
	if p.ObjectLockMode != "" {
		// Every version a copier writes gets this default retention: bucketvault never sends
		// lock headers of its own. Delete markers are not locked, so deletions still record.
		props.ObjectLockEnabled = jsii.Bool(true)
	}
	return props
}

// lockBucket sets the default retention of a bucket made with historyBucketProps, when
// p.ObjectLockMode is set.
func lockBucket(b awss3.Bucket, p Props) {
	if p.ObjectLockMode == "" {
		return
	}
	// CloudFormation's DefaultRetention takes Days or Years; the L2 construct writes days only.
	b.Node().DefaultChild().(awss3.CfnBucket).SetObjectLockConfiguration(&awss3.CfnBucket_ObjectLockConfigurationProperty{
		ObjectLockEnabled: jsii.String("Enabled"),
		Rule:              &awss3.CfnBucket_ObjectLockRuleProperty{DefaultRetention: &awss3.CfnBucket_DefaultRetentionProperty{Mode: jsii.String(p.ObjectLockMode), Days: numIf(p.ObjectLockDays), Years: numIf(p.ObjectLockYears)}},
	})
}

// retainPolicy keeps a retained bucket's TLS-only policy (EnforceSSL) when the stack is deleted:
// without it the bucket would go on accepting requests without TLS.
func retainPolicy(b awss3.Bucket) {
	b.Policy().ApplyRemovalPolicy(awscdk.RemovalPolicy_RETAIN)
}

// keyPolicy is the backup key's policy: the account may administer and use the key, and IAM
// policies (the copier's role) grant its use. It names every action instead of AWS's default
// "kms:*", so that no statement in the template grants a wildcard action.
func keyPolicy() awsiam.PolicyDocument {
	return awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("AccountAdministersAndDelegatesToIAM"),
			Principals: &[]awsiam.IPrincipal{awsiam.NewAccountRootPrincipal()},
			Actions: strs(
				"kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
				"kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
				"kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:GetKeyPolicy",
				"kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies",
				"kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:ReEncryptFrom",
				"kms:ReEncryptTo", "kms:RetireGrant", "kms:RevokeGrant", "kms:RotateKeyOnDemand",
				"kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias",
				"kms:UpdateKeyDescription",
			),
			Resources: strs("*"), // in a key policy, "*" is the key itself
		}),
	}})
}

// functionSpec is one Lambda function: what it is sized for and what it may do. A restore
// planner is one more spec.
type functionSpec struct {
	name        string
	description string
	memoryMB    int
	timeout     int // seconds; 0: 900
	env         map[string]string
	statements  []awsiam.PolicyStatement
}

func allow(sid string, actions []string, resources ...string) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Effect: awsiam.Effect_ALLOW, Actions: strs(actions...), Resources: strs(resources...),
	})
}

func allowPrefix(sid string, actions []string, bucketArn string, prefixes ...string) awsiam.PolicyStatement {
	st := allow(sid, actions, bucketArn)
	st.AddCondition(jsii.String("StringLike"), map[string]any{"s3:prefix": prefixes})
	return st
}

// functions creates the lister, copier and reporter, each with its own role granting exactly
// the S3 requests it makes (infra/README.md "Least privilege"; the comments name the requests).
func (s *BackupStack) functions() {
	p := s.Props
	src, bak, run := *s.SourceBucket.BucketArn(), *s.BackupBucket.BucketArn(), *s.RunBucket.BucketArn()
	env := func(extra map[string]string) map[string]string {
		m := map[string]string{
			"SOURCE_BUCKET": *s.SourceBucket.BucketName(),
			"BACKUP_BUCKET": *s.BackupBucket.BucketName(),
			"RUN_BUCKET":    *s.RunBucket.BucketName(),
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	copier := []awsiam.PolicyStatement{
		allow("ReadBatches", []string{"s3:GetObject"}, run+"/work/*/batches/*"),
		allow("WriteOutcomes", []string{"s3:PutObject"}, run+"/work/*/outcomes/*"),
		// The ETag index entries of a backup batch's copies (only when its ETags differ: SSE-KMS).
		allow("RecordCopies", []string{"s3:PutObject"}, run+"/index/*/copied/*"),
		// A copy in parts records its upload, so that the batch's retry resumes it.
		allow("RecordUploads", []string{"s3:GetObject", "s3:PutObject"}, run+"/work/*/uploads/*"),
		// ListBucket makes HEAD of a missing key answer 404 rather than 403: the copier detects
		// vanished sources and already-deleted backups by that 404, and a copy without an upload
		// record by its 404 in the run bucket.
		allow("HeadMissingKeysAs404", []string{"s3:ListBucket"}, src, bak, run),
		// HeadObject, GetObject (copy source, part boundaries) and the tags CopyObject copies.
		allow("ReadSource", []string{"s3:GetObject", "s3:GetObjectTagging"}, src+"/*"),
		// CopyObject/UploadPartCopy targets with TaggingDirective COPY, HeadObject to verify,
		// ListParts of a resumed copy, AbortMultipartUpload of a copy given up, and DeleteObject
		// without a version id, which adds a delete marker. Never s3:DeleteObjectVersion: history
		// cannot be erased.
		allow("WriteBackup", []string{"s3:PutObject", "s3:PutObjectTagging", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload", "s3:DeleteObject"}, bak+"/*"),
	}
	if s.BackupKey != nil {
		// CopyObject into SSE-KMS needs a data key; multipart copies also decrypt it.
		copier = append(copier, allow("UseBackupKey", []string{"kms:GenerateDataKey", "kms:Decrypt"}, *s.BackupKey.KeyArn()))
	}
	specs := []functionSpec{
		{
			name:        Lister,
			description: "bucketvault lister: merges the source and backup listings into work batches",
			memoryMB:    p.ListerMemoryMB,
			env: env(map[string]string{
				"MAX_DELETE_PERCENT": fmt.Sprint(p.MaxDeletePercent),
				"DELETE_GUARD_FLOOR": fmt.Sprint(p.DeleteGuardFloor),
				"MAX_CHANGE_PERCENT": fmt.Sprint(p.MaxChangePercent),
				"CHANGE_GUARD_FLOOR": fmt.Sprint(p.ChangeGuardFloor),
				"ARCHIVED_SOURCES":   p.ArchivedSources,
				"LISTER_CONCURRENCY": fmt.Sprint(p.ListConcurrency),
				"FILTERS":            p.Filters,
			}),
			statements: []awsiam.PolicyStatement{
				// HeadBucket (checked before anything is written) and ListObjectsV2.
				allow("ListBuckets", []string{"s3:ListBucket"}, src, bak, run),
				// GetObjectTagging of a new or changed source object that a filter's tag rule
				// could decide (package shared/filter). Always granted: an execution's input may
				// bring tag rules.
				allow("ReadSourceTagsForFilters", []string{"s3:GetObjectTagging"}, src+"/*"),
				allow("CheckBackupVersioning", []string{"s3:GetBucketVersioning"}, bak),
				// The batches, the manifest of those the Map runs, and (in key-space ranges) the
				// early manifest of those the ranges' children copied.
				allow("WriteBatches", []string{"s3:PutObject"}, run+"/work/*/batches/*", run+"/work/*/manifest.jsonl", run+"/work/*/early-manifest.jsonl"),
				// Listing in key-space ranges (LISTER_RANGES): the split's ranges file, each range's
				// result, read back by the plan, and the plan's further ranges files (the rest of
				// ranges that turned out large). Hints for the next run go under index/.
				allow("ListInRanges", []string{"s3:GetObject", "s3:PutObject"}, run+"/work/*/ranges.jsonl", run+"/work/*/ranges-*.jsonl", run+"/work/*/ranges/*"),
				// The ETag index: read the current generation, write the next one (carry files,
				// generation.json, current.json).
				allow("ReadWriteETagIndex", []string{"s3:GetObject", "s3:PutObject"}, run+"/index/*"),
				// The backup lock (package shared/runlock: one run per source and backup at a
				// time): GetObject reads a held lock (which execution, since when), PutObject takes
				// it with a conditional write (If-None-Match: *) or takes a free one over (If-Match
				// on its ETag). Nothing deletes it: it frees itself.
				allow("BackupLock", []string{"s3:GetObject", "s3:PutObject"}, run+"/lock/*"),
				// GetObject of the report of the execution holding the lock: once that execution
				// has written its report it is over, and its lock is free.
				allow("ReadLockHolderReport", []string{"s3:GetObject"}, run+"/runs/*/report.json"),
			},
		},
		{
			name:        Copier,
			description: "bucketvault copier: copies one batch server-side into the backup, marks deletions",
			memoryMB:    p.CopierMemoryMB,
			env:         env(nil),
			statements:  copier,
		},
		{
			name:        Reporter,
			description: "bucketvault reporter: aggregates a run's outcomes into runs/<execution>/report.json",
			memoryMB:    p.ReporterMemoryMB,
			env:         env(nil),
			statements: []awsiam.PolicyStatement{
				// GetObject of the manifest, of the outcomes, of the batches of failed batches (to
				// name their objects), and of the Map's results. ListBucket makes GetObject of a
				// missing outcome or manifest answer 404 rather than 403: a missing outcome is a
				// batch that failed as a whole, a missing manifest a copy phase that never started.
				allow("MissingKeysAs404", []string{"s3:ListBucket"}, run),
				allow("ReadWorkAndMapResults", []string{"s3:GetObject"}, run+"/work/*", run+"/map-results/*"),
				allow("WriteReport", []string{"s3:PutObject"}, run+"/runs/*/report.json"),
			},
		},
	}
	specs = append(specs, s.restoreSpecs(env)...)
	specs = append(specs, s.verifierSpec(env))
	specs = s.withDestinations(specs)
	for _, spec := range specs {
		s.function(spec)
	}
}

// restoreSpecs are the restore planner and the restore copier. Only the restore copier may write
// to the restore targets; the backup copier's role never can, so a backup can never write to the
// source.
func (s *BackupStack) restoreSpecs(env func(map[string]string) map[string]string) []functionSpec {
	p := s.Props
	bak, run := *s.BackupBucket.BucketArn(), *s.RunBucket.BucketArn()
	var targets, targetObjects []string
	for _, t := range p.RestoreTargets {
		arn := fmt.Sprintf("arn:%s:s3:::%s", *awscdk.Aws_PARTITION(), t)
		targets, targetObjects = append(targets, arn), append(targetObjects, arn+"/*")
	}
	// Restore drills restore into the drill bucket's scratch prefix (drill.go).
	drill := *s.drillBucket().BucketArn()
	restoreEnv := env(map[string]string{"RESTORE_TARGETS": joinTargets(append(slices.Clone(p.RestoreTargets), *s.drillBucket().BucketName())), "ALLOW_EXACT_ROLLBACK": fmt.Sprint(p.AllowExactRollback)})
	copier := []awsiam.PolicyStatement{
		allow("ReadBatches", []string{"s3:GetObject"}, run+"/work/*/batches/*"),
		allow("WriteOutcomes", []string{"s3:PutObject"}, run+"/work/*/outcomes/*"),
		allow("RecordUploads", []string{"s3:GetObject", "s3:PutObject"}, run+"/work/*/uploads/*"),
		allow("HeadMissingKeysAs404", []string{"s3:ListBucket"}, append([]string{bak, run}, targets...)...),
		// HeadObject, CopyObject and UploadPartCopy of a version, and that version's tags: AWS's
		// GetObjectTagging reference asks for s3:GetObjectTagging, and s3:GetObjectVersionTagging
		// "also" for a version id, so both (tags only).
		allow("ReadBackupVersions", []string{"s3:GetObjectVersion", "s3:GetObjectVersionTagging", "s3:GetObjectTagging"}, bak+"/*"),
		// Copy targets, HeadObject to verify, ListParts of a resumed copy, AbortMultipartUpload.
		allow("WriteRestoreTargets", []string{"s3:PutObject", "s3:PutObjectTagging", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"}, targetObjects...),
		// A drill's restore sample: the scratch prefix of the drill bucket, nothing else there.
		allow("HeadMissingDrillKeysAs404", []string{"s3:ListBucket"}, drill),
		allow("WriteDrillScratch", []string{"s3:PutObject", "s3:PutObjectTagging", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"}, drill+"/"+verify.ScratchPrefix+"*"),
	}
	plannerTargets := []awsiam.PolicyStatement{}
	if p.AllowExactRollback {
		// An exact restore removes what the backup did not hold with DeleteObject without a
		// version id: a delete marker, never s3:DeleteObjectVersion. Without the setting a
		// restore never deletes.
		copier = append(copier, allow("ExactRollbackRemovals", []string{"s3:DeleteObject"}, targetObjects...))
		// It runs only into a target whose versioning is Enabled.
		plannerTargets = append(plannerTargets, allow("CheckTargetVersioning", []string{"s3:GetBucketVersioning"}, targets...))
	}
	if s.BackupKey != nil {
		copier = append(copier, allow("UseBackupKey", []string{"kms:Decrypt"}, *s.BackupKey.KeyArn()))
	}
	return []functionSpec{
		{
			name:        Planner,
			description: "bucketvault restore planner: picks the versions current at a moment and writes work batches",
			memoryMB:    p.PlannerMemoryMB,
			env:         restoreEnv,
			statements: append([]awsiam.PolicyStatement{
				// HeadBucket of the backup, run and target buckets; ListObjectsV2 of the target.
				allow("ListBuckets", []string{"s3:ListBucket"}, append([]string{bak, run, drill}, targets...)...),
				allow("ListBackupVersions", []string{"s3:ListBucketVersions"}, bak),
				// HeadObject of a version (versionId restores, thaw checks), RestoreObject to thaw.
				allow("ReadAndThawVersions", []string{"s3:GetObjectVersion", "s3:RestoreObject"}, bak+"/*"),
				// The moment of a backup execution named by "at" is its report's finishedAt.
				allow("ReadReports", []string{"s3:GetObject"}, run+"/runs/*/report.json"),
				// The batches, the thaw lists, the manifest of the batches the Map runs, and a dry
				// run's list of the removals it would make (an exact restore's preview).
				allow("WriteWork", []string{"s3:PutObject"}, run+"/work/*/batches/*", run+"/work/*/thaw/*", run+"/work/*/manifest.jsonl", run+"/work/*/preview-manifest.jsonl"),
				allow("ReadThawLists", []string{"s3:GetObject"}, run+"/work/*/thaw/*"),
			}, plannerTargets...),
		},
		{
			name:        RestoreCopier,
			description: "bucketvault restore copier: copies versions of the backup into an allowed restore target",
			memoryMB:    p.CopierMemoryMB,
			env:         restoreEnv,
			statements:  copier,
		},
	}
}

func joinTargets(targets []string) string { return strings.Join(targets, ",") }

// verifierSpec is the restore drill's verifier (package shared/verify): it reads the backup, the
// source and the last backup's work files, and writes only its own files in the run bucket.
func (s *BackupStack) verifierSpec(env func(map[string]string) map[string]string) functionSpec {
	src, bak, run := *s.SourceBucket.BucketArn(), *s.BackupBucket.BucketArn(), *s.RunBucket.BucketArn()
	drill := *s.drillBucket().BucketArn()
	statements := []awsiam.PolicyStatement{
		// ListObjectsV2 of the backup (the sample), HeadBucket of all three.
		allow("ListBuckets", []string{"s3:ListBucket"}, src, bak, run),
		// ListObjectVersions of one key: the version the last backup wrote.
		allow("ListBackupVersions", []string{"s3:ListBucketVersions"}, bak),
		// HeadObject and GetObject of the source (its content, by ETag) and of a backup version.
		allow("ReadSource", []string{"s3:GetObject"}, src+"/*"),
		allow("ReadBackupVersions", []string{"s3:GetObject", "s3:GetObjectVersion"}, bak+"/*"),
		// The last backup's report, manifest, batches and outcomes; its own sample files.
		allow("ReadRuns", []string{"s3:GetObject"}, run+"/runs/*/report.json", run+"/work/*"),
		allow("WriteDrillFiles", []string{"s3:PutObject"}, run+"/work/verify-*/verify/*", run+"/runs/verify-*/report.json"),
		// The restore sample: the source's tags, and the scratch copies (read, tags, listed with
		// their versions, deleted); nothing else in the drill bucket.
		allow("ReadSourceTags", []string{"s3:GetObjectTagging"}, src+"/*"),
		allow("ListDrillBucket", []string{"s3:ListBucket", "s3:ListBucketVersions"}, drill),
		allow("CompareAndDeleteScratch", []string{"s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject", "s3:DeleteObjectVersion"}, drill+"/"+verify.ScratchPrefix+"*"),
	}
	if s.BackupKey != nil {
		statements = append(statements, allow("UseBackupKey", []string{"kms:Decrypt"}, *s.BackupKey.KeyArn()))
	}
	return functionSpec{
		name:        Verifier,
		description: "bucketvault verifier: a restore drill's checks of a sample of the backup against the source",
		memoryMB:    s.Props.ReporterMemoryMB,
		env:         env(map[string]string{"DRILL_BUCKET": *s.drillBucket().BucketName()}),
		statements:  statements,
	}
}

// function creates one function with its log group and its own role.
func (s *BackupStack) function(spec functionSpec) awslambda.Function {
	name := s.name(spec.name)
	logs := s.logGroup(LogGroupID(spec.name), "/aws/lambda/"+name)
	statements := append([]awsiam.PolicyStatement{
		allow("WriteLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, *logs.LogGroupArn()),
	}, spec.statements...)
	role := awsiam.NewRole(s.Stack, jsii.String(RoleID(spec.name)), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("bucketvault " + spec.name + ": exactly the S3 requests it makes"),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			spec.name: awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements}),
		},
	})
	overrideID(role, RoleID(spec.name))
	timeout := spec.timeout
	if timeout == 0 {
		timeout = 900
	}
	env := map[string]*string{}
	for k, v := range spec.env {
		env[k] = jsii.String(v)
	}
	fn := awslambda.NewFunction(s.Stack, jsii.String(FunctionID(spec.name)), &awslambda.FunctionProps{
		FunctionName: jsii.String(name),
		Description:  jsii.String(spec.description),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(s.Props.AssetDir, Asset(spec.name)+".zip")), nil),
		MemorySize:   jsii.Number(float64(spec.memoryMB)),
		// Each function watches its own deadline (the lister stops when a tenth is left); the
		// longest timeout gives the most work per invocation.
		Timeout:     awscdk.Duration_Seconds(jsii.Number(float64(timeout))),
		Environment: &env,
		Role:        role,
		LogGroup:    logs,
	})
	overrideID(fn, FunctionID(spec.name))
	s.Functions[spec.name] = fn
	s.Roles[spec.name] = role
	return fn
}

func (s *BackupStack) logGroup(id, name string) awslogs.LogGroup {
	lg := awslogs.NewLogGroup(s.Stack, jsii.String(id), &awslogs.LogGroupProps{
		LogGroupName:  jsii.String(name),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	lg.Node().DefaultChild().(awslogs.CfnLogGroup).SetRetentionInDays(jsii.Number(float64(s.Props.LogRetentionDays)))
	overrideID(lg, id)
	return lg
}

// machineSpec is one state machine built from a definition file of package statemachine.
type machineSpec struct {
	id, roleID, logsID, name, description string
	definition                            []byte
	expected                              []string          // the definition's ${Name}s
	functions                             map[string]string // substitution → function
	role                                  string            // key in Roles
	// starts are the state machines it runs with states:startExecution.sync:2 (substitution →
	// state machine name).
	starts map[string]string
}

// stateMachines creates the backup and the restore state machines.
func (s *BackupStack) stateMachines() error {
	var err error
	s.StateMachine, err = s.machine(machineSpec{
		id: StateMachineID, roleID: StateMachineRoleID, logsID: StateMachineLogsID, name: s.name(BackupStateMachine),
		description: "bucketvault backup state machine: invoke the functions, run the Distributed Map",
		definition:  statemachine.Backup, expected: statemachine.BackupSubstitutions, role: BackupStateMachine,
		functions: map[string]string{"ListerFunctionArn": Lister, "CopierFunctionArn": Copier, "ReporterFunctionArn": Reporter},
	})
	if err != nil {
		return err
	}
	s.RestoreStateMachine, err = s.machine(machineSpec{
		id: RestoreStateMachineID, roleID: RestoreStateMachineRoleID, logsID: RestoreStateMachineLogsID, name: s.name(RestoreStateMachine),
		description: "bucketvault restore state machine: invoke the functions, run the Distributed Map",
		definition:  statemachine.Restore, expected: statemachine.RestoreSubstitutions, role: RestoreStateMachine,
		functions: map[string]string{"PlannerFunctionArn": Planner, "CopierFunctionArn": RestoreCopier, "ReporterFunctionArn": Reporter},
	})
	if err != nil {
		return err
	}
	s.VerifyStateMachine, err = s.machine(machineSpec{
		id: VerifyStateMachineID, roleID: VerifyStateMachineRoleID, logsID: VerifyStateMachineLogsID, name: s.name(VerifyStateMachine),
		description: "bucketvault verify state machine (restore drills): invoke the verifier, run the restore sample through the restore state machine",
		definition:  statemachine.Verify, expected: statemachine.VerifySubstitutions, role: VerifyStateMachine,
		functions: map[string]string{"VerifierFunctionArn": Verifier},
		starts:    map[string]string{"RestoreStateMachineArn": s.name(RestoreStateMachine)},
	})
	return err
}

// machine creates a state machine from its definition file itself, its ${Name} placeholders left
// to CloudFormation's DefinitionSubstitutions, with a role that may invoke exactly its functions
// and run its Distributed Map.
func (s *BackupStack) machine(m machineSpec) (awsstepfunctions.StateMachine, error) {
	p := s.Props
	subs := map[string]*string{}
	if slices.Contains(m.expected, "RunBucket") {
		subs["RunBucket"] = s.RunBucket.BucketName()
	}
	var invoke []string
	for sub, fn := range m.functions {
		subs[sub] = s.Functions[fn].FunctionArn()
		arn := *s.Functions[fn].FunctionArn()
		invoke = append(invoke, arn, arn+":*")
	}
	slices.Sort(invoke)
	smArnOf := func(name string) string {
		return *s.Stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("states"), Resource: jsii.String("stateMachine"),
			ResourceName: jsii.String(name), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	}
	for sub, name := range m.starts {
		// Built from the name, as the Distributed Map's grants are: no dependency between the roles.
		subs[sub] = jsii.String(smArnOf(name))
	}
	for _, name := range m.expected {
		if subs[name] == nil {
			return nil, fmt.Errorf("%s expects ${%s}, which the stack does not provide", m.name, name)
		}
	}
	if len(subs) != len(m.expected) {
		return nil, fmt.Errorf("the stack provides substitutions %s does not expect", m.name)
	}

	stack := s.Stack
	smArn := *stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("states"), Resource: jsii.String("stateMachine"),
		ResourceName: jsii.String(m.name), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	execArn := func(name string) string {
		return *stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("states"), Resource: jsii.String("execution"),
			ResourceName: jsii.String(name), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	}
	run := *s.RunBucket.BucketArn()
	statements := []awsiam.PolicyStatement{
		allow("InvokeFunctions", []string{"lambda:InvokeFunction"}, invoke...),
	}
	statements = append(statements, itemReaderStatements(m.definition, run)...)
	for _, sub := range slices.Sorted(maps.Keys(m.starts)) {
		name := m.starts[sub]
		statements = append(statements, startSyncStatements(smArnOf(name), execArn(name)+":*", *stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("events"), Resource: jsii.String("rule"), ResourceName: jsii.String("StepFunctionsGetEventsForStepFunctionsExecutionRule")}))...)
	}
	if bytes.Contains(m.definition, []byte(`"DISTRIBUTED"`)) {
		var children []string
		for _, label := range mapLabels(m.definition) {
			children = append(children, execArn(m.name+"/"+label)+":*")
		}
		statements = append(statements, distributedMapStatements(run, smArn, execArn(m.name), children)...)
	}
	role := awsiam.NewRole(s.Stack, jsii.String(m.roleID), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("states.amazonaws.com"), nil),
		Description: jsii.String(m.description),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			m.role: awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements}),
		},
	})
	overrideID(role, m.roleID)
	s.Roles[m.role] = role

	level := map[string]awsstepfunctions.LogLevel{"ALL": awsstepfunctions.LogLevel_ALL, "ERROR": awsstepfunctions.LogLevel_ERROR,
		"FATAL": awsstepfunctions.LogLevel_FATAL, "OFF": awsstepfunctions.LogLevel_OFF}[p.StateMachineLogLevel]
	sm := awsstepfunctions.NewStateMachine(s.Stack, jsii.String(m.id), &awsstepfunctions.StateMachineProps{
		StateMachineName:        jsii.String(m.name),
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(string(m.definition))),
		DefinitionSubstitutions: &subs,
		Role:                    role,
		TracingEnabled:          jsii.Bool(true),
		Logs: &awsstepfunctions.LogOptions{
			Destination:          s.logGroup(m.logsID, "/aws/vendedlogs/states/"+m.name),
			Level:                level,
			IncludeExecutionData: jsii.Bool(true),
		},
	})
	overrideID(sm, m.id)
	return sm, nil
}

// alarmsAndSchedule creates the alarm topic, the execution alarms, and the schedule with its
// retry policy, dead-letter queue and delivery alarms.
func (s *BackupStack) alarmsAndSchedule() {
	p := s.Props
	s.AlarmTopic = awssns.NewTopic(s.Stack, jsii.String(AlarmTopicID), &awssns.TopicProps{
		DisplayName: jsii.String("bucketvault alarms"),
		EnforceSSL:  jsii.Bool(true),
	})
	overrideID(s.AlarmTopic, AlarmTopicID)
	// A topic policy replaces SNS's default one, and the TLS-only Deny (EnforceSSL) makes one:
	// CloudWatch may then publish only what it allows. This allows the CloudWatch service to
	// publish the alarms of this deployment (named <prefix>-…) in this account and Region, as
	// AWS documents for alarm actions on a topic with its own policy
	// (https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger).
	s.AlarmTopic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Effect:     awsiam.Effect_ALLOW,
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    strs("sns:Publish"),
		Resources:  &[]*string{s.AlarmTopic.TopicArn()},
		Conditions: &map[string]any{
			"ArnLike":      map[string]any{"aws:SourceArn": s.alarmArnPattern()},
			"StringEquals": map[string]any{"aws:SourceAccount": *s.Stack.Account()},
		},
	}))
	if p.AlarmEmail != "" {
		s.AlarmTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(p.AlarmEmail), nil))
	}
	action := awscloudwatchactions.NewSnsAction(s.AlarmTopic)
	alarm := func(id, description string, metric awscloudwatch.IMetric) {
		a := awscloudwatch.NewAlarm(s.Stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String(s.name(id)),
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(action)
	}
	sum := &awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: awscdk.Duration_Minutes(jsii.Number(5))}
	alarm("ExecutionsFailed", "A backup execution failed: its report names every object not backed up.", s.StateMachine.MetricFailed(sum))
	alarm("ExecutionsTimedOut", "A backup execution ran past its timeout.", s.StateMachine.MetricTimedOut(sum))
	alarm("ExecutionsAborted", "A backup execution was stopped.", s.StateMachine.MetricAborted(sum))
	alarm("RestoreExecutionsFailed", "A restore execution failed: its report names every object not restored.", s.RestoreStateMachine.MetricFailed(sum))
	alarm("RestoreExecutionsTimedOut", "A restore execution ran past its timeout.", s.RestoreStateMachine.MetricTimedOut(sum))
	alarm("VerifyExecutionsFailed", "A restore drill failed: its report names every object missing from the backup or different from the source.", s.VerifyStateMachine.MetricFailed(sum))

	dlq := awssqs.NewQueue(s.Stack, jsii.String(ScheduleDLQID), &awssqs.QueueProps{
		RetentionPeriod: days(14),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
	})
	overrideID(dlq, ScheduleDLQID)
	group := awsscheduler.NewScheduleGroup(s.Stack, jsii.String("ScheduleGroup"), &awsscheduler.ScheduleGroupProps{
		ScheduleGroupName: jsii.String(p.NamePrefix),
		RemovalPolicy:     awscdk.RemovalPolicy_DESTROY,
	})
	// {} backs up everything, as a console StartExecution does; for a drill it is the default
	// sample (verify.DefaultSample objects and the last backup's copies).
	s.schedule(ScheduleID, "backup", "Starts a bucketvault backup", p.Schedule, p.ScheduleDisabled, s.StateMachine, group, dlq)
	s.schedule(VerifyScheduleID, "verify", "Starts a bucketvault restore drill (verify)", p.VerifySchedule, p.VerifyScheduleDisabled, s.VerifyStateMachine, group, dlq)
	alarm("ScheduleDeliveryFailed", "The schedule could not start a backup; the event is in the dead-letter queue.",
		dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: awscdk.Duration_Minutes(jsii.Number(5))}))
	alarm("ScheduleInvocationsDropped", "The schedule dropped a backup start (not even the dead-letter queue took it).", group.MetricDropped(sum))
}

// schedule starts machine with input {} on expr (in the schedule time zone), retrying for an hour
// and then leaving the event in dlq.
func (s *BackupStack) schedule(id, name, description, expr string, disabled bool, machine awsstepfunctions.StateMachine, group awsscheduler.ScheduleGroup, dlq awssqs.Queue) {
	sc := awsscheduler.NewSchedule(s.Stack, jsii.String(id), &awsscheduler.ScheduleProps{
		ScheduleName:  jsii.String(s.name(name)),
		Description:   jsii.String(description),
		ScheduleGroup: group,
		Schedule:      awsscheduler.ScheduleExpression_Expression(jsii.String(expr), awscdk.TimeZone_Of(jsii.String(s.Props.ScheduleTimeZone))),
		Enabled:       jsii.Bool(!disabled),
		Target: awsschedulertargets.NewStepFunctionsStartExecution(machine, &awsschedulertargets.ScheduleTargetBaseProps{
			Input:           awsscheduler.ScheduleTargetInput_FromText(jsii.String("{}")),
			RetryAttempts:   jsii.Number(5),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(1)),
			DeadLetterQueue: dlq,
		}),
	})
	overrideID(sc, id)
}

// alarmArnPattern matches the ARNs of the alarms alarmsAndSchedule creates, all named
// <prefix>-<id>, in this account and Region.
func (s *BackupStack) alarmArnPattern() string {
	return *s.Stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("cloudwatch"), Resource: jsii.String("alarm"),
		ResourceName: jsii.String(s.name("*")), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
}

func (s *BackupStack) outputs() {
	out := func(id, description string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(description), Value: value})
	}
	region := *s.Stack.Region()
	out("StateMachineArn", "The backup state machine", s.StateMachine.StateMachineArn())
	out("RestoreStateMachineArn", "The restore state machine (start an execution with {\"at\": ..., ...}; README \"Restore\")", s.RestoreStateMachine.StateMachineArn())
	out("VerifyStateMachineArn", "The restore drill (bucketvault verify --stack, or its weekly schedule)", s.VerifyStateMachine.StateMachineArn())
	out("SourceBucketName", "The bucket backed up", s.SourceBucket.BucketName())
	out("BackupBucketName", "The versioned backup bucket (retained when the stack is deleted)", s.BackupBucket.BucketName())
	out("RunBucketName", "Batches, Map results and reports (retained when the stack is deleted)", s.RunBucket.BucketName())
	out("AlarmTopicArn", "Alarm notifications", s.AlarmTopic.TopicArn())
	out("NotifyTopicArn", "Every run's summary (subscribe; filter on the status, error and kind attributes)", s.NotifyTopic.TopicArn())
	out("ExecutionsConsoleUrl", "The executions list in the Step Functions console", jsii.String(
		"https://"+region+".console.aws.amazon.com/states/home?region="+region+"#/statemachines/view/"+*s.StateMachine.StateMachineArn()))
}

// distributedMapStatements grant what a Distributed Map needs of its state machine's role.
func distributedMapStatements(run, smArn, execArn string, children []string) []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{
		// Distributed Map ResultWriter, as AWS documents its permissions
		// (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html).
		allow("ResultWriter", []string{"s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}, run+"/map-results/*"),
		// A Distributed Map runs its items as child executions of this state machine:
		// https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html
		// (StartExecution on the state machine, DescribeExecution and StopExecution on its
		// executions). Child executions are named <state machine>/<Map label>:<id>. The ARN is
		// built from the name: referring to the state machine would make its role depend on it.
		allow("DistributedMapStartChildren", []string{"states:StartExecution"}, smArn),
		allow("DistributedMapManageChildren", []string{"states:DescribeExecution", "states:StopExecution"}, append([]string{execArn + ":*"}, children...)...),
	}
}

// mapLabels are the Labels of a definition's Map states: a Distributed Map's child executions are
// named <state machine>/<Label>:<id>.
func mapLabels(definition []byte) []string {
	var out []string
	for _, m := range mapLabelRe.FindAllSubmatch(definition, -1) {
		if l := string(m[1]); !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

var mapLabelRe = regexp.MustCompile(`"Label":\s*"([^"]+)"`)

// itemReaderStatements grant what a definition's Distributed Map ItemReaders read in the run
// bucket: the batch manifest the lister or planner wrote (s3:getObject of
// work/<execution>/manifest.jsonl), or a listing of work/ (s3:listObjectsV2).
func itemReaderStatements(definition []byte, run string) []awsiam.PolicyStatement {
	var out []awsiam.PolicyStatement
	if bytes.Contains(definition, []byte(`"arn:aws:states:::s3:getObject"`)) {
		keys := []string{run + "/work/*/manifest.jsonl"}
		if bytes.Contains(definition, []byte(`"Key.$": "$.rangesKey"`)) {
			// The key-space ranges the lister's split wrote, and its plan's further passes.
			keys = append(keys, run+"/work/*/ranges.jsonl", run+"/work/*/ranges-*.jsonl")
		}
		out = append(out, allow("ItemReaderReadManifest", []string{"s3:GetObject"}, keys...))
	}
	if bytes.Contains(definition, []byte(`"arn:aws:states:::s3:listObjectsV2"`)) {
		out = append(out, allowPrefix("ItemReaderListBatches", []string{"s3:ListBucket"}, run, "work/*"))
	}
	return out
}
