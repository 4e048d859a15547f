package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/bucketvault/bucketvault/shared/awsrun"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// awsPoll is how often a run on AWS is described.
const awsPoll = 5 * time.Second

// loadStack reads the deployed stack's outputs (DescribeStacks) with the standard AWS
// configuration. The stack names its buckets; explicit settings win (a stack deployed with other
// names).
func (a *app) loadStack(ctx context.Context) (aws.Config, awsrun.Stack, error) {
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, awsrun.Stack{}, err
	}
	stack, err := awsrun.LoadStack(ctx, cloudformation.NewFromConfig(awsCfg), a.cfg.Stack)
	if err != nil {
		return aws.Config{}, awsrun.Stack{}, err
	}
	if a.cfg.Run == "" {
		a.cfg.Run = stack.RunBucket
	}
	if a.cfg.Backup == "" {
		a.cfg.Backup = stack.BackupBucket
	}
	if a.cfg.Source == "" {
		a.cfg.Source = stack.SourceBucket
	}
	return awsCfg, stack, nil
}

// executeOnAWS starts the deployed state machine of kind, follows it until it ends (with a
// progress line on a terminal), then reads its report from the stack's run bucket.
func (a *app) executeOnAWS(ctx context.Context, kind string, o runOptions, input string) error {
	if o.definition != "" {
		return fmt.Errorf("--definition runs an edited definition locally; on AWS, deploy it (make deploy)")
	}
	awsCfg, stack, err := a.loadStack(ctx)
	if err != nil {
		return err
	}
	arn, name := stack.StateMachineArn, o.name
	if kind == "restore" {
		arn = stack.RestoreStateMachineArn
	}
	if name == "" {
		name = localrun.NewExecutionName(time.Now())
		if kind == "restore" {
			name = localrun.NewRestoreName(time.Now())
		}
	}
	var progress func(awsrun.Progress)
	if !a.jsonOut && isTerminal(a.errw) {
		progress = func(p awsrun.Progress) {
			fmt.Fprintf(a.errw, "\r\033[K  %s: batches %d/%d done, %d failed, %s", p.Status, p.BatchesDone, p.BatchesTotal, p.BatchesFailed, p.Elapsed.Round(time.Second))
		}
	}
	fmt.Fprintf(a.errw, "started %s on %s\n", name, arn)
	x, err := awsrun.Run(ctx, sfn.NewFromConfig(awsCfg), arn, name, []byte(input), awsPoll, progress)
	if progress != nil {
		fmt.Fprint(a.errw, "\r\033[K")
	}
	if err != nil {
		return err
	}
	c, err := a.client(ctx, 0)
	if err != nil {
		return err
	}
	r, err := runlog.Get(ctx, c, a.cfg.Run, name)
	if err != nil {
		// No report (the reporter could not run): what the execution says is all there is.
		return a.finish(kind, name, x.Status, x.Error, x.Cause, nil, nil, x.Stop.Sub(x.Start))
	}
	raw, _ := json.MarshalIndent(r.Report, "", "  ")
	return a.finish(kind, name, x.Status, x.Error, x.Cause, &r.Report, raw, x.Stop.Sub(x.Start))
}
