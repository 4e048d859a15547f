package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/infra/policydoc"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/lister"
	"github.com/bucketvault/bucketvault/statemachine"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// The stack is synthesized against these (no AWS account is asked).
const (
	testAccount = "123456789012"
	testRegion  = "us-east-1"
	testSource  = "example-source"
	testBackup  = "example-backup"
	testRun     = "example-runs"
)

// synthesized is one synthesis, shared by the subtests of a test (jsii start-up and synthesis
// are slow).
type synthesized struct {
	stack    *BackupStack
	template assertions.Template
	json     map[string]any
	resolver policydoc.Resolver
}

// newApp returns an App with cdk.json's context (feature flags) plus ctx, as the CDK CLI builds it.
func newApp(t *testing.T, ctx map[string]any) awscdk.App {
	t.Helper()
	b, err := os.ReadFile("../cdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var cdkJSON struct {
		App     string         `json:"app"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &cdkJSON); err != nil {
		t.Fatalf("cdk.json: %v", err)
	}
	if cdkJSON.App != "go run ." {
		t.Errorf(`cdk.json app = %q, want "go run ."`, cdkJSON.App)
	}
	merged := map[string]any{}
	for k, v := range cdkJSON.Context {
		merged[k] = v
	}
	for k, v := range ctx {
		merged[k] = v
	}
	return awscdk.NewApp(&awscdk.AppProps{Context: &merged})
}

func synth(t *testing.T, ctx map[string]any) *synthesized {
	t.Helper()
	start := time.Now()
	dir := t.TempDir()
	if err := WritePlaceholderAssets(dir); err != nil {
		t.Fatal(err)
	}
	ctx["assetDir"] = dir
	app := newApp(t, ctx)
	props, err := PropsFromContext(app.Node())
	if err != nil {
		t.Fatal(err)
	}
	props.Env = &awscdk.Environment{Account: jsii.String(testAccount), Region: jsii.String(testRegion)}
	s, err := NewBackupStack(app, "BucketVault", props)
	if err != nil {
		t.Fatal(err)
	}
	tpl := assertions.Template_FromStack(s.Stack, nil)
	js := *tpl.ToJSON()
	r := policydoc.ResolverFor(js, "aws", testRegion, testAccount)
	r.SetBucket(BackupBucketID, testBackup)
	r.SetBucket(RunBucketID, testRun)
	for _, fn := range Functions {
		r.Attrs[FunctionID(fn)+".Arn"] = localrun.FunctionARN(props.NamePrefix + "-" + fn)
	}
	t.Logf("synthesized in %s", time.Since(start).Round(time.Millisecond))
	return &synthesized{stack: s, template: tpl, json: js, resolver: r}
}

func (s *synthesized) resource(t *testing.T, id string) map[string]any {
	t.Helper()
	res, _ := s.json["Resources"].(map[string]any)[id].(map[string]any)
	if res == nil {
		t.Fatalf("template has no resource %s", id)
	}
	return res
}

func (s *synthesized) resourcesOfType(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.json["Resources"].(map[string]any) {
		if rm := r.(map[string]any); rm["Type"] == typ {
			out[id] = rm
		}
	}
	return out
}

func (s *synthesized) statements(t *testing.T, roleID string) []policydoc.Statement {
	t.Helper()
	st, err := policydoc.Statements(s.json, roleID, s.resolver)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// grants flattens statements to "action resource [condition]" lines, sorted.
func grants(stmts []policydoc.Statement, only func(action string) bool) []string {
	var out []string
	for _, s := range stmts {
		cond := ""
		if s.Condition != nil {
			b, _ := json.Marshal(s.Condition)
			cond = " " + string(b)
		}
		for _, a := range s.Action {
			if !only(a) {
				continue
			}
			for _, r := range s.Resource {
				out = append(out, s.Effect+" "+a+" "+r+cond)
			}
		}
	}
	sort.Strings(out)
	return out
}

// has is Template.HasResourceProperties reported as a test error (the assertions library
// panics on a mismatch).
func has(t *testing.T, tpl assertions.Template, typ string, props map[string]any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", typ, r)
		}
	}()
	tpl.HasResourceProperties(jsii.String(typ), props)
}

func hasOutput(t *testing.T, tpl assertions.Template, name string, props map[string]any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("output %s: %v", name, r)
		}
	}()
	tpl.HasOutput(jsii.String(name), props)
}

func isS3(a string) bool { return strings.HasPrefix(a, "s3:") }

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func obj(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func getAtt(id, attr string) map[string]any { return obj("Fn::GetAtt", []any{id, attr}) }
func ref(id string) map[string]any          { return obj("Ref", id) }

// TestBackupStack synthesizes the stack with the defaults and checks every property the
// deployment issue asks for.
func TestBackupStack(t *testing.T) {
	s := synth(t, map[string]any{"sourceBucketName": testSource})
	tpl := s.template

	t.Run("BackupBucket", func(t *testing.T) {
		has(t, tpl, "AWS::S3::Bucket", obj(
			"VersioningConfiguration", obj("Status", "Enabled"),
			"PublicAccessBlockConfiguration", obj("BlockPublicAcls", true, "BlockPublicPolicy", true, "IgnorePublicAcls", true, "RestrictPublicBuckets", true),
			"BucketEncryption", obj("ServerSideEncryptionConfiguration", []any{
				obj("ServerSideEncryptionByDefault", obj("SSEAlgorithm", "AES256")),
			}),
			"LifecycleConfiguration", obj(
				"TransitionDefaultMinimumObjectSize", "all_storage_classes_128K",
				"Rules", []any{
					obj("Id", "current-versions", "Status", "Enabled", "ExpirationInDays", 2555, "Transitions", []any{
						obj("StorageClass", "STANDARD_IA", "TransitionInDays", 30),
						obj("StorageClass", "GLACIER", "TransitionInDays", 90),
						obj("StorageClass", "DEEP_ARCHIVE", "TransitionInDays", 180),
					}),
					obj("Id", "noncurrent-versions", "Status", "Enabled",
						"AbortIncompleteMultipartUpload", obj("DaysAfterInitiation", 7),
						"ExpiredObjectDeleteMarker", true,
						"NoncurrentVersionExpiration", obj("NoncurrentDays", 365),
						"NoncurrentVersionTransitions", []any{
							obj("StorageClass", "STANDARD_IA", "TransitionInDays", 30),
							obj("StorageClass", "GLACIER", "TransitionInDays", 90),
							obj("StorageClass", "DEEP_ARCHIVE", "TransitionInDays", 180),
						}),
				}),
		))
		bucket := s.resource(t, BackupBucketID)
		if bucket["DeletionPolicy"] != "Retain" || bucket["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("backup bucket DeletionPolicy %v, UpdateReplacePolicy %v; want Retain", bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"])
		}
		if len(s.resourcesOfType("AWS::KMS::Key")) != 0 {
			t.Error("a KMS key exists though backupKms is off")
		}
	})

	t.Run("TLSOnlyBucketPolicies", func(t *testing.T) {
		for _, id := range []string{BackupBucketID, RunBucketID} {
			has(t, tpl, "AWS::S3::BucketPolicy", obj(
				"Bucket", ref(id),
				"PolicyDocument", obj("Statement", assertions.Match_ArrayWith(&[]any{obj(
					"Effect", "Deny",
					"Action", "s3:*",
					"Principal", obj("AWS", "*"),
					"Condition", obj("Bool", obj("aws:SecureTransport", "false")),
					"Resource", []any{getAtt(id, "Arn"), obj("Fn::Join", []any{"", []any{getAtt(id, "Arn"), "/*"}})},
				)})),
			))
		}
	})

	// The bucket policies are retained with their buckets: a retained bucket without its policy
	// would accept requests without TLS.
	t.Run("BucketPoliciesRetained", func(t *testing.T) {
		policies := s.resourcesOfType("AWS::S3::BucketPolicy")
		buckets := map[string]bool{}
		for id, pol := range policies {
			if pol["DeletionPolicy"] != "Retain" || pol["UpdateReplacePolicy"] != "Retain" {
				t.Errorf("bucket policy %s: DeletionPolicy %v, UpdateReplacePolicy %v; want Retain like its bucket",
					id, pol["DeletionPolicy"], pol["UpdateReplacePolicy"])
			}
			bucket, _ := pol["Properties"].(map[string]any)["Bucket"].(map[string]any)
			name, _ := bucket["Ref"].(string)
			buckets[name] = true
		}
		if len(policies) != 3 || !buckets[BackupBucketID] || !buckets[RunBucketID] || !buckets[DrillBucketID] {
			t.Errorf("bucket policies of %v, want exactly the backup, run and drill buckets'", buckets)
		}
	})

	t.Run("RunBucket", func(t *testing.T) {
		has(t, tpl, "AWS::S3::Bucket", obj(
			"PublicAccessBlockConfiguration", obj("BlockPublicAcls", true, "BlockPublicPolicy", true, "IgnorePublicAcls", true, "RestrictPublicBuckets", true),
			"LifecycleConfiguration", obj("Rules", []any{
				obj("Id", "map-results", "Prefix", "map-results/", "ExpirationInDays", 7, "Status", "Enabled"),
				obj("Id", "work", "Prefix", "work/", "ExpirationInDays", 7, "Status", "Enabled"),
				obj("Id", "index", "Prefix", "index/", "ExpirationInDays", IndexExpiryDays, "Status", "Enabled"),
				obj("Id", "runs", "Prefix", "runs/", "ExpirationInDays", 365, "Status", "Enabled"),
				obj("Id", "abort-incomplete-uploads", "AbortIncompleteMultipartUpload", obj("DaysAfterInitiation", 1), "Status", "Enabled"),
			}),
		))
		run := s.resource(t, RunBucketID)
		if props := run["Properties"].(map[string]any); props["VersioningConfiguration"] != nil {
			t.Error("run bucket is versioned; its records are written once")
		}
		if run["DeletionPolicy"] != "Retain" {
			t.Errorf("run bucket DeletionPolicy %v, want Retain (reports are the audit trail)", run["DeletionPolicy"])
		}
	})

	t.Run("Functions", func(t *testing.T) {
		memory := map[string]int{Lister: 256, Copier: 1024, Reporter: 512, Planner: 512, RestoreCopier: 1024, Verifier: 512}
		local := map[string]string{Lister: localrun.ListerName, Copier: localrun.CopierName, Reporter: localrun.ReporterName,
			Planner: localrun.PlannerName, RestoreCopier: localrun.RestoreCopierName, Verifier: localrun.VerifierName}
		for _, fn := range Functions {
			if fn == Console {
				continue // TestConsoleStack
			}
			env := obj("SOURCE_BUCKET", testSource, "BACKUP_BUCKET", ref(BackupBucketID), "RUN_BUCKET", ref(RunBucketID))
			switch fn {
			case Lister:
				env["MAX_DELETE_PERCENT"] = fmt.Sprint(guard.DefaultMaxDeletePercent)
				env["DELETE_GUARD_FLOOR"] = fmt.Sprint(guard.DefaultDeleteFloor)
				env["MAX_CHANGE_PERCENT"] = fmt.Sprint(guard.DefaultMaxChangePercent)
				env["CHANGE_GUARD_FLOOR"] = fmt.Sprint(guard.DefaultChangeFloor)
				env["ARCHIVED_SOURCES"] = lister.DefaultArchivedSources
				env["LISTER_CONCURRENCY"] = fmt.Sprint(lister.DefaultListConcurrency)
				env["FILTERS"] = ""
			case Planner, RestoreCopier:
				// default: restore into the source; and the drills' scratch copies into the drill bucket
				env["RESTORE_TARGETS"] = obj("Fn::Join", []any{"", []any{testSource + ",", ref(DrillBucketID)}})
				env["ALLOW_EXACT_ROLLBACK"] = "false"
			case Verifier:
				env["DRILL_BUCKET"] = ref(DrillBucketID)
			case Reporter: // TestNotifications
				env["NOTIFY_TOPIC_ARN"], env["NOTIFY_ON"], env["NAME_PREFIX"] = ref(NotifyTopicID), "always", "bucketvault"
				env["LISTER_MEMORY_MB"], env["COPIER_MEMORY_MB"], env["PLANNER_MEMORY_MB"], env["REPORTER_MEMORY_MB"] = "256", "1024", "512", "512"
				env["CONSOLE_URL"] = getAtt(ConsoleAPIID, "ApiEndpoint")
			}
			has(t, tpl, "AWS::Lambda::Function", obj(
				"FunctionName", local[fn], // the names the local runner uses
				"Runtime", "provided.al2023",
				"Architectures", []any{"arm64"},
				"Handler", "bootstrap",
				"MemorySize", memory[fn],
				"Timeout", 900,
				"Role", getAtt(RoleID(fn), "Arn"),
				"LoggingConfig", obj("LogGroup", ref(LogGroupID(fn))),
				"Environment", obj("Variables", assertions.Match_ObjectEquals(&env)),
				"Code", obj("S3Key", assertions.Match_StringLikeRegexp(jsii.String(`^[0-9a-f]{64}\.zip$`))),
			))
			has(t, tpl, "AWS::Logs::LogGroup", obj(
				"LogGroupName", "/aws/lambda/"+local[fn], "RetentionInDays", 90,
			))
		}
		if n := len(s.resourcesOfType("AWS::Lambda::Function")); n != len(Functions) {
			t.Errorf("%d functions, want %d (no helper functions: they would bring roles of their own)", n, len(Functions))
		}
	})

	t.Run("StateMachine", func(t *testing.T) {
		has(t, tpl, "AWS::StepFunctions::StateMachine", obj(
			"StateMachineName", localrun.StateMachineName,
			"StateMachineType", "STANDARD",
			"RoleArn", getAtt(StateMachineRoleID, "Arn"),
			"TracingConfiguration", obj("Enabled", true),
			"LoggingConfiguration", obj(
				"Level", "ERROR", "IncludeExecutionData", true,
				"Destinations", []any{obj("CloudWatchLogsLogGroup", obj("LogGroupArn", getAtt(StateMachineLogsID, "Arn")))},
			),
			"DefinitionSubstitutions", assertions.Match_ObjectEquals(&map[string]any{
				"ListerFunctionArn":   getAtt(FunctionID(Lister), "Arn"),
				"CopierFunctionArn":   getAtt(FunctionID(Copier), "Arn"),
				"ReporterFunctionArn": getAtt(FunctionID(Reporter), "Arn"),
				"RunBucket":           ref(RunBucketID),
			}),
		))
		props := s.resource(t, StateMachineID)["Properties"].(map[string]any)
		def, ok := props["DefinitionString"].(string)
		if !ok {
			t.Fatalf("DefinitionString is %T, want the file's text", props["DefinitionString"])
		}
		if def != string(statemachine.Backup) {
			t.Fatal("DefinitionString is not statemachine/backup.asl.json byte for byte")
		}
		// What CloudFormation hands Step Functions: the file with the substitutions resolved.
		subs := map[string]string{}
		for name, v := range props["DefinitionSubstitutions"].(map[string]any) {
			val, err := s.resolver.Resolve(v)
			if err != nil {
				t.Fatal(err)
			}
			subs[name] = val
		}
		got, err := statemachine.Render([]byte(def), subs)
		if err != nil {
			t.Fatal(err)
		}
		want, err := statemachine.Render(statemachine.Backup, map[string]string{
			"ListerFunctionArn":   localrun.FunctionARN(localrun.ListerName),
			"CopierFunctionArn":   localrun.FunctionARN(localrun.CopierName),
			"ReporterFunctionArn": localrun.FunctionARN(localrun.ReporterName),
			"RunBucket":           testRun,
		})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("rendered definition differs from the file rendered with the stack's functions and run bucket")
		}
		if strings.Contains(string(got), "${") {
			t.Error("rendered definition still has a ${...} placeholder")
		}
	})

	t.Run("Schedule", func(t *testing.T) {
		has(t, tpl, "AWS::Scheduler::Schedule", obj(
			"ScheduleExpression", "cron(0 2 * * ? *)",
			"ScheduleExpressionTimezone", "UTC",
			"State", "ENABLED",
			"FlexibleTimeWindow", obj("Mode", "OFF"),
			"Target", obj(
				"Arn", ref(StateMachineID),
				"Input", "{}",
				"RetryPolicy", obj("MaximumRetryAttempts", 5, "MaximumEventAgeInSeconds", 3600),
				"DeadLetterConfig", obj("Arn", getAtt(ScheduleDLQID, "Arn")),
			),
		))
		// The weekly restore drill.
		has(t, tpl, "AWS::Scheduler::Schedule", obj(
			"ScheduleExpression", DefaultVerifySchedule, "ScheduleExpressionTimezone", "UTC", "State", "ENABLED",
			"Target", obj("Arn", ref(VerifyStateMachineID), "Input", "{}"),
		))
		// Each schedule's role may start its state machine and write to the dead-letter queue,
		// nothing else.
		var started []string
		for id := range s.resourcesOfType("AWS::IAM::Role") {
			if !strings.HasPrefix(id, "SchedulerRole") {
				continue
			}
			g := grants(s.statements(t, id), func(string) bool { return true })
			if len(g) != 2 || !slices.Contains(g, "Allow sqs:SendMessage arn:test:"+ScheduleDLQID+".Arn") {
				t.Errorf("schedule role %s grants %v", id, g)
			}
			for _, line := range g {
				if strings.HasPrefix(line, "Allow states:StartExecution ") {
					started = append(started, strings.TrimPrefix(line, "Allow states:StartExecution "))
				}
			}
		}
		slices.Sort(started)
		if want := []string{"ref:" + StateMachineID, "ref:" + VerifyStateMachineID}; !slices.Equal(started, want) {
			t.Errorf("the schedules may start %v, want %v", started, want)
		}
	})

	t.Run("Alarms", func(t *testing.T) {
		for _, metric := range []string{"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"} {
			has(t, tpl, "AWS::CloudWatch::Alarm", obj(
				"Namespace", "AWS/States", "MetricName", metric, "Statistic", "Sum", "Threshold", 1,
				"ComparisonOperator", "GreaterThanOrEqualToThreshold",
				"Dimensions", []any{obj("Name", "StateMachineArn", "Value", ref(StateMachineID))},
				"AlarmActions", []any{ref(AlarmTopicID)},
			))
		}
		has(t, tpl, "AWS::CloudWatch::Alarm", obj(
			"Namespace", "AWS/SQS", "MetricName", "ApproximateNumberOfMessagesVisible", "Threshold", 1,
			"Dimensions", []any{obj("Name", "QueueName", "Value", getAtt(ScheduleDLQID, "QueueName"))},
			"AlarmActions", []any{ref(AlarmTopicID)},
		))
		has(t, tpl, "AWS::CloudWatch::Alarm", obj(
			"Namespace", "AWS/Scheduler", "MetricName", "InvocationDroppedCount", "Threshold", 1,
			"Dimensions", []any{obj("Name", "ScheduleGroup", "Value", "bucketvault")},
			"AlarmActions", []any{ref(AlarmTopicID)},
		))
		tpl.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(9)) // and the silence alarm (TestNotifications), the failed drills
		tpl.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(0))
	})

	t.Run("AlarmTopicPolicy", func(t *testing.T) {
		checkAlarmTopicPolicy(t, s, "bucketvault")
	})

	t.Run("Outputs", func(t *testing.T) {
		for name, value := range map[string]any{
			"StateMachineArn":  ref(StateMachineID),
			"SourceBucketName": testSource,
			"BackupBucketName": ref(BackupBucketID),
			"RunBucketName":    ref(RunBucketID),
		} {
			hasOutput(t, tpl, name, obj("Value", value))
		}
		hasOutput(t, tpl, "ExecutionsConsoleUrl", obj("Value", obj("Fn::Join", []any{"", []any{
			"https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/statemachines/view/",
			ref(StateMachineID),
		}})))
	})

	t.Run("LeastPrivilege", func(t *testing.T) {
		src, bak, run := "arn:aws:s3:::"+testSource, "arn:aws:s3:::"+testBackup, "arn:aws:s3:::"+testRun
		drill := "arn:test:" + DrillBucketID + ".Arn"
		want := map[string][]string{
			RoleID(Lister): {
				"Allow s3:ListBucket " + src,
				"Allow s3:ListBucket " + bak,
				"Allow s3:ListBucket " + run,
				"Allow s3:GetObjectTagging " + src + "/*",
				"Allow s3:GetBucketVersioning " + bak,
				"Allow s3:PutObject " + run + "/work/*/batches/*",
				"Allow s3:PutObject " + run + "/work/*/manifest.jsonl",
				"Allow s3:PutObject " + run + "/work/*/early-manifest.jsonl",
				"Allow s3:GetObject " + run + "/work/*/ranges.jsonl",
				"Allow s3:PutObject " + run + "/work/*/ranges.jsonl",
				"Allow s3:GetObject " + run + "/work/*/ranges-*.jsonl",
				"Allow s3:PutObject " + run + "/work/*/ranges-*.jsonl",
				"Allow s3:GetObject " + run + "/work/*/ranges/*",
				"Allow s3:PutObject " + run + "/work/*/ranges/*",
				"Allow s3:GetObject " + run + "/index/*",
				"Allow s3:PutObject " + run + "/index/*",
				"Allow s3:GetObject " + run + "/lock/*",
				"Allow s3:PutObject " + run + "/lock/*",
				"Allow s3:GetObject " + run + "/runs/*/report.json",
			},
			RoleID(Copier): {
				"Allow s3:GetObject " + run + "/work/*/batches/*",
				"Allow s3:PutObject " + run + "/work/*/outcomes/*",
				"Allow s3:PutObject " + run + "/index/*/copied/*",
				"Allow s3:GetObject " + run + "/work/*/uploads/*",
				"Allow s3:PutObject " + run + "/work/*/uploads/*",
				"Allow s3:ListBucket " + src,
				"Allow s3:ListBucket " + bak,
				"Allow s3:ListBucket " + run,
				"Allow s3:GetObject " + src + "/*",
				"Allow s3:GetObjectTagging " + src + "/*",
				"Allow s3:PutObject " + bak + "/*",
				"Allow s3:PutObjectTagging " + bak + "/*",
				"Allow s3:GetObject " + bak + "/*",
				"Allow s3:ListMultipartUploadParts " + bak + "/*",
				"Allow s3:AbortMultipartUpload " + bak + "/*",
				"Allow s3:DeleteObject " + bak + "/*",
			},
			RoleID(Reporter): {
				"Allow s3:ListBucket " + run,
				"Allow s3:GetObject " + run + "/work/*",
				"Allow s3:GetObject " + run + "/map-results/*",
				"Allow s3:PutObject " + run + "/runs/*/report.json",
			},
			RoleID(Planner): {
				"Allow s3:ListBucket " + bak,
				"Allow s3:ListBucket " + run,
				"Allow s3:ListBucket " + src,
				"Allow s3:ListBucket " + drill,
				"Allow s3:ListBucketVersions " + bak,
				"Allow s3:GetObjectVersion " + bak + "/*",
				"Allow s3:RestoreObject " + bak + "/*",
				"Allow s3:GetObject " + run + "/runs/*/report.json",
				"Allow s3:PutObject " + run + "/work/*/batches/*",
				"Allow s3:PutObject " + run + "/work/*/thaw/*",
				"Allow s3:PutObject " + run + "/work/*/manifest.jsonl",
				"Allow s3:PutObject " + run + "/work/*/preview-manifest.jsonl",
				"Allow s3:GetObject " + run + "/work/*/thaw/*",
			},
			RoleID(RestoreCopier): {
				"Allow s3:GetObject " + run + "/work/*/batches/*",
				"Allow s3:PutObject " + run + "/work/*/outcomes/*",
				"Allow s3:GetObject " + run + "/work/*/uploads/*",
				"Allow s3:PutObject " + run + "/work/*/uploads/*",
				"Allow s3:ListBucket " + bak,
				"Allow s3:ListBucket " + run,
				"Allow s3:ListBucket " + src,
				"Allow s3:GetObjectVersion " + bak + "/*",
				"Allow s3:GetObjectVersionTagging " + bak + "/*",
				"Allow s3:GetObjectTagging " + bak + "/*",
				"Allow s3:PutObject " + src + "/*",
				"Allow s3:PutObjectTagging " + src + "/*",
				"Allow s3:GetObject " + src + "/*",
				"Allow s3:ListMultipartUploadParts " + src + "/*",
				"Allow s3:AbortMultipartUpload " + src + "/*",
				// a drill's restore sample: the drill bucket's scratch prefix only
				"Allow s3:ListBucket " + drill,
				"Allow s3:PutObject " + drill + "/drill/*",
				"Allow s3:PutObjectTagging " + drill + "/drill/*",
				"Allow s3:GetObject " + drill + "/drill/*",
				"Allow s3:ListMultipartUploadParts " + drill + "/drill/*",
				"Allow s3:AbortMultipartUpload " + drill + "/drill/*",
			},
			// The console reads the backup and the run bucket; it writes nowhere.
			RoleID(Console): {
				"Allow s3:ListBucket " + bak,
				"Allow s3:ListBucket " + run,
				"Allow s3:ListBucketVersions " + bak,
				"Allow s3:GetObject " + bak + "/*",
				"Allow s3:GetObjectVersion " + bak + "/*",
				"Allow s3:GetObject " + run + "/runs/*",
				"Allow s3:GetObject " + run + "/work/*",
			},
			// The restore drill reads the source, the backup and the run bucket; it writes only its own files.
			RoleID(Verifier): {
				"Allow s3:ListBucket " + src,
				"Allow s3:ListBucket " + bak,
				"Allow s3:ListBucket " + run,
				"Allow s3:ListBucketVersions " + bak,
				"Allow s3:GetObject " + src + "/*",
				"Allow s3:GetObject " + bak + "/*",
				"Allow s3:GetObjectVersion " + bak + "/*",
				"Allow s3:GetObject " + run + "/runs/*/report.json",
				"Allow s3:GetObject " + run + "/work/*",
				"Allow s3:PutObject " + run + "/work/verify-*/verify/*",
				"Allow s3:PutObject " + run + "/runs/verify-*/report.json",
				// the restore sample: compare and delete the scratch copies, nothing else
				"Allow s3:GetObjectTagging " + src + "/*",
				"Allow s3:ListBucket " + drill,
				"Allow s3:ListBucketVersions " + drill,
				"Allow s3:GetObject " + drill + "/drill/*",
				"Allow s3:GetObjectTagging " + drill + "/drill/*",
				"Allow s3:DeleteObject " + drill + "/drill/*",
				"Allow s3:DeleteObjectVersion " + drill + "/drill/*",
			},
			VerifyStateMachineRoleID: {}, // it invokes the verifier and starts the restore: no Map, no S3
			RestoreStateMachineRoleID: {
				"Allow s3:GetObject " + run + "/work/*/manifest.jsonl",
				"Allow s3:PutObject " + run + "/map-results/*",
				"Allow s3:GetObject " + run + "/map-results/*",
				"Allow s3:AbortMultipartUpload " + run + "/map-results/*",
				"Allow s3:ListMultipartUploadParts " + run + "/map-results/*",
			},
			StateMachineRoleID: {
				"Allow s3:GetObject " + run + "/work/*/manifest.jsonl",
				"Allow s3:GetObject " + run + "/work/*/ranges.jsonl",
				"Allow s3:GetObject " + run + "/work/*/ranges-*.jsonl",
				"Allow s3:PutObject " + run + "/map-results/*",
				"Allow s3:GetObject " + run + "/map-results/*",
				"Allow s3:AbortMultipartUpload " + run + "/map-results/*",
				"Allow s3:ListMultipartUploadParts " + run + "/map-results/*",
			},
		}
		for role, lines := range want {
			equalLines(t, role+" S3 grants", grants(s.statements(t, role), isS3), lines)
		}
		for _, fn := range Functions {
			want := []string{
				"Allow logs:CreateLogStream arn:test:" + LogGroupID(fn) + ".Arn",
				"Allow logs:PutLogEvents arn:test:" + LogGroupID(fn) + ".Arn",
			}
			if fn == Reporter { // the run's summary: TestNotifications
				want = append(want, "Allow sns:Publish ref:"+NotifyTopicID)
			}
			if fn == Console { // restores and previews: executions of the restore state machine only
				want = append(want, "Allow states:StartExecution ref:"+RestoreStateMachineID,
					"Allow states:DescribeExecution arn:aws:states:us-east-1:123456789012:execution:"+localrun.RestoreStateMachineName+":*")
			}
			equalLines(t, fn+" non-S3 grants", grants(s.statements(t, RoleID(fn)), func(a string) bool { return !isS3(a) }), want)
		}
		sm := s.statements(t, StateMachineRoleID)
		var invoke []string
		for _, name := range []string{localrun.ListerName, localrun.CopierName, localrun.ReporterName} {
			arn := localrun.FunctionARN(name)
			invoke = append(invoke, "Allow lambda:InvokeFunction "+arn, "Allow lambda:InvokeFunction "+arn+":*")
		}
		smArn := "arn:aws:states:us-east-1:123456789012:stateMachine:" + localrun.StateMachineName
		execArn := "arn:aws:states:us-east-1:123456789012:execution:" + localrun.StateMachineName
		equalLines(t, "state machine grants outside S3, Logs and X-Ray", grants(sm, func(a string) bool {
			return !isS3(a) && !strings.HasPrefix(a, "logs:") && !strings.HasPrefix(a, "xray:")
		}), append(invoke,
			"Allow states:StartExecution "+smArn,
			"Allow states:DescribeExecution "+execArn+":*",
			"Allow states:StopExecution "+execArn+":*",
			"Allow states:DescribeExecution "+execArn+"/Copy:*",
			"Allow states:StopExecution "+execArn+"/Copy:*",
			"Allow states:DescribeExecution "+execArn+"/ListRanges:*",
			"Allow states:StopExecution "+execArn+"/ListRanges:*",
		))
		// The drill: the verifier, and the restore state machine started and waited for
		// (startExecution.sync:2, as AWS documents its IAM policy), nothing else.
		restoreExec := "arn:aws:states:us-east-1:123456789012:execution:" + localrun.RestoreStateMachineName
		verifierArn := localrun.FunctionARN(localrun.VerifierName)
		equalLines(t, "verify state machine grants outside S3, Logs and X-Ray", grants(s.statements(t, VerifyStateMachineRoleID), func(a string) bool {
			return !isS3(a) && !strings.HasPrefix(a, "logs:") && !strings.HasPrefix(a, "xray:")
		}), []string{
			"Allow lambda:InvokeFunction " + verifierArn, "Allow lambda:InvokeFunction " + verifierArn + ":*",
			"Allow states:StartExecution arn:aws:states:us-east-1:123456789012:stateMachine:" + localrun.RestoreStateMachineName,
			"Allow states:DescribeExecution " + restoreExec + ":*",
			"Allow states:StopExecution " + restoreExec + ":*",
			"Allow events:PutTargets arn:aws:events:us-east-1:123456789012:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
			"Allow events:PutRule arn:aws:events:us-east-1:123456789012:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
			"Allow events:DescribeRule arn:aws:events:us-east-1:123456789012:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
		})
		// Log delivery and X-Ray accept no narrower resource than "*" (their actions are named).
		for _, st := range sm {
			for _, a := range st.Action {
				if (strings.HasPrefix(a, "logs:") || strings.HasPrefix(a, "xray:")) && !slices.Equal(st.Resource, []string{"*"}) {
					t.Errorf("state machine %s on %v", a, st.Resource)
				}
			}
		}
		// The copier can never erase history nor touch the source.
		copier := s.statements(t, RoleID(Copier))
		for _, forbidden := range []string{"s3:DeleteObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging", "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning"} {
			if policydoc.Allows(copier, forbidden, src+"/*") || policydoc.Allows(copier, forbidden, src) {
				t.Errorf("copier may %s on the source", forbidden)
			}
		}
		if slices.Contains(policydoc.Actions(copier), "s3:DeleteObjectVersion") {
			t.Error("copier may delete object versions")
		}
		// Restores never delete anything, anywhere.
		for _, fn := range []string{Planner, RestoreCopier} {
			for _, a := range policydoc.Actions(s.statements(t, RoleID(fn))) {
				if strings.HasPrefix(a, "s3:Delete") {
					t.Errorf("%s may %s", fn, a)
				}
			}
		}
	})

	t.Run("NoWildcards", func(t *testing.T) {
		checkNoWildcards(t, s)
	})

	t.Run("NoManagedPolicies", func(t *testing.T) {
		for id, role := range s.resourcesOfType("AWS::IAM::Role") {
			if props := role["Properties"].(map[string]any); props["ManagedPolicyArns"] != nil {
				t.Errorf("role %s has managed policies %v", id, props["ManagedPolicyArns"])
			}
		}
	})
}

// checkAlarmTopicPolicy checks the alarm topic's policy: a topic policy replaces SNS's default
// one, so it must let CloudWatch publish this stack's alarms (and nothing else), besides denying
// requests without TLS; and every alarm must be one the policy lets publish.
func checkAlarmTopicPolicy(t *testing.T, s *synthesized, prefix string) {
	t.Helper()
	var doc map[string]any
	for id, res := range s.resourcesOfType("AWS::SNS::TopicPolicy") {
		props := res["Properties"].(map[string]any)
		if topics, _ := props["Topics"].([]any); len(topics) == 1 && fmt.Sprint(topics[0]) == fmt.Sprint(ref(NotifyTopicID)) {
			// The summaries' topic: only the TLS-only Deny (the reporter publishes with its role).
			js, _ := json.Marshal(props["PolicyDocument"])
			if n := strings.Count(string(js), `"Effect":"Allow"`); n != 0 || !strings.Contains(string(js), `"aws:SecureTransport":"false"`) {
				t.Errorf("notify topic policy %s: %s", id, js)
			}
			continue
		}
		if topics, _ := props["Topics"].([]any); len(topics) != 1 || fmt.Sprint(topics[0]) != fmt.Sprint(ref(AlarmTopicID)) {
			t.Errorf("topic policy %s is for %v, want the alarm topic", id, props["Topics"])
			continue
		}
		if doc != nil {
			t.Fatal("the alarm topic has two topic policies")
		}
		doc = props["PolicyDocument"].(map[string]any)
	}
	if doc == nil {
		t.Fatal("the alarm topic has no topic policy")
	}
	source := "arn:aws:cloudwatch:" + testRegion + ":" + testAccount + ":alarm:" + prefix + "-*"
	var allows, tlsDenies int
	for _, raw := range doc["Statement"].([]any) {
		st := raw.(map[string]any)
		switch st["Effect"] {
		case "Deny":
			cond, _ := json.Marshal(st["Condition"])
			if fmt.Sprint(st["Action"]) == "sns:Publish" && strings.Contains(string(cond), `"aws:SecureTransport":"false"`) {
				tlsDenies++
			}
		case "Allow":
			allows++
			if got := fmt.Sprint(st["Principal"]); got != fmt.Sprint(obj("Service", "cloudwatch.amazonaws.com")) {
				t.Errorf("topic policy allows principal %s, want only the CloudWatch service", got)
			}
			if fmt.Sprint(st["Action"]) != "sns:Publish" {
				t.Errorf("topic policy allows %v, want sns:Publish only", st["Action"])
			}
			if fmt.Sprint(st["Resource"]) != fmt.Sprint(ref(AlarmTopicID)) {
				t.Errorf("topic policy allows on %v, want the alarm topic", st["Resource"])
			}
			cond, _ := st["Condition"].(map[string]any)
			arnLike, _ := cond["ArnLike"].(map[string]any)
			got, err := s.resolver.Resolve(arnLike["aws:SourceArn"])
			if err != nil || got != source {
				t.Errorf("CloudWatch may publish for aws:SourceArn %q (%v), want %q", got, err, source)
			}
			equals, _ := cond["StringEquals"].(map[string]any)
			if equals["aws:SourceAccount"] != testAccount {
				t.Errorf("aws:SourceAccount %v, want %s", equals["aws:SourceAccount"], testAccount)
			}
			if len(cond) != 2 {
				t.Errorf("condition %v, want exactly ArnLike aws:SourceArn and StringEquals aws:SourceAccount", cond)
			}
		}
	}
	if allows != 1 || tlsDenies != 1 {
		t.Errorf("alarm topic policy has %d Allow and %d TLS Deny statements, want one each", allows, tlsDenies)
	}
	alarms := s.resourcesOfType("AWS::CloudWatch::Alarm")
	if len(alarms) == 0 {
		t.Fatal("no alarms")
	}
	for id, a := range alarms {
		props := a["Properties"].(map[string]any)
		name, _ := props["AlarmName"].(string)
		if !strings.HasPrefix(name, prefix+"-") {
			t.Errorf("alarm %s is named %q: the topic policy lets only %s publish", id, name, source)
		}
		if fmt.Sprint(props["AlarmActions"]) != fmt.Sprint([]any{ref(AlarmTopicID)}) {
			t.Errorf("alarm %s notifies %v, want the alarm topic", id, props["AlarmActions"])
		}
	}
}

// checkNoWildcards checks every policy in the template: no Allow statement names a wildcard
// action, and none grants S3 on "*". The only "*" actions are the Deny statements of the TLS-only
// resource policies.
func checkNoWildcards(t *testing.T, s *synthesized) {
	t.Helper()
	roles := s.resourcesOfType("AWS::IAM::Role")
	if len(roles) < 5 {
		t.Fatalf("%d roles, want at least the three functions', the state machine's and the schedule's", len(roles))
	}
	for id := range roles {
		st := s.statements(t, id)
		if w := policydoc.Wildcards(st); len(w) > 0 {
			t.Errorf("role %s: %s", id, strings.Join(w, "; "))
		}
	}
	for _, typ := range []string{"AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::KMS::Key"} {
		for id, res := range s.resourcesOfType(typ) {
			props := res["Properties"].(map[string]any)
			doc, _ := props["PolicyDocument"].(map[string]any)
			if typ == "AWS::KMS::Key" {
				doc, _ = props["KeyPolicy"].(map[string]any)
			}
			for _, raw := range doc["Statement"].([]any) {
				st := raw.(map[string]any)
				actions, _ := st["Action"].([]any)
				if a, ok := st["Action"].(string); ok {
					actions = []any{a}
				}
				for _, a := range actions {
					if !strings.Contains(a.(string), "*") {
						continue
					}
					cond, _ := json.Marshal(st["Condition"])
					if st["Effect"] != "Deny" || !strings.Contains(string(cond), `"aws:SecureTransport":"false"`) {
						t.Errorf("%s %s: %v %v outside a TLS-only Deny", typ, id, st["Effect"], a)
					}
				}
			}
		}
	}
}

// TestBackupStackSettings synthesizes with every kind of setting changed, as `cdk deploy -c
// key=value` passes them (strings), and checks that each takes effect.
func TestBackupStackSettings(t *testing.T) {
	s := synth(t, map[string]any{
		"sourceBucketName":                   testSource,
		"namePrefix":                         "bv-prod",
		"backupBucketName":                   testBackup,
		"backupKms":                          "true",
		"schedule":                           "cron(30 1 ? * MON-FRI *)",
		"scheduleTimeZone":                   "Europe/Berlin",
		"scheduleEnabled":                    "false",
		"alarmEmail":                         "ops@example.com",
		"lifecycleExpireDays":                "0",
		"noncurrentExpireDays":               "730",
		"noncurrentDeepArchiveDays":          "0",
		"transitionDefaultMinimumObjectSize": "varies_by_storage_class",
		"runResultsExpiryDays":               "3",
		"logRetentionDays":                   "30",
		"stateMachineLogLevel":               "ALL",
		"maxDeletePercent":                   "10",
		"deleteGuardFloor":                   "50",
		"maxChangePercent":                   "100",
		"changeGuardFloor":                   "1",
		"archivedSources":                    "fail",
		"listConcurrency":                    "100",
		"copierMemoryMB":                     "768",
		"allowExactRollback":                 "true",
		"restoreTargets":                     testSource + ",restore-scratch",
	})
	tpl := s.template

	t.Run("ExactRollback", func(t *testing.T) {
		// Only with allowExactRollback may the restore copier delete in its targets (a delete
		// marker: never s3:DeleteObjectVersion), and the planner check their versioning.
		del := grants(s.statements(t, RoleID(RestoreCopier)), func(a string) bool { return a == "s3:DeleteObject" || a == "s3:DeleteObjectVersion" })
		equalLines(t, "restore copier deletions", del, []string{"Allow s3:DeleteObject arn:aws:s3:::" + testSource + "/*", "Allow s3:DeleteObject arn:aws:s3:::restore-scratch/*"})
		ver := grants(s.statements(t, RoleID(Planner)), func(a string) bool { return a == "s3:GetBucketVersioning" })
		equalLines(t, "planner versioning checks", ver, []string{"Allow s3:GetBucketVersioning arn:aws:s3:::" + testSource, "Allow s3:GetBucketVersioning arn:aws:s3:::restore-scratch"})
		for _, fn := range []string{Planner, RestoreCopier, Console} {
			env := s.resource(t, FunctionID(fn))["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
			if env["ALLOW_EXACT_ROLLBACK"] != "true" {
				t.Errorf("%s: ALLOW_EXACT_ROLLBACK=%v", fn, env["ALLOW_EXACT_ROLLBACK"])
			}
		}
	})

	t.Run("KMS", func(t *testing.T) {
		has(t, tpl, "AWS::S3::Bucket", obj(
			"BucketName", testBackup,
			"BucketEncryption", obj("ServerSideEncryptionConfiguration", []any{obj(
				"BucketKeyEnabled", true,
				"ServerSideEncryptionByDefault", obj("SSEAlgorithm", "aws:kms", "KMSMasterKeyID", getAtt(BackupKeyID, "Arn")),
			)}),
		))
		has(t, tpl, "AWS::KMS::Key", obj("EnableKeyRotation", true))
		if key := s.resource(t, BackupKeyID); key["DeletionPolicy"] != "Retain" {
			t.Errorf("key DeletionPolicy %v, want Retain: deleting it would make the backup unreadable", key["DeletionPolicy"])
		}
		copier := s.statements(t, RoleID(Copier))
		keyArn := "arn:test:" + BackupKeyID + ".Arn"
		for _, a := range []string{"kms:GenerateDataKey", "kms:Decrypt"} {
			if !policydoc.Allows(copier, a, keyArn) {
				t.Errorf("copier lacks %s on the backup key", a)
			}
		}
		// Change detection under the key: the lister reads and writes the ETag index, the copier
		// records its copies in it, and the index outlives the work files.
		run := "arn:aws:s3:::" + testRun
		if !policydoc.Allows(s.statements(t, RoleID(Lister)), "s3:GetObject", run+"/index/*") ||
			!policydoc.Allows(s.statements(t, RoleID(Lister)), "s3:PutObject", run+"/index/*") {
			t.Error("the lister cannot read and write the ETag index")
		}
		if !policydoc.Allows(copier, "s3:PutObject", run+"/index/*/copied/*") || policydoc.Allows(copier, "s3:PutObject", run+"/index/current.json") {
			t.Error("the copier must write index/*/copied/* and nothing else of the index")
		}
		has(t, tpl, "AWS::S3::Bucket", obj("LifecycleConfiguration", obj("Rules", assertions.Match_ArrayWith(&[]any{
			assertions.Match_ObjectLike(&map[string]any{"Id": "index", "Prefix": "index/", "ExpirationInDays": IndexExpiryDays}),
		}))))
		for _, role := range []string{RoleID(Lister), RoleID(Reporter), StateMachineRoleID} {
			for _, a := range policydoc.Actions(s.statements(t, role)) {
				if strings.HasPrefix(a, "kms:") {
					t.Errorf("%s has %s", role, a)
				}
			}
		}
		checkNoWildcards(t, s)
	})

	t.Run("Lifecycle", func(t *testing.T) {
		has(t, tpl, "AWS::S3::Bucket", obj(
			"BucketName", testBackup,
			"LifecycleConfiguration", obj(
				"TransitionDefaultMinimumObjectSize", "varies_by_storage_class",
				"Rules", []any{
					obj("Id", "current-versions", "ExpirationInDays", assertions.Match_Absent(), "Transitions", []any{
						obj("StorageClass", "STANDARD_IA", "TransitionInDays", 30),
						obj("StorageClass", "GLACIER", "TransitionInDays", 90),
						obj("StorageClass", "DEEP_ARCHIVE", "TransitionInDays", 180),
					}),
					obj("Id", "noncurrent-versions",
						"NoncurrentVersionExpiration", obj("NoncurrentDays", 730),
						"NoncurrentVersionTransitions", []any{
							obj("StorageClass", "STANDARD_IA", "TransitionInDays", 30),
							obj("StorageClass", "GLACIER", "TransitionInDays", 90),
						}),
				}),
		))
		has(t, tpl, "AWS::S3::Bucket", obj("LifecycleConfiguration", obj("Rules", assertions.Match_ArrayWith(&[]any{
			assertions.Match_ObjectLike(&map[string]any{"Id": "map-results", "ExpirationInDays": 3}),
		}))))
	})

	t.Run("AlarmTopicPolicy", func(t *testing.T) {
		checkAlarmTopicPolicy(t, s, "bv-prod")
	})

	t.Run("NamesScheduleAlarmsLogs", func(t *testing.T) {
		has(t, tpl, "AWS::Lambda::Function", obj("FunctionName", "bv-prod-copier", "MemorySize", 768))
		has(t, tpl, "AWS::Lambda::Function", obj("FunctionName", "bv-prod-lister",
			"Environment", obj("Variables", obj("MAX_DELETE_PERCENT", "10", "DELETE_GUARD_FLOOR", "50",
				"MAX_CHANGE_PERCENT", "100", "CHANGE_GUARD_FLOOR", "1", "ARCHIVED_SOURCES", "fail", "LISTER_CONCURRENCY", "100"))))
		has(t, tpl, "AWS::StepFunctions::StateMachine", obj("StateMachineName", "bv-prod-backup",
			"LoggingConfiguration", obj("Level", "ALL")))
		has(t, tpl, "AWS::Logs::LogGroup", obj("LogGroupName", "/aws/lambda/bv-prod-reporter", "RetentionInDays", 30))
		has(t, tpl, "AWS::Scheduler::Schedule", obj(
			"ScheduleExpression", "cron(30 1 ? * MON-FRI *)", "ScheduleExpressionTimezone", "Europe/Berlin", "State", "DISABLED",
		))
		has(t, tpl, "AWS::SNS::Subscription", obj(
			"Protocol", "email", "Endpoint", "ops@example.com", "TopicArn", ref(AlarmTopicID),
		))
		// The Distributed Map's grants follow the state machine's name.
		sm := s.statements(t, StateMachineRoleID)
		if !policydoc.Allows(sm, "states:StartExecution", "arn:aws:states:us-east-1:123456789012:stateMachine:bv-prod-backup") {
			t.Error("state machine may not start its own child executions under the new name")
		}
	})
}

// TestConsoleStack: the console is behind Cognito sign-in (no self sign-up, a public client
// with the authorization code flow only, its callback the API's own address); every route of
// its API goes to the console function, which checks the session on each; the function's
// settings name the user pool and the restore state machine.
func TestConsoleStack(t *testing.T) {
	s := synth(t, map[string]any{"sourceBucketName": testSource, "consoleAdminEmail": "admin@example.com", "consoleRestoreGroup": "restorers"})
	tpl := s.template
	has(t, tpl, "AWS::Cognito::UserPool", obj("AdminCreateUserConfig", obj("AllowAdminCreateUserOnly", true), "UsernameAttributes", []any{"email"}, "UserPoolTier", "LITE"))
	clients := s.resourcesOfType("AWS::Cognito::UserPoolClient")
	if len(clients) != 1 {
		t.Fatalf("%d user pool clients, want 1", len(clients))
	}
	for _, c := range clients {
		p := c["Properties"].(map[string]any)
		js, _ := json.Marshal(p)
		if p["GenerateSecret"] != false || fmt.Sprint(p["AllowedOAuthFlows"]) != "[code]" || p["AllowedOAuthFlowsUserPoolClient"] != true ||
			fmt.Sprint(p["SupportedIdentityProviders"]) != "[COGNITO]" || fmt.Sprint(p["AllowedOAuthScopes"]) != "[openid email profile]" {
			t.Errorf("console client: %s", js)
		}
		if !strings.Contains(string(js), `"CallbackURLs":[{"Fn::Join":["",[{"Fn::GetAtt":["ConsoleApi","ApiEndpoint"]},"/auth/callback"]]}]`) {
			t.Errorf("console client's callback is not the API's /auth/callback: %s", js)
		}
	}
	has(t, tpl, "AWS::Cognito::UserPoolGroup", obj("GroupName", "restorers"))
	has(t, tpl, "AWS::Cognito::UserPoolUser", obj("Username", "admin@example.com", "DesiredDeliveryMediums", []any{"EMAIL"}))
	has(t, tpl, "AWS::Cognito::UserPoolUserToGroupAttachment", obj("GroupName", ref(ConsoleRestoreGroupID), "Username", ref(ConsoleAdminID)))

	// Every route of the API goes to the console function, and there is no other integration.
	integrations := s.resourcesOfType("AWS::ApiGatewayV2::Integration")
	for id, in := range integrations {
		p := in["Properties"].(map[string]any)
		if p["IntegrationType"] != "AWS_PROXY" || fmt.Sprint(p["IntegrationUri"]) != fmt.Sprint(getAtt(FunctionID(Console), "Arn")) || p["PayloadFormatVersion"] != "2.0" {
			t.Errorf("integration %s: %v", id, p)
		}
	}
	var routes []string
	for _, r := range s.resourcesOfType("AWS::ApiGatewayV2::Route") {
		p := r["Properties"].(map[string]any)
		if p["AuthorizationType"] != nil && p["AuthorizationType"] != "NONE" {
			t.Errorf("route %v has an API Gateway authorizer; the console checks sessions itself", p["RouteKey"])
		}
		target := fmt.Sprint(p["Target"])
		found := false
		for id := range integrations {
			found = found || strings.Contains(target, id)
		}
		if !found {
			t.Errorf("route %v targets %s, not the console's integration", p["RouteKey"], target)
		}
		routes = append(routes, fmt.Sprint(p["RouteKey"]))
	}
	slices.Sort(routes)
	if want := []string{"GET /", "GET /{proxy+}", "POST /{proxy+}"}; !slices.Equal(routes, want) {
		t.Errorf("routes %v, want %v", routes, want)
	}

	fn := s.resource(t, FunctionID(Console))["Properties"].(map[string]any)
	env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	if fn["Timeout"] != float64(ConsoleTimeoutSeconds) || fmt.Sprint(env["RESTORE_STATE_MACHINE_ARN"]) != fmt.Sprint(ref(RestoreStateMachineID)) ||
		env["RESTORE_GROUP"] != "restorers" || fmt.Sprint(env["OIDC_ISSUER"]) != fmt.Sprint(getAtt(ConsoleUserPoolID, "ProviderURL")) || env["OIDC_CLIENT_ID"] == nil || env["CONSOLE_URL"] == nil {
		t.Errorf("console function: timeout %v, environment %v", fn["Timeout"], env)
	}
	// The console's role is checked grant by grant in TestBackupStack/LeastPrivilege; a
	// restore it starts runs under the restore state machine's roles.
	hasOutput(t, tpl, "ConsoleUrl", obj("Value", obj("Fn::Join", []any{"", []any{getAtt(ConsoleAPIID, "ApiEndpoint"), "/"}})))

	off := synth(t, map[string]any{"sourceBucketName": testSource, "console": "false"})
	for _, typ := range []string{"AWS::Cognito::UserPool", "AWS::ApiGatewayV2::Api"} {
		if n := len(off.resourcesOfType(typ)); n != 0 {
			t.Errorf("console=false: %d %s", n, typ)
		}
	}
	if off.stack.Functions[Console] != nil {
		t.Error("console=false: a console function")
	}
}

// TestNotifications: the summaries' topic, which only the reporter may publish to; the
// reporter's settings; the silence alarm (no successful backup of the whole bucket in N hours,
// missing data breaching); the dashboard of the reporter's metrics.
func TestNotifications(t *testing.T) {
	s := synth(t, map[string]any{"sourceBucketName": testSource, "notifyOn": "failure", "notifyEmail": "team@example.com",
		"notifyUrls": "https://hooks.example.com/bv", "notifyUrlsSecret": "bv/notify-urls", "heartbeatUrl": "https://hc-ping.com/0f0e", "silenceHours": "50"})
	tpl := s.template
	has(t, tpl, "AWS::SNS::Subscription", obj("Protocol", "email", "Endpoint", "team@example.com", "TopicArn", ref(NotifyTopicID)))
	env := s.resource(t, FunctionID(Reporter))["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
	for k, want := range map[string]any{"NOTIFY_ON": "failure", "NOTIFY_URLS": "https://hooks.example.com/bv", "NOTIFY_URLS_SECRET_ARN": "bv/notify-urls",
		"HEARTBEAT_URL": "https://hc-ping.com/0f0e", "NOTIFY_TOPIC_ARN": ref(NotifyTopicID)} {
		if fmt.Sprint(env[k]) != fmt.Sprint(want) {
			t.Errorf("reporter %s = %v, want %v", k, env[k], want)
		}
	}
	// Who may publish: the reporter, to this topic only; it may read that one secret.
	for roleID := range map[string]bool{RoleID(Lister): true, RoleID(Copier): true, RoleID(Planner): true, RoleID(RestoreCopier): true, RoleID(Console): true, StateMachineRoleID: true, RestoreStateMachineRoleID: true} {
		if g := grants(s.statements(t, roleID), func(a string) bool { return strings.HasPrefix(a, "sns:") || strings.HasPrefix(a, "secretsmanager:") }); len(g) != 0 {
			t.Errorf("%s may %v", roleID, g)
		}
	}
	var got []string
	for _, pol := range s.resourcesOfType("AWS::IAM::Policy") {
		props := pol["Properties"].(map[string]any)
		if fmt.Sprint(props["Roles"]) != fmt.Sprint([]any{ref(RoleID(Reporter))}) {
			continue
		}
		for _, st := range props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			js, _ := json.Marshal(st)
			got = append(got, string(js))
		}
	}
	slices.Sort(got)
	want := []string{
		`{"Action":"secretsmanager:GetSecretValue","Effect":"Allow","Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:bv/notify-urls-??????","Sid":"ReadNotifyURLsSecret"}`,
		`{"Action":"sns:Publish","Effect":"Allow","Resource":{"Ref":"NotifyTopic"},"Sid":"PublishSummaries"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("reporter's notification grants:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	has(t, tpl, "AWS::CloudWatch::Alarm", obj(
		"Namespace", "bucketvault", "MetricName", "Succeeded", "Statistic", "Sum", "Period", 3600,
		"Dimensions", []any{obj("Name", "Kind", "Value", "backup"), obj("Name", "StateMachine", "Value", "bucketvault-backup")},
		"Threshold", 1, "ComparisonOperator", "LessThanThreshold", "EvaluationPeriods", 50, "DatapointsToAlarm", 50,
		"TreatMissingData", "breaching", "AlarmActions", []any{ref(AlarmTopicID)},
	))
	dash := s.resourcesOfType("AWS::CloudWatch::Dashboard")
	if len(dash) != 1 {
		t.Fatalf("%d dashboards", len(dash))
	}
	for _, d := range dash {
		body, _ := json.Marshal(d["Properties"].(map[string]any)["DashboardBody"])
		for _, m := range []string{"Copied", "Deleted", "Failed", "Bytes", "DurationSeconds", "Listed", "bucketvault-restore"} {
			if !strings.Contains(string(body), `\"`+m+`\"`) {
				t.Errorf("the dashboard does not show %s", m)
			}
		}
	}
	hasOutput(t, tpl, "NotifyTopicArn", obj("Value", ref(NotifyTopicID)))
}

// TestFiltersSetting: the filters context, as a JSON string (-c) or a cdk.json object, reaches the
// lister as FILTERS, compact.
func TestFiltersSetting(t *testing.T) {
	for _, v := range []any{`{"include":["prefix:data/"],"exclude":["glob:**/*.tmp"]}`, map[string]any{"include": []any{"prefix:data/"}, "exclude": []any{"glob:**/*.tmp"}}} {
		s := synth(t, map[string]any{"sourceBucketName": testSource, "filters": v})
		env := s.resource(t, FunctionID(Lister))["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
		if env["FILTERS"] != `{"exclude":["glob:**/*.tmp"],"include":["prefix:data/"]}` && env["FILTERS"] != `{"include":["prefix:data/"],"exclude":["glob:**/*.tmp"]}` {
			t.Errorf("filters %v: lister FILTERS = %v", v, env["FILTERS"])
		}
	}
}

// TestObjectLock: the backup bucket with Object Lock and a default retention in days or years;
// none without the setting.
func TestObjectLock(t *testing.T) {
	for _, tc := range []struct {
		ctx  map[string]any
		want map[string]any // DefaultRetention; nil: no Object Lock
	}{
		{map[string]any{}, nil},
		{map[string]any{"objectLockMode": "COMPLIANCE", "objectLockDays": "30"}, obj("Mode", "COMPLIANCE", "Days", 30)},
		{map[string]any{"objectLockMode": "GOVERNANCE", "objectLockYears": "1", "noncurrentExpireDays": "400"}, obj("Mode", "GOVERNANCE", "Years", 1)},
	} {
		tc.ctx["sourceBucketName"] = testSource
		s := synth(t, tc.ctx)
		props := s.resource(t, BackupBucketID)["Properties"].(map[string]any)
		if tc.want == nil {
			if props["ObjectLockEnabled"] != nil || props["ObjectLockConfiguration"] != nil {
				t.Errorf("%v: Object Lock without the setting: %v %v", tc.ctx, props["ObjectLockEnabled"], props["ObjectLockConfiguration"])
			}
			continue
		}
		want := obj("ObjectLockEnabled", "Enabled", "Rule", obj("DefaultRetention", tc.want))
		if props["ObjectLockEnabled"] != true || fmt.Sprint(props["ObjectLockConfiguration"]) != fmt.Sprint(want) {
			t.Errorf("%v: ObjectLockEnabled %v, ObjectLockConfiguration %v, want %v", tc.ctx, props["ObjectLockEnabled"], props["ObjectLockConfiguration"], want)
		}
		if props["VersioningConfiguration"] == nil {
			t.Error("Object Lock without versioning")
		}
	}
}

func TestPropsFromContextErrors(t *testing.T) {
	for _, tc := range []struct {
		ctx  map[string]any
		want string
	}{
		{map[string]any{}, "sourceBucketName: required"},
		{map[string]any{"sourceBucketName": "Not_A_Bucket"}, "sourceBucketName"},
		{map[string]any{"sourceBucketName": "ok-bucket", "schedule": "0 2 * * *"}, "schedule"},
		{map[string]any{"sourceBucketName": "ok-bucket", "logRetentionDays": "42"}, "logRetentionDays"},
		{map[string]any{"sourceBucketName": "ok-bucket", "lifecycleInfrequentAccessDays": "10"}, "lifecycleInfrequentAccessDays: 10: S3 transitions current versions to STANDARD_IA no sooner than 30"},
		{map[string]any{"sourceBucketName": "ok-bucket", "lifecycleGlacierDays": "45"}, "lifecycleGlacierDays: 45: S3 refuses a rule"},
		{map[string]any{"sourceBucketName": "ok-bucket", "noncurrentExpireDays": "180"}, "noncurrentExpireDays: 180: S3 requires the expiration"},
		{map[string]any{"sourceBucketName": "ok-bucket", "schedule": "cron(0 2 * * * *)"}, "schedule: \"cron(0 2 * * * *)\": exactly one of day-of-month and day-of-week must be ?"},
		{map[string]any{"sourceBucketName": "ok-bucket", "scheduleTimeZone": "Berlin"}, "scheduleTimeZone: \"Berlin\" is not in the IANA time zone database"},
		{map[string]any{"sourceBucketName": "ok-bucket", "backupKms": "maybe"}, "backupKms"},
		{map[string]any{"sourceBucketName": "ok-bucket", "copierMemoryMB": "lots"}, "copierMemoryMB"},
		{map[string]any{"sourceBucketName": "ok-bucket", "transitionDefaultMinimumObjectSize": "64K"}, "transitionDefaultMinimumObjectSize"},
		{map[string]any{"sourceBucketName": "ok-bucket", "stateMachineLogLevel": "DEBUG"}, "stateMachineLogLevel"},
		{map[string]any{"sourceBucketName": "ok-bucket", "maxDeletePercent": "101"}, "maxDeletePercent: 101"},
		{map[string]any{"sourceBucketName": "ok-bucket", "maxChangePercent": "-5"}, "maxChangePercent: -5"},
		{map[string]any{"sourceBucketName": "ok-bucket", "deleteGuardFloor": "-1"}, "deleteGuardFloor: -1"},
		{map[string]any{"sourceBucketName": "ok-bucket", "changeGuardFloor": "many"}, "changeGuardFloor"},
		{map[string]any{"sourceBucketName": "ok-bucket", "archivedSources": "thaw"}, `archivedSources: "thaw": want skip or fail`},
		{map[string]any{"sourceBucketName": "ok-bucket", "listConcurrency": "-1"}, `listConcurrency: -1: want 1–10000`},
		{map[string]any{"sourceBucketName": "ok-bucket", "listConcurrency": "10001"}, `listConcurrency: 10001: want 1–10000`},
		{map[string]any{"sourceBucketName": "ok-bucket", "consoleDomainPrefix": "my-aws-backups"}, `consoleDomainPrefix: "my-aws-backups"`},
		{map[string]any{"sourceBucketName": "ok-bucket", "consoleDomainPrefix": "-x"}, `consoleDomainPrefix: "-x"`},
		{map[string]any{"sourceBucketName": "ok-bucket", "consoleRestoreGroup": "has space"}, `consoleRestoreGroup: "has space"`},
		{map[string]any{"sourceBucketName": "ok-bucket", "consoleAdminEmail": "nobody"}, `consoleAdminEmail: "nobody" is not an e-mail address`},
		{map[string]any{"sourceBucketName": "ok-bucket", "console": "false", "consoleAdminEmail": "a@example.com"}, "console: false, but"},
		{map[string]any{"sourceBucketName": "ok-bucket", "console": "perhaps"}, "console"},
		{map[string]any{"sourceBucketName": "ok-bucket", "objectLockMode": "STRICT", "objectLockDays": "30"}, "objectLockMode"},
		{map[string]any{"sourceBucketName": "ok-bucket", "objectLockDays": "30"}, "objectLockMode: not set, but objectLockDays"},
		{map[string]any{"sourceBucketName": "ok-bucket", "objectLockMode": "COMPLIANCE"}, "exactly one is needed"},
		{map[string]any{"sourceBucketName": "ok-bucket", "objectLockMode": "COMPLIANCE", "objectLockDays": "30", "objectLockYears": "1"}, "exactly one is needed"},
		{map[string]any{"sourceBucketName": "ok-bucket", "objectLockMode": "COMPLIANCE", "objectLockDays": "400"}, "noncurrentExpireDays"},
		{map[string]any{"sourceBucketName": "ok-bucket", "objectLockMode": "GOVERNANCE", "objectLockYears": "1"}, "noncurrentExpireDays"},
		{map[string]any{"sourceBucketName": "ok-bucket", "filters": `{"exclude":["size>10MB"]}`}, `filters: filters: exclude[0] "size>10MB"`},
		{map[string]any{"sourceBucketName": "ok-bucket", "filters": map[string]any{"include": []any{"nope:x"}}}, `filters: filters: include[0] "nope:x"`},
		{map[string]any{"sourceBucketName": "ok-bucket", "notifyOn": "sometimes"}, `notifyOn: "sometimes": want always, failure or change`},
		{map[string]any{"sourceBucketName": "ok-bucket", "silenceHours": "200"}, "silenceHours: 200: want 1–168"},
		{map[string]any{"sourceBucketName": "ok-bucket", "notifyEmail": "team"}, `notifyEmail: "team" is not an e-mail address`},
		{map[string]any{"sourceBucketName": "ok-bucket", "notifyUrls": "hooks.example.com"}, `notifyUrls: entry 1 is not a URL`},
		{map[string]any{"sourceBucketName": "ok-bucket", "heartbeatUrl": "ntfy://x"}, `heartbeatUrl`},
	} {
		app := awscdk.NewApp(&awscdk.AppProps{Context: &tc.ctx})
		_, err := PropsFromContext(app.Node())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("context %v: error %v, want one containing %q", tc.ctx, err, tc.want)
		}
	}
}

func TestContextKeysDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range ContextKeys() {
		if !strings.Contains(string(doc), "`"+key+"`") {
			t.Errorf("context key %s is not documented in README.md (Deploy to AWS)", key)
		}
	}
}

func TestDefaultAssetDir(t *testing.T) {
	dir, err := DefaultAssetDir()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	if dir != filepath.Join(root, "build") {
		t.Errorf("DefaultAssetDir = %s, want %s", dir, filepath.Join(root, "build"))
	}
}

func TestMissingAssetNamesMakeBuild(t *testing.T) {
	p := Defaults(Props{SourceBucketName: testSource, AssetDir: t.TempDir()})
	_, err := NewBackupStack(awscdk.NewApp(nil), "BucketVault", p)
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("error %v, want one that says to run make build", err)
	}
}

// The state machine role may read exactly what its definition's ItemReaders read: the manifest,
// or (an edited definition that lists the batch prefix) a listing of work/.
func TestItemReaderStatements(t *testing.T) {
	for _, tt := range []struct {
		def  string
		want []string
	}{
		{string(statemachine.Backup), []string{"ItemReaderReadManifest"}},
		{string(statemachine.Restore), []string{"ItemReaderReadManifest"}},
		{`{"ItemReader":{"Resource":"arn:aws:states:::s3:listObjectsV2"}}`, []string{"ItemReaderListBatches"}},
		{`{"States":{}}`, nil},
	} {
		var got []string
		for _, st := range itemReaderStatements([]byte(tt.def), "arn:aws:s3:::run") {
			got = append(got, *st.Sid())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%.60s: statements %v, want %v", tt.def, got, tt.want)
		}
	}
}
