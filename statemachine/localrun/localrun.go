// Package localrun runs bucketvault's backup on one machine: the state machine definition AWS
// runs, executed by the local executor with the lister, copier and reporter handlers in-process,
// against any S3-compatible server. It stores the execution history next to the report.
package localrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/copier"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/lister"
	"github.com/bucketvault/bucketvault/shared/planner"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/reporter"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/shared/verify"
	"github.com/bucketvault/bucketvault/statemachine"
	"github.com/bucketvault/bucketvault/statemachine/local"
)

// Function names. The restore runs the copier's code as its own function, so that on AWS it has
// its own role (it may write to restore targets; the backup copier never writes to the source).
const (
	ListerName        = "bucketvault-lister"
	CopierName        = "bucketvault-copier"
	ReporterName      = "bucketvault-reporter"
	PlannerName       = "bucketvault-restore-planner"
	RestoreCopierName = "bucketvault-restore-copier"
	VerifierName      = "bucketvault-verifier"
	// StateMachineName is the backup state machine's name.
	StateMachineName = "bucketvault-backup"
	// RestoreStateMachineName is the restore state machine's name.
	RestoreStateMachineName = "bucketvault-restore"
	// VerifyStateMachineName is the verify (restore drill) state machine's name.
	VerifyStateMachineName = "bucketvault-verify"
)

// machine is one state machine, the functions its substitutions name, and the state machines
// it starts (states:startExecution.sync:2), by substitution.
type machine struct {
	name       string
	definition []byte
	functions  map[string]string // substitution → function name
	machines   map[string]*machine
}

var (
	backupMachine = machine{StateMachineName, statemachine.Backup, map[string]string{
		"ListerFunctionArn": ListerName, "CopierFunctionArn": CopierName, "ReporterFunctionArn": ReporterName,
	}, nil}
	restoreMachine = machine{RestoreStateMachineName, statemachine.Restore, map[string]string{
		"PlannerFunctionArn": PlannerName, "CopierFunctionArn": RestoreCopierName, "ReporterFunctionArn": ReporterName,
	}, nil}
	// The drill runs its restore sample through the restore state machine itself.
	verifyMachine = machine{VerifyStateMachineName, statemachine.Verify, map[string]string{"VerifierFunctionArn": VerifierName},
		map[string]*machine{"RestoreStateMachineArn": &restoreMachine}}
)

// Region and Account are the executor's stand-ins; nothing is sent to AWS.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

// FunctionARN is the ARN the local executor knows a function by.
func FunctionARN(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", Region, Account, name)
}

// Runner runs backup executions.
type Runner struct {
	// S3 is the client every function and the executor use, unless overridden below.
	S3 *s3.Client
	// FunctionS3 overrides the client of one function, by function name: each function then runs
	// with its own credentials, as each Lambda runs with its own role.
	FunctionS3 map[string]*s3.Client
	// StateMachineS3 overrides the client of the executor's ItemReader and ResultWriter (the state
	// machine role).
	StateMachineS3 *s3.Client
	// Env is the functions' environment: SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET and tuning
	// variables, exactly as the Lambda functions get them.
	Env map[string]string
	// Timeouts per function name; a missing entry means 900 s.
	Timeouts map[string]time.Duration
	Logger   *slog.Logger
	// Sleep replaces real sleeps between retries, in the executor and the copier (tests).
	Sleep func(ctx context.Context, d time.Duration) error
	// Wrap, when set, wraps each function's handler (fault-injection tests).
	Wrap func(name string, h local.Function) local.Function
	// Definition, when set, replaces the embedded definition of the state machine being run (an
	// edited copy, tried locally before it is deployed). Its ${...} placeholders are filled in as
	// the embedded one's are.
	Definition []byte
}

// Result is one finished execution.
type Result struct {
	Execution *local.Execution
	// Report is report.json as stored, when the reporter wrote one.
	Report     *report.Report
	ReportJSON []byte
}

// Succeeded reports whether the execution succeeded.
func (r *Result) Succeeded() bool { return r.Execution.Status == "SUCCEEDED" }

// NewExecutionName returns a backup execution name, sortable by time (runlog.NewName).
func NewExecutionName(now time.Time) string { return runlog.NewName(runlog.Backup, now) }

// NewRestoreName returns a restore execution name, sortable by time (runlog.NewName).
func NewRestoreName(now time.Time) string { return runlog.NewName(runlog.Restore, now) }

// Backup runs one backup execution named name with the given execution input. Once the
// execution has run, the Result is returned even when storing its history or reading its report
// then fails (the error says so).
func (r *Runner) Backup(ctx context.Context, name string, input []byte) (*Result, error) {
	return r.execute(ctx, backupMachine, name, input)
}

// Restore runs one restore execution (see package shared/restoreinput for its input).
func (r *Runner) Restore(ctx context.Context, name string, input []byte) (*Result, error) {
	return r.execute(ctx, restoreMachine, name, input)
}

// Verify runs one verify execution, a restore drill (see package shared/verify for its input).
func (r *Runner) Verify(ctx context.Context, name string, input []byte) (*Result, error) {
	return r.execute(ctx, verifyMachine, name, input)
}

// NewVerifyName returns a verify execution name, sortable by time (runlog.NewName).
func NewVerifyName(now time.Time) string { return runlog.NewName(runlog.Verify, now) }

// handlers builds every function from the environment, as each Lambda would at start-up.
func (r *Runner) handlers(env map[string]string, logger *slog.Logger) map[string]local.Function {
	lookup := envconf.Map(env)
	lcfg, lerr := lister.ConfigFromEnv(lookup)
	ccfg, cerr := copier.ConfigFromEnv(lookup)
	rcfg, rerr := reporter.ConfigFromEnv(lookup)
	pcfg, perr := planner.ConfigFromEnv(lookup)
	vcfg, verr := verify.ConfigFromEnv(lookup)
	copierFn := func(name string) local.Function {
		return lambdafn.Handler((&copier.Handler{S3: r.client(name), Config: ccfg, Logger: logger.With("function", name), Sleep: r.Sleep}).Handle, cerr)
	}
	return map[string]local.Function{
		ListerName:        lambdafn.Handler((&lister.Handler{S3: r.client(ListerName), Config: lcfg, Logger: logger.With("function", ListerName)}).Handle, lerr),
		CopierName:        copierFn(CopierName),
		RestoreCopierName: copierFn(RestoreCopierName),
		ReporterName:      lambdafn.Handler((&reporter.Handler{S3: r.client(ReporterName), Config: rcfg, Logger: logger.With("function", ReporterName)}).Handle, rerr),
		PlannerName:       lambdafn.Handler((&planner.Handler{S3: r.client(PlannerName), Config: pcfg, Logger: logger.With("function", PlannerName)}).Handle, perr),
		VerifierName:      lambdafn.Handler((&verify.Handler{S3: r.client(VerifierName), Config: vcfg, Logger: logger.With("function", VerifierName)}).Handle, verr),
	}
}

func (r *Runner) execute(ctx context.Context, m machine, name string, input []byte) (*Result, error) {
	if r.Definition != nil {
		m.definition = r.Definition
	}
	return r.executeMachine(ctx, m, name, input)
}

// StateMachineARN is the ARN the local executor knows a state machine by.
func StateMachineARN(name string) string {
	return fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", Region, Account, name)
}

// child is a state machine another one starts: each of its executions runs as one of Runner's
// own (its history stored, its report read).
type child struct {
	r *Runner
	m machine
}

func (c child) Run(ctx context.Context, name string, input []byte) (*local.Execution, error) {
	res, err := c.r.executeMachine(ctx, c.m, name, input)
	if res == nil {
		return nil, err
	}
	return res.Execution, err
}

func (r *Runner) executeMachine(ctx context.Context, m machine, name string, input []byte) (*Result, error) {
	env := maps.Clone(r.Env)
	logger := r.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, set := env["LISTER_CONCURRENCY"]; !set {
		// In one process ranges share its cores and memory (each lister holds its listings,
		// each range child runs copiers): LocalListConcurrency, not Lambda's default.
		env["LISTER_CONCURRENCY"] = fmt.Sprint(lister.LocalListConcurrency(runtime.GOMAXPROCS(0)))
	}
	all := r.handlers(env, logger)
	functions := map[string]local.FunctionConfig{}
	subs := map[string]string{"RunBucket": env["RUN_BUCKET"]}
	for sub, fn := range m.functions {
		h := all[fn]
		if r.Wrap != nil {
			h = r.Wrap(fn, h)
		}
		functions[fn] = local.FunctionConfig{Handler: h, Timeout: r.Timeouts[fn]}
		subs[sub] = FunctionARN(fn)
	}
	machines := map[string]local.StateMachine{}
	for sub, cm := range m.machines {
		arn := StateMachineARN(cm.name)
		subs[sub], machines[arn] = arn, child{r: r, m: *cm}
	}
	def, err := statemachine.Render(m.definition, subs)
	if err != nil {
		return nil, err
	}
	smS3 := r.S3
	if r.StateMachineS3 != nil {
		smS3 = r.StateMachineS3
	}
	exec, err := local.New(def, local.Options{
		StateMachineName: m.name, Region: Region, Account: Account,
		Functions: functions, S3: smS3, StateMachines: machines, Sleep: r.Sleep, Logger: logger.With("component", "executor"),
	})
	if err != nil {
		return nil, fmt.Errorf("load state machine: %w", err)
	}
	x, err := exec.Run(ctx, name, input)
	if err != nil {
		return nil, err
	}
	res := &Result{Execution: x}
	runBucket := env["RUN_BUCKET"]
	if runBucket == "" {
		return res, nil
	}
	// The history is kept beyond the engine's own, next to the report, for audit.
	history, err := x.HistoryJSON()
	if err != nil {
		return res, err
	}
	wctx := context.WithoutCancel(ctx)
	if _, err := r.S3.PutObject(wctx, &s3.PutObjectInput{
		Bucket: aws.String(runBucket), Key: aws.String(batch.HistoryKey(name)),
		Body: bytes.NewReader(history), ContentType: aws.String("application/json"),
	}); err != nil {
		return res, fmt.Errorf("store history: %w", err)
	}
	obj, err := r.S3.GetObject(wctx, &s3.GetObjectInput{Bucket: aws.String(runBucket), Key: aws.String(batch.ReportKey(name))})
	if err != nil {
		return res, nil // no report: the reporter did not get to write one; the history says why
	}
	defer obj.Body.Close()
	data, err := io.ReadAll(obj.Body)
	if err != nil {
		return res, fmt.Errorf("read report: %w", err)
	}
	var rep report.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return res, fmt.Errorf("decode report: %w", err)
	}
	res.Report, res.ReportJSON = &rep, data
	return res, nil
}

func (r *Runner) client(function string) *s3.Client {
	if c := r.FunctionS3[function]; c != nil {
		return c
	}
	return r.S3
}

// FunctionVariables are the environment variables the functions read.
var FunctionVariables = []string{
	"SOURCE_BUCKET", "BACKUP_BUCKET", "RUN_BUCKET", "RESTORE_TARGETS",
	"BATCH_SIZE", "BATCH_BYTES", "LISTER_MAX_KEYS", "LISTER_RANGES", "LISTER_CONCURRENCY", "LISTER_SPILL_KEYS", "MAX_DELETE_PERCENT", "DELETE_GUARD_FLOOR", "MAX_CHANGE_PERCENT",
	"CHANGE_GUARD_FLOOR", "ARCHIVED_SOURCES", "PLANNER_MAX_KEYS", "THAW_CHECK_SECONDS",
	"ALLOW_EXACT_ROLLBACK", "FILTERS", "VERIFY_CONCURRENCY", "VERIFY_MAX_KEYS", "DRILL_BUCKET", destination.Variable,
	"COPIER_CONCURRENCY", "MULTIPART_THRESHOLD", "MULTIPART_PART_SIZE", "PART_CONCURRENCY",
	// the reporter's notifications (shared/notify) and cost estimate (shared/runcost)
	"NOTIFY_URLS", "NOTIFY_ON", "HEARTBEAT_URL", "NOTIFY_TOPIC_ARN", "NOTIFY_BUDGET_SECONDS", "CONSOLE_URL",
	"PRICE_REGION", "PRICE_S3_PUT_PER_1000", "PRICE_S3_LIST_PER_1000", "PRICE_S3_GET_PER_1000", "PRICE_S3_DELETE_PER_1000",
	"PRICE_LAMBDA_GB_SECOND", "PRICE_LAMBDA_PER_MILLION", "PRICE_TRANSITIONS_PER_1000",
	"LISTER_MEMORY_MB", "PLANNER_MEMORY_MB", "COPIER_MEMORY_MB", "REPORTER_MEMORY_MB",
}

// FunctionEnv picks the functions' variables from an environment, with the credentials the
// further destinations name (env:PREFIX). A malformed DESTINATIONS is passed on as it is: the
// functions refuse it, naming the problem.
func FunctionEnv(lookup func(string) (string, bool)) map[string]string {
	env := map[string]string{}
	names := FunctionVariables
	if v, ok := lookup(destination.Variable); ok {
		if ds, err := destination.Parse(v); err == nil {
			names = append(slices.Clone(names), destination.CredentialVariables(ds)...)
		}
	}
	for _, name := range names {
		if v, ok := lookup(name); ok {
			env[name] = v
		}
	}
	return env
}

// Connections is how many S3 requests one local execution can have in flight at once: the
// state machines' largest Map MaxConcurrency times what one copier invocation sends at most
// (COPIER_CONCURRENCY objects plus its PART_CONCURRENCY part budget), plus a few for the lister,
// the reporter and the executor. On AWS every copier has its own client; locally they share one,
// whose connection pool must hold them all, or every request beyond the pool's idle limit opens
// and closes a connection of its own.
//
// definition is the one to be run (nil: the embedded ones). A missing or invalid variable counts
// at its default here; the execution itself reports it as a ConfigError. A Map without a
// MaxConcurrency counts as 1: its fan-out depends on the items, not on the definition.
func Connections(env map[string]string, definition []byte) int {
	cfg, _ := copier.ConfigFromEnv(envconf.Map(env))
	defs := [][]byte{statemachine.Backup, statemachine.Restore}
	if definition != nil {
		defs = [][]byte{definition}
	}
	fan := 1
	for _, def := range defs {
		fan = max(fan, maxConcurrency(def))
	}
	return fan*(cfg.Concurrency+cfg.PartConcurrency) + 8
}

// maxConcurrency is the largest MaxConcurrency of any Map state in a definition, at any depth,
// except those whose children invoke the lister (0 for a definition that does not parse; the executor refuses
// those). Other Maps (the backup's ListRanges, whose listers hold two listings each) never run
// beside a copier Map and need far fewer connections than it.
func maxConcurrency(definition []byte) int {
	var doc any
	if err := json.Unmarshal(definition, &doc); err != nil {
		return 0
	}
	best := 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if n, ok := v["MaxConcurrency"].(float64); ok && v["Type"] == "Map" && !invokesLister(v) {
				best = max(best, int(n))
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	return best
}

// invokesLister reports whether a state's definition names the lister function.
func invokesLister(state map[string]any) bool {
	b, _ := json.Marshal(state)
	return bytes.Contains(b, []byte("ListerFunctionArn"))
}
