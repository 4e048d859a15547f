package stack

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/emf"
)

// Notifications' defaults and IDs.
const (
	DefaultSilenceHours = 26  // a daily schedule, and two hours' grace
	MaxSilenceHours     = 168 // hourly periods; CloudWatch evaluates an alarm over at most 7 days
	NotifyTopicID       = "NotifyTopic"
	SilenceAlarmID      = "NoSuccessfulBackup"
	DashboardID         = "Dashboard"
)

// notifications creates the topic every run's summary is published to (the reporter alone may
// publish), the reporter's notification settings, the dashboard of the runs' metrics (the
// reporter's Embedded Metric Format lines) and the alarm for backups that stopped happening.
func (s *BackupStack) notifications() {
	p := s.Props
	s.NotifyTopic = awssns.NewTopic(s.Stack, jsii.String(NotifyTopicID), &awssns.TopicProps{
		DisplayName: jsii.String("bucketvault run summaries"),
		EnforceSSL:  jsii.Bool(true),
	})
	overrideID(s.NotifyTopic, NotifyTopicID)
	if p.NotifyEmail != "" {
		s.NotifyTopic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(p.NotifyEmail), nil))
	}
	reporter, role := s.Functions[Reporter], s.Roles[Reporter]
	env := map[string]string{
		"NOTIFY_TOPIC_ARN": *s.NotifyTopic.TopicArn(),
		"NOTIFY_ON":        p.NotifyOn,
		"NAME_PREFIX":      p.NamePrefix,
		// The memory the cost estimate prices each function's time at.
		"LISTER_MEMORY_MB": fmt.Sprint(p.ListerMemoryMB), "COPIER_MEMORY_MB": fmt.Sprint(p.CopierMemoryMB),
		"PLANNER_MEMORY_MB": fmt.Sprint(p.PlannerMemoryMB), "REPORTER_MEMORY_MB": fmt.Sprint(p.ReporterMemoryMB),
	}
	if u := strings.TrimSpace(p.NotifyURLs); u != "" {
		env["NOTIFY_URLS"] = u
	}
	if p.HeartbeatURL != "" {
		env["HEARTBEAT_URL"] = p.HeartbeatURL
	}
	statements := []awsiam.PolicyStatement{
		// Publish of the run's summary: to this topic only.
		allow("PublishSummaries", []string{"sns:Publish"}, *s.NotifyTopic.TopicArn()),
	}
	if p.NotifyURLsSecret != "" {
		secret := p.NotifyURLsSecret
		if !strings.HasPrefix(secret, "arn:") {
			// A name: its ARN ends in a random suffix of six characters.
			secret = *s.Stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
				ResourceName: jsii.String(p.NotifyURLsSecret + "-??????"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
		}
		env["NOTIFY_URLS_SECRET_ARN"] = p.NotifyURLsSecret
		// The notification URLs with credentials, read once per function instance.
		statements = append(statements, allow("ReadNotifyURLsSecret", []string{"secretsmanager:GetSecretValue"}, secret))
	}
	for k, v := range env {
		reporter.AddEnvironment(jsii.String(k), jsii.String(v), nil)
	}
	role.AttachInlinePolicy(awsiam.NewPolicy(s.Stack, jsii.String("ReporterNotifyPolicy"), &awsiam.PolicyProps{Statements: &statements}))

	// The dashboard: every run's figures, as the reporter logs them.
	// label: a graph's legend; the alarm's metric has none (a label makes CloudFormation
	// describe it as metric math).
	metric := func(name, machine, kind, stat string, label bool) awscloudwatch.Metric {
		props := &awscloudwatch.MetricProps{
			Namespace: jsii.String(emf.DefaultNamespace), MetricName: jsii.String(name),
			DimensionsMap: &map[string]*string{"StateMachine": jsii.String(machine), "Kind": jsii.String(kind)},
			Statistic:     jsii.String(stat), Period: awscdk.Duration_Hours(jsii.Number(1)),
		}
		if label {
			props.Label = jsii.String(kind + " " + strings.ToLower(name))
		}
		return awscloudwatch.NewMetric(props)
	}
	backup, restore := s.name(BackupStateMachine), s.name(RestoreStateMachine)
	graph := func(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &metrics, Width: jsii.Number(12)})
	}
	succeeded := metric(emf.Succeeded, backup, "backup", "Sum", false)
	silence := awscloudwatch.NewAlarm(s.Stack, jsii.String(SilenceAlarmID), &awscloudwatch.AlarmProps{
		AlarmName: jsii.String(s.name(SilenceAlarmID)),
		AlarmDescription: jsii.String(fmt.Sprintf("No backup of the whole bucket has succeeded for %d hours: the schedule may have stopped, "+
			"or every run failed. Look at the backup state machine's executions.", p.SilenceHours)),
		Metric:             succeeded,
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD,
		EvaluationPeriods:  jsii.Number(float64(p.SilenceHours)),
		DatapointsToAlarm:  jsii.Number(float64(p.SilenceHours)),
		// No run at all writes no data point: that is the silence this alarm is for.
		TreatMissingData: awscloudwatch.TreatMissingData_BREACHING,
	})
	silence.AddAlarmAction(awscloudwatchactions.NewSnsAction(s.AlarmTopic))
	dash := awscloudwatch.NewDashboard(s.Stack, jsii.String(DashboardID), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(p.NamePrefix),
	})
	dash.AddWidgets(
		awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{Title: jsii.String("Backups"), Alarms: &[]interfacesawscloudwatch.IAlarmRef{silence}, Width: jsii.Number(24)}),
	)
	dash.AddWidgets(
		graph("Objects copied, deleted and failed per hour", metric(emf.Copied, backup, "backup", "Sum", true), metric(emf.Deleted, backup, "backup", "Sum", true),
			metric(emf.Failed, backup, "backup", "Sum", true), metric(emf.Copied, restore, "restore", "Sum", true), metric(emf.Failed, restore, "restore", "Sum", true)),
		graph("Bytes copied per hour", metric(emf.Bytes, backup, "backup", "Sum", true), metric(emf.Bytes, restore, "restore", "Sum", true)),
	)
	dash.AddWidgets(
		graph("Objects listed per backup", metric(emf.Listed, backup, "backup", "Maximum", true)),
		graph("Run duration (seconds)", metric(emf.DurationSeconds, backup, "backup", "Maximum", true), metric(emf.DurationSeconds, restore, "restore", "Maximum", true)),
	)
	s.SilenceAlarm = silence
}
