// Package awsrun runs bucketvault's backups and restores on a deployed stack: it reads the stack's
// outputs from CloudFormation, starts a Step Functions execution and follows it to its end.
package awsrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
)

// DefaultPoll is how often Run asks Step Functions about an execution when poll is zero or less.
const DefaultPoll = 5 * time.Second

// The output keys of the stack (infra/stack/stack.go, outputs()).
const (
	OutputStateMachineArn        = "StateMachineArn"
	OutputRestoreStateMachineArn = "RestoreStateMachineArn"
	OutputSourceBucket           = "SourceBucketName"
	OutputBackupBucket           = "BackupBucketName"
	OutputRunBucket              = "RunBucketName"
	OutputConsoleURL             = "ExecutionsConsoleUrl"
	OutputRestoreConsoleURL      = "ConsoleUrl"            // the restore console; absent when the stack has none
	OutputVerifyStateMachineArn  = "VerifyStateMachineArn" // the restore drill; absent in stacks deployed before it
)

// Stack is what the CLI needs of a deployed stack.
type Stack struct {
	Name, StateMachineArn, RestoreStateMachineArn, SourceBucket, BackupBucket, RunBucket, ConsoleURL string
	// RestoreConsoleURL is the deployed restore console, VerifyStateMachineArn the restore drill's
	// state machine ("" when the stack has none).
	RestoreConsoleURL, VerifyStateMachineArn string
}

// CFN is the part of the CloudFormation client that LoadStack uses.
type CFN interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, optFns ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

// SFN is the part of the Step Functions client that Run uses.
type SFN interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, optFns ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
	ListMapRuns(ctx context.Context, in *sfn.ListMapRunsInput, optFns ...func(*sfn.Options)) (*sfn.ListMapRunsOutput, error)
	DescribeMapRun(ctx context.Context, in *sfn.DescribeMapRunInput, optFns ...func(*sfn.Options)) (*sfn.DescribeMapRunOutput, error)
}

var (
	_ CFN = (*cloudformation.Client)(nil)
	_ SFN = (*sfn.Client)(nil)
)

// StackNotFound means CloudFormation has no stack of that name in the client's account and region.
type StackNotFound struct {
	Name string
	Err  error
}

func (e *StackNotFound) Error() string {
	return fmt.Sprintf("stack %q does not exist in this account and region (deploy it with make deploy, or name another with its stack name)", e.Name)
}
func (e *StackNotFound) Unwrap() error { return e.Err }

// MissingOutputs means the stack exists but lacks outputs bucketvault needs: it is not a bucketvault
// stack, an older one, or one whose deployment did not finish (Status says which).
type MissingOutputs struct {
	Name    string
	Status  string
	Missing []string
}

func (e *MissingOutputs) Error() string {
	return fmt.Sprintf("stack %q (%s) lacks the outputs %s: is it a bucketvault stack, deployed to the end with make deploy?",
		e.Name, e.Status, strings.Join(e.Missing, ", "))
}

// ExecutionAlreadyExists means Step Functions refused the execution name: an execution of that name
// ran before (names are unique per state machine for 90 days), or one is running with another input.
type ExecutionAlreadyExists struct {
	Name string
	Err  error
}

func (e *ExecutionAlreadyExists) Error() string {
	return fmt.Sprintf("an execution named %q already exists (names stay taken for 90 days): choose another name", e.Name)
}
func (e *ExecutionAlreadyExists) Unwrap() error { return e.Err }

// LoadStack reads the outputs of the named stack. A stack that does not exist is a *StackNotFound;
// one without every output bucketvault needs is a *MissingOutputs naming them. ExecutionsConsoleUrl
// is not needed: without it ConsoleURL is empty.
func LoadStack(ctx context.Context, cfn CFN, name string) (Stack, error) {
	out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		// CloudFormation answers a stack it does not know with ValidationError "Stack with id X does
		// not exist"; ValidationError also stands for other invalid requests, hence the message test.
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist") {
			return Stack{}, &StackNotFound{Name: name, Err: err}
		}
		return Stack{}, fmt.Errorf("describe stack %q: %w", name, err)
	}
	if len(out.Stacks) == 0 {
		return Stack{}, &StackNotFound{Name: name}
	}
	st := out.Stacks[0]
	values := map[string]string{}
	for _, o := range st.Outputs {
		if o.OutputKey != nil && o.OutputValue != nil && *o.OutputValue != "" {
			values[*o.OutputKey] = *o.OutputValue
		}
	}
	s := Stack{
		Name:                   name,
		StateMachineArn:        values[OutputStateMachineArn],
		RestoreStateMachineArn: values[OutputRestoreStateMachineArn],
		SourceBucket:           values[OutputSourceBucket],
		BackupBucket:           values[OutputBackupBucket],
		RunBucket:              values[OutputRunBucket],
		ConsoleURL:             values[OutputConsoleURL],
		RestoreConsoleURL:      values[OutputRestoreConsoleURL],
		VerifyStateMachineArn:  values[OutputVerifyStateMachineArn],
	}
	var missing []string
	for _, key := range []string{OutputStateMachineArn, OutputRestoreStateMachineArn, OutputSourceBucket, OutputBackupBucket, OutputRunBucket} {
		if values[key] == "" {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		return Stack{}, &MissingOutputs{Name: name, Status: string(st.StackStatus), Missing: missing}
	}
	return s, nil
}

// Progress is a snapshot of a running execution.
type Progress struct {
	// Status is the execution's: RUNNING, or at the last call its end (SUCCEEDED, FAILED, …).
	Status string
	// BatchesTotal, BatchesDone and BatchesFailed are the item counts of the execution's latest
	// Distributed Map run (one item is one batch): total, succeeded, and failed or timed out. All
	// are zero until the map run has started.
	BatchesTotal, BatchesDone, BatchesFailed int64
	// Elapsed is the time since the execution started (until it stopped, once it has).
	Elapsed time.Duration
}

// Execution is a finished execution.
type Execution struct {
	Arn, Name, Status, Error, Cause string
	Output                          json.RawMessage
	Start, Stop                     time.Time
}

// Run starts an execution of the state machine with this name (empty: Step Functions makes one up)
// and input, then asks for its status every poll (DefaultPoll when zero or less) until it is no
// longer RUNNING, and returns it. An execution that failed, timed out or was aborted is returned
// with its Status, Error and Cause and a nil error: the error return is for what went wrong in
// starting or following it. A name already taken is an *ExecutionAlreadyExists.
//
// progress, when not nil, is called after every poll, the last one included, with the item counts
// of the execution's Distributed Map run (which costs two more requests a poll: ListMapRuns and
// DescribeMapRun, and their failure ends the wait like DescribeExecution's). The caller needs
// states:StartExecution and states:DescribeExecution, and with progress states:ListMapRuns and
// states:DescribeMapRun.
//
// When ctx ends, Run returns ctx's error (wrapped) and the execution as last seen, but does NOT stop
// the execution: it goes on on AWS (stop it with StopExecution, e.g. aws stepfunctions
// stop-execution --execution-arn ARN).
func Run(ctx context.Context, client SFN, stateMachineArn, name string, input []byte, poll time.Duration, progress func(Progress)) (Execution, error) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	started, err := Start(ctx, client, stateMachineArn, name, input)
	if err != nil {
		return Execution{}, err
	}
	exec := Execution{Arn: aws.ToString(started.ExecutionArn), Name: name, Status: string(sfntypes.ExecutionStatusRunning), Start: aws.ToTime(started.StartDate)}
	stopped := func(err error) (Execution, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return exec, fmt.Errorf("follow execution %s (it goes on running on AWS unless it has ended): %w", exec.Arn, err)
	}

	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		d, err := client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(exec.Arn)})
		if err != nil {
			return stopped(err)
		}
		exec = execution(d)
		if progress != nil {
			p, err := snapshot(ctx, client, d)
			if err != nil {
				return stopped(err)
			}
			progress(p)
		}
		if d.Status != sfntypes.ExecutionStatusRunning {
			return exec, nil
		}
		select {
		case <-ctx.Done():
			return stopped(ctx.Err())
		case <-ticker.C:
		}
		if ctx.Err() != nil { // both were ready: the select may have taken the tick
			return stopped(ctx.Err())
		}
	}
}

// Starter is the part of the Step Functions client that Start uses.
type Starter interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
}

// Start starts an execution of the state machine named name ("": Step Functions names it) with
// input and returns at once; an execution of that name that exists already is an
// *ExecutionAlreadyExists.
func Start(ctx context.Context, client Starter, stateMachineArn, name string, input []byte) (*sfn.StartExecutionOutput, error) {
	in := &sfn.StartExecutionInput{StateMachineArn: aws.String(stateMachineArn)}
	if name != "" {
		in.Name = aws.String(name)
	}
	if len(input) > 0 {
		in.Input = aws.String(string(input))
	}
	started, err := client.StartExecution(ctx, in)
	if err != nil {
		var exists *sfntypes.ExecutionAlreadyExists
		if errors.As(err, &exists) {
			return nil, &ExecutionAlreadyExists{Name: name, Err: err}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("start execution of %s: %w", stateMachineArn, ctx.Err())
		}
		return nil, fmt.Errorf("start execution of %s: %w", stateMachineArn, err)
	}
	return started, nil
}

// execution converts what DescribeExecution said.
func execution(d *sfn.DescribeExecutionOutput) Execution {
	e := Execution{
		Arn:    aws.ToString(d.ExecutionArn),
		Name:   aws.ToString(d.Name),
		Status: string(d.Status),
		Error:  aws.ToString(d.Error),
		Cause:  aws.ToString(d.Cause),
		Start:  aws.ToTime(d.StartDate),
		Stop:   aws.ToTime(d.StopDate),
	}
	if d.Output != nil {
		e.Output = json.RawMessage(*d.Output)
	}
	return e
}

// snapshot makes the Progress of an execution from its description and its latest map run.
func snapshot(ctx context.Context, client SFN, d *sfn.DescribeExecutionOutput) (Progress, error) {
	p := Progress{Status: string(d.Status)}
	if start := aws.ToTime(d.StartDate); !start.IsZero() {
		if stop := aws.ToTime(d.StopDate); !stop.IsZero() {
			p.Elapsed = stop.Sub(start)
		} else {
			p.Elapsed = time.Since(start)
		}
	}
	runs, err := client.ListMapRuns(ctx, &sfn.ListMapRunsInput{ExecutionArn: d.ExecutionArn})
	if err != nil {
		return p, fmt.Errorf("list map runs: %w", err)
	}
	if len(runs.MapRuns) == 0 {
		return p, nil
	}
	latest := runs.MapRuns
	sort.SliceStable(latest, func(i, j int) bool { return aws.ToTime(latest[i].StartDate).After(aws.ToTime(latest[j].StartDate)) })
	m, err := client.DescribeMapRun(ctx, &sfn.DescribeMapRunInput{MapRunArn: latest[0].MapRunArn})
	if err != nil {
		return p, fmt.Errorf("describe map run %s: %w", aws.ToString(latest[0].MapRunArn), err)
	}
	if c := m.ItemCounts; c != nil {
		p.BatchesTotal = c.Total
		p.BatchesDone = c.Succeeded
		p.BatchesFailed = c.Failed + c.TimedOut
	}
	return p, nil
}
