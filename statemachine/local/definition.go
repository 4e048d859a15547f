package local

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// DefinitionError is why New refused a definition: a field, state type, resource, operator,
// path feature or intrinsic the executor does not implement, or a definition AWS would reject.
type DefinitionError struct {
	Where string // "definition", or `state "Name"`
	Field string // the offending field, dotted from the state ("ItemReader.ReaderConfig.InputType"); may be empty
	Msg   string
}

func (e *DefinitionError) Error() string { return e.Where + ": " + e.Msg }

func notImplemented(where, field string) *DefinitionError {
	return &DefinitionError{Where: where, Field: field, Msg: fmt.Sprintf("field %q is not implemented by the local executor", field)}
}

func invalid(where, field, format string, args ...any) *DefinitionError {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = fmt.Sprintf("field %q: %s", field, msg)
	}
	return &DefinitionError{Where: where, Field: field, Msg: msg}
}

func pathErr(where, field string, err error) *DefinitionError {
	return &DefinitionError{Where: where, Field: field, Msg: fmt.Sprintf("field %q: %s", field, err.Error())}
}

const (
	resLambdaInvoke = "arn:aws:states:::lambda:invoke"
	resS3List       = "arn:aws:states:::s3:listObjectsV2"
	resS3Get        = "arn:aws:states:::s3:getObject"
	resS3Put        = "arn:aws:states:::s3:putObject"
	// resStartSync2 starts another state machine's execution and waits for it, its input and
	// output as JSON (page connect-stepfunctions, "Run a Job (.sync)").
	resStartSync2 = "arn:aws:states:::states:startExecution.sync:2"

	defaultTaskTimeout = 99999999 * time.Second // AWS's default; the spec's 60 s is not what AWS does
)

var legacyLambdaARN = regexp.MustCompile(`^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]+))?$`)

// Fields each state type accepts (besides Type and Comment).
var stateFields = map[string][]string{
	"Pass":    {"Next", "End", "InputPath", "OutputPath", "Parameters", "Result", "ResultPath"},
	"Task":    {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Resource", "Retry", "Catch", "TimeoutSeconds"},
	"Choice":  {"InputPath", "OutputPath", "Choices", "Default"},
	"Wait":    {"Next", "End", "InputPath", "OutputPath", "Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
	"Succeed": {"InputPath", "OutputPath"},
	"Fail":    {"Error", "Cause", "ErrorPath", "CausePath"},
	"Map": {"Next", "End", "InputPath", "OutputPath", "ItemProcessor", "Iterator", "ItemsPath", "ItemSelector", "Parameters",
		"ItemReader", "MaxConcurrency", "MaxConcurrencyPath", "ToleratedFailurePercentage", "ToleratedFailureCount", "ResultWriter", "Label",
		"ResultSelector", "ResultPath", "Retry", "Catch"},
}

// ASL fields the executor knows about but does not implement anywhere.
var unimplementedFields = setOf("HeartbeatSeconds", "HeartbeatSecondsPath", "TimeoutSecondsPath", "Credentials", "Arguments",
	"Output", "Assign", "QueryLanguage", "ItemBatcher", "ToleratedFailurePercentagePath",
	"ToleratedFailureCountPath", "Branches", "Items", "WriterConfig", "ItemsPointer", "MaxItemsPath", "CSVHeaders",
	"CSVHeaderLocation", "CSVDelimiter", "ManifestType", "Transformation", "OutputType", "BatchInput",
	"MaxItemsPerBatch", "MaxInputBytesPerBatch", "Condition")

var implementedFields = func() map[string]bool {
	m := setOf("Type", "Comment")
	for _, fs := range stateFields {
		for _, f := range fs {
			m[f] = true
		}
	}
	return m
}()

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// checkFields refuses every key of obj not in allowed, naming it with prefix.
func checkFields(where, prefix, kind string, obj map[string]json.RawMessage, allowed ...string) error {
	ok := setOf(allowed...)
	for _, k := range sortedKeys(obj) {
		if ok[k] {
			continue
		}
		field := prefix + k
		switch {
		case unimplementedFields[k]:
			return notImplemented(where, field)
		case implementedFields[k] && prefix == "":
			return &DefinitionError{Where: where, Field: field, Msg: fmt.Sprintf("field %q is not valid in a %s", field, kind)}
		default:
			return &DefinitionError{Where: where, Field: field, Msg: fmt.Sprintf("unknown field %q", field)}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The compiled definition.

type machine struct {
	startAt string
	states  map[string]*state
	timeout time.Duration // execution TimeoutSeconds; 0 = none
}

type optPath struct {
	set, null bool
	p         *path
}

type state struct {
	name, typ, next string
	end             bool

	inputPath, outputPath, resultPath optPath
	parameters, resultSelector        *tmpl
	result                            any
	hasResult                         bool
	retriers                          []*retrier
	catchers                          []*catcher

	task *taskSpec
	// Choice
	choices []*rule
	dflt    string
	// Wait
	waitSeconds       int64
	waitSecondsPath   *path
	waitTimestamp     *time.Time
	waitTimestampPath *path
	// Fail
	failError, failCause         string
	failErrorPath, failCausePath *path
	// Map
	mp *mapSpec
}

type retrier struct {
	errors      []string
	interval    float64
	maxAttempts int
	backoff     float64
	maxDelay    float64 // 0 = no cap
	jitterFull  bool
}

type catcher struct {
	errors     []string
	next       string
	resultPath optPath
}

type taskSpec struct {
	resource   string
	legacy     *fnRef        // legacy "arn:aws:lambda:…:function:X" resource
	startSync  bool          // states:startExecution.sync:2
	timeout    time.Duration // TimeoutSeconds
	timeoutSet bool
}

type mapSpec struct {
	proc           *machine
	distributed    bool
	itemsPath      *path
	itemSelector   *tmpl
	reader         *readerSpec
	writer         *tmpl // ResultWriter Parameters
	maxConcurrency int
	// maxConcurrencyPath, when set, reads the limit from the effective input at run time.
	maxConcurrencyPath *path
	tolPct             float64
	tolPctSet          bool
	tolCount           int64
	tolCountSet        bool
	label              string
}

type readerSpec struct {
	resource  string
	params    *tmpl
	inputType string // getObject: JSON | JSONL
	maxItems  int64  // 0 = all
}

// parser compiles a definition.
type parser struct {
	opts   *Options
	names  map[string]bool
	usesS3 bool
}

func parseDefinition(def []byte, opts *Options) (*machine, bool, error) {
	const where = "definition"
	var top map[string]json.RawMessage
	if err := json.Unmarshal(def, &top); err != nil {
		return nil, false, &DefinitionError{Where: where, Msg: "not a JSON object: " + err.Error()}
	}
	if err := checkFields(where, "", "state machine", top, "Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage"); err != nil {
		return nil, false, err
	}
	if raw, ok := top["QueryLanguage"]; ok {
		s, err := str(where, "QueryLanguage", raw)
		if err != nil {
			return nil, false, err
		}
		switch s {
		case "JSONPath":
		case "JSONata":
			return nil, false, &DefinitionError{Where: where, Field: "QueryLanguage", Msg: `field "QueryLanguage": "JSONata" is not implemented by the local executor`}
		default:
			return nil, false, invalid(where, "QueryLanguage", "must be JSONPath or JSONata, got %q", s)
		}
	}
	for _, f := range []string{"Comment", "Version"} {
		if raw, ok := top[f]; ok {
			if _, err := str(where, f, raw); err != nil {
				return nil, false, err
			}
		}
	}
	p := &parser{opts: opts, names: map[string]bool{}}
	m, err := p.machine(top, where, "")
	if err != nil {
		return nil, false, err
	}
	if raw, ok := top["TimeoutSeconds"]; ok {
		n, err := integer(where, "TimeoutSeconds", raw, 1, 99999999)
		if err != nil {
			return nil, false, err
		}
		m.timeout = time.Duration(n) * time.Second
	}
	return m, p.usesS3, nil
}

// machine compiles StartAt and States of obj (the top level, an ItemProcessor or an Iterator).
func (p *parser) machine(obj map[string]json.RawMessage, where, prefix string) (*machine, error) {
	rawStart, ok := obj["StartAt"]
	if !ok {
		return nil, invalid(where, prefix+"StartAt", "is required")
	}
	startAt, err := str(where, prefix+"StartAt", rawStart)
	if err != nil {
		return nil, err
	}
	var raws map[string]json.RawMessage
	if err := json.Unmarshal(obj["States"], &raws); err != nil || len(raws) == 0 {
		return nil, invalid(where, prefix+"States", "must be a non-empty object")
	}
	m := &machine{startAt: startAt, states: map[string]*state{}}
	for _, name := range sortedKeys(raws) {
		if p.names[name] {
			return nil, invalid(fmt.Sprintf("state %q", name), "", "state names must be unique within the state machine")
		}
		p.names[name] = true
		st, err := p.state(name, raws[name])
		if err != nil {
			return nil, err
		}
		m.states[name] = st
	}
	if _, ok := m.states[startAt]; !ok {
		return nil, invalid(where, prefix+"StartAt", "state %q does not exist", startAt)
	}
	return m, validateGraph(m)
}

// validateGraph checks every transition target exists and every state is reachable.
func validateGraph(m *machine) error {
	for _, name := range sortedKeys(m.states) {
		st := m.states[name]
		where := fmt.Sprintf("state %q", name)
		for field, target := range st.targets() {
			if _, ok := m.states[target]; !ok {
				return invalid(where, field, "state %q does not exist", target)
			}
		}
	}
	seen := map[string]bool{}
	queue := []string{m.startAt}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		for _, t := range m.states[n].targets() {
			queue = append(queue, t)
		}
	}
	for _, name := range sortedKeys(m.states) {
		if !seen[name] {
			return invalid(fmt.Sprintf("state %q", name), "", "the state is not reachable from StartAt")
		}
	}
	return nil
}

func (st *state) targets() map[string]string {
	t := map[string]string{}
	if st.next != "" {
		t["Next"] = st.next
	}
	if st.dflt != "" {
		t["Default"] = st.dflt
	}
	for i, r := range st.choices {
		t[fmt.Sprintf("Choices[%d].Next", i)] = r.next
	}
	for i, c := range st.catchers {
		t[fmt.Sprintf("Catch[%d].Next", i)] = c.next
	}
	return t
}

func (p *parser) state(name string, raw json.RawMessage) (*state, error) {
	where := fmt.Sprintf("state %q", name)
	if len(name) > 80 || name == "" {
		return nil, invalid(where, "", "state names must be 1 to 80 characters")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, invalid(where, "", "must be a JSON object")
	}
	rawType, ok := obj["Type"]
	if !ok {
		return nil, invalid(where, "Type", "is required")
	}
	typ, err := str(where, "Type", rawType)
	if err != nil {
		return nil, err
	}
	allowed, ok := stateFields[typ]
	switch {
	case typ == "Parallel":
		return nil, &DefinitionError{Where: where, Field: "Type", Msg: `state type "Parallel" is not implemented by the local executor`}
	case !ok:
		return nil, invalid(where, "Type", "unknown state type %q", typ)
	}
	if err := checkFields(where, "", typ+" state", obj, append([]string{"Type", "Comment"}, allowed...)...); err != nil {
		return nil, err
	}
	if raw, ok := obj["Comment"]; ok {
		if _, err := str(where, "Comment", raw); err != nil {
			return nil, err
		}
	}
	st := &state{name: name, typ: typ}
	if err := st.transition(where, obj); err != nil {
		return nil, err
	}
	if st.inputPath, err = optionalPath(where, "InputPath", obj, false); err != nil {
		return nil, err
	}
	if st.outputPath, err = optionalPath(where, "OutputPath", obj, false); err != nil {
		return nil, err
	}
	if st.resultPath, err = optionalPath(where, "ResultPath", obj, true); err != nil {
		return nil, err
	}
	for _, f := range []string{"Parameters", "ResultSelector"} {
		raw, ok := obj[f]
		if !ok || (typ == "Map" && f == "Parameters") {
			continue
		}
		t, err := templateField(where, f, raw)
		if err != nil {
			return nil, err
		}
		if f == "Parameters" {
			st.parameters = t
		} else {
			st.resultSelector = t
		}
	}
	if raw, ok := obj["Result"]; ok {
		if st.result, err = decodeJSON(raw); err != nil {
			return nil, invalid(where, "Result", "%v", err)
		}
		st.hasResult = true
	}
	if raw, ok := obj["Retry"]; ok {
		if st.retriers, err = parseRetry(where, raw); err != nil {
			return nil, err
		}
	}
	if raw, ok := obj["Catch"]; ok {
		if st.catchers, err = parseCatch(where, raw); err != nil {
			return nil, err
		}
	}
	switch typ {
	case "Task":
		err = p.task(st, where, obj)
	case "Choice":
		err = st.choice(where, obj)
	case "Wait":
		err = st.wait(where, obj)
	case "Fail":
		err = st.fail(where, obj)
	case "Map":
		err = p.mapState(st, where, obj)
	}
	return st, err
}

// transition reads Next/End: exactly one for Task, Pass, Wait and Map; none for the others.
func (st *state) transition(where string, obj map[string]json.RawMessage) error {
	rawNext, hasNext := obj["Next"]
	rawEnd, hasEnd := obj["End"]
	if hasNext {
		next, err := str(where, "Next", rawNext)
		if err != nil {
			return err
		}
		st.next = next
	}
	if hasEnd {
		var end bool
		if err := json.Unmarshal(rawEnd, &end); err != nil {
			return invalid(where, "End", "must be a boolean")
		}
		st.end = end
	}
	switch st.typ {
	case "Choice", "Succeed", "Fail":
		return nil // checkFields already refused Next/End
	}
	if (st.next != "") == st.end || (hasNext && st.next == "") {
		return invalid(where, "", "exactly one of Next and End (true) is required")
	}
	return nil
}

func optionalPath(where, field string, obj map[string]json.RawMessage, reference bool) (optPath, error) {
	raw, ok := obj[field]
	if !ok {
		return optPath{}, nil
	}
	if string(raw) == "null" {
		return optPath{set: true, null: true}, nil
	}
	s, err := str(where, field, raw)
	if err != nil {
		return optPath{}, err
	}
	p, err := parsePath(s)
	if err != nil {
		return optPath{}, pathErr(where, field, err)
	}
	if reference && p.ctx {
		return optPath{}, invalid(where, field, "a ResultPath must not start with $$")
	}
	return optPath{set: true, p: p}, nil
}

func templateField(where, field string, raw json.RawMessage) (*tmpl, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, invalid(where, field, "%v", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, invalid(where, field, "must be a JSON object")
	}
	return compileTemplate(v, where, field)
}

var knownStatesErrors = setOf("States.ALL", "States.DataLimitExceeded", "States.ExceedToleratedFailureThreshold",
	"States.HeartbeatTimeout", "States.Http.Socket", "States.IntrinsicFailure", "States.ItemReaderFailed",
	"States.NoChoiceMatched", "States.ParameterPathFailure", "States.Permissions", "States.ResultPathMatchFailure",
	"States.ResultWriterFailed", "States.Runtime", "States.TaskFailed", "States.Timeout", "States.BranchFailed",
	"States.QueryEvaluationError")

func errorEquals(where, field string, obj map[string]json.RawMessage, last bool) ([]string, error) {
	var names []string
	if err := json.Unmarshal(obj["ErrorEquals"], &names); err != nil || len(names) == 0 {
		return nil, invalid(where, field+".ErrorEquals", "must be a non-empty array of strings")
	}
	for _, n := range names {
		if strings.HasPrefix(n, "States.") && !knownStatesErrors[n] {
			return nil, invalid(where, field+".ErrorEquals", "unknown error name %q", n)
		}
		if n == "States.ALL" && (len(names) != 1 || !last) {
			return nil, invalid(where, field+".ErrorEquals", "States.ALL must appear alone, in the last element")
		}
	}
	return names, nil
}

func parseRetry(where string, raw json.RawMessage) ([]*retrier, error) {
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &objs); err != nil {
		return nil, invalid(where, "Retry", "must be an array of objects")
	}
	var out []*retrier
	for i, obj := range objs {
		f := fmt.Sprintf("Retry[%d]", i)
		if err := checkFields(where, f+".", "retrier", obj, "ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy", "Comment"); err != nil {
			return nil, err
		}
		r := &retrier{interval: 1, maxAttempts: 3, backoff: 2}
		var err error
		if r.errors, err = errorEquals(where, f, obj, i == len(objs)-1); err != nil {
			return nil, err
		}
		if raw, ok := obj["IntervalSeconds"]; ok {
			n, err := integer(where, f+".IntervalSeconds", raw, 1, 99999999)
			if err != nil {
				return nil, err
			}
			r.interval = float64(n)
		}
		if raw, ok := obj["MaxAttempts"]; ok {
			n, err := integer(where, f+".MaxAttempts", raw, 0, 99999999)
			if err != nil {
				return nil, err
			}
			r.maxAttempts = int(n)
		}
		if raw, ok := obj["BackoffRate"]; ok {
			if err := json.Unmarshal(raw, &r.backoff); err != nil || r.backoff < 1 {
				return nil, invalid(where, f+".BackoffRate", "must be a number >= 1.0")
			}
		}
		if raw, ok := obj["MaxDelaySeconds"]; ok {
			n, err := integer(where, f+".MaxDelaySeconds", raw, 1, 31622400)
			if err != nil {
				return nil, err
			}
			r.maxDelay = float64(n)
		}
		if raw, ok := obj["JitterStrategy"]; ok {
			s, err := str(where, f+".JitterStrategy", raw)
			if err != nil {
				return nil, err
			}
			if s != "FULL" && s != "NONE" {
				return nil, invalid(where, f+".JitterStrategy", "must be FULL or NONE, got %q", s)
			}
			r.jitterFull = s == "FULL"
		}
		out = append(out, r)
	}
	return out, nil
}

func parseCatch(where string, raw json.RawMessage) ([]*catcher, error) {
	var objs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &objs); err != nil {
		return nil, invalid(where, "Catch", "must be an array of objects")
	}
	var out []*catcher
	for i, obj := range objs {
		f := fmt.Sprintf("Catch[%d]", i)
		if err := checkFields(where, f+".", "catcher", obj, "ErrorEquals", "Next", "ResultPath", "Comment"); err != nil {
			return nil, err
		}
		c := &catcher{}
		var err error
		if c.errors, err = errorEquals(where, f, obj, i == len(objs)-1); err != nil {
			return nil, err
		}
		raw, ok := obj["Next"]
		if !ok {
			return nil, invalid(where, f+".Next", "is required")
		}
		if c.next, err = str(where, f+".Next", raw); err != nil {
			return nil, err
		}
		if raw, ok := obj["ResultPath"]; ok {
			if c.resultPath, err = optionalPath(where, f+".ResultPath", map[string]json.RawMessage{f + ".ResultPath": raw}, true); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *parser) task(st *state, where string, obj map[string]json.RawMessage) error {
	raw, ok := obj["Resource"]
	if !ok {
		return invalid(where, "Resource", "is required")
	}
	res, err := str(where, "Resource", raw)
	if err != nil {
		return err
	}
	t := &taskSpec{resource: res, timeout: defaultTaskTimeout}
	st.task = t
	if raw, ok := obj["TimeoutSeconds"]; ok {
		n, err := integer(where, "TimeoutSeconds", raw, 1, 99999999)
		if err != nil {
			return err
		}
		t.timeout, t.timeoutSet = time.Duration(n)*time.Second, true
	}
	switch {
	case res == resLambdaInvoke:
		if st.parameters == nil {
			return invalid(where, "Parameters", "is required by %s (FunctionName)", res)
		}
		keys := st.parameters.topKeys()
		for _, k := range keys {
			if k != "FunctionName" && k != "Payload" {
				return notImplemented(where, "Parameters."+k)
			}
		}
		if !contains(keys, "FunctionName") {
			return invalid(where, "Parameters.FunctionName", "is required")
		}
		if name, ok := st.parameters.staticString("FunctionName"); ok {
			ref, ok := parseFunctionName(name)
			if !ok {
				return invalid(where, "Parameters.FunctionName", "%q is not a Lambda function name or ARN", name)
			}
			if _, ok := p.opts.Functions[ref.name]; !ok {
				return invalid(where, "Parameters.FunctionName", "function %q is not in Options.Functions", ref.name)
			}
		} else if !isDynamic(st.parameters, "FunctionName") {
			return invalid(where, "Parameters.FunctionName", "must be a string")
		}
	case res == resStartSync2:
		if st.parameters == nil {
			return invalid(where, "Parameters", "is required by %s (StateMachineArn)", res)
		}
		keys := st.parameters.topKeys()
		for _, k := range keys {
			if k != "StateMachineArn" && k != "Input" && k != "Name" {
				return notImplemented(where, "Parameters."+k)
			}
		}
		if !contains(keys, "StateMachineArn") {
			return invalid(where, "Parameters.StateMachineArn", "is required")
		}
		if arn, ok := st.parameters.staticString("StateMachineArn"); ok {
			if _, ok := p.opts.StateMachines[arn]; !ok {
				return invalid(where, "Parameters.StateMachineArn", "state machine %q is not in Options.StateMachines", arn)
			}
		} else if !isDynamic(st.parameters, "StateMachineArn") {
			return invalid(where, "Parameters.StateMachineArn", "must be a string")
		}
		t.startSync = true
	case legacyLambdaARN.MatchString(res):
		ref, _ := parseFunctionName(res)
		if _, ok := p.opts.Functions[ref.name]; !ok {
			return invalid(where, "Resource", "function %q is not in Options.Functions", ref.name)
		}
		t.legacy = &ref
	default:
		return &DefinitionError{Where: where, Field: "Resource", Msg: fmt.Sprintf("field \"Resource\": resource %q is not implemented by the local executor", res)}
	}
	return nil
}

func isDynamic(t *tmpl, key string) bool {
	if t.isLit {
		return false
	}
	for i, k := range t.keys {
		if k == key {
			return t.vals[i].path != nil
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (st *state) wait(where string, obj map[string]json.RawMessage) error {
	var set []string
	for _, f := range []string{"Seconds", "SecondsPath", "Timestamp", "TimestampPath"} {
		if _, ok := obj[f]; ok {
			set = append(set, f)
		}
	}
	if len(set) != 1 {
		return invalid(where, "", "exactly one of Seconds, SecondsPath, Timestamp and TimestampPath is required")
	}
	raw := obj[set[0]]
	switch set[0] {
	case "Seconds":
		n, err := integer(where, "Seconds", raw, 0, 99999999)
		st.waitSeconds = n
		return err
	case "Timestamp":
		s, err := str(where, "Timestamp", raw)
		if err != nil {
			return err
		}
		t, ok := parseTimestamp(s)
		if !ok {
			return invalid(where, "Timestamp", "%q is not an RFC 3339 timestamp", s)
		}
		st.waitTimestamp = &t
		return nil
	}
	p, err := refPath(where, set[0], raw)
	if set[0] == "SecondsPath" {
		st.waitSecondsPath = p
	} else {
		st.waitTimestampPath = p
	}
	return err
}

func (st *state) fail(where string, obj map[string]json.RawMessage) error {
	for _, pair := range [][2]string{{"Error", "ErrorPath"}, {"Cause", "CausePath"}} {
		raw, hasStatic := obj[pair[0]]
		rawPath, hasPath := obj[pair[1]]
		if hasStatic && hasPath {
			return invalid(where, pair[1], "cannot be used together with %s", pair[0])
		}
		var err error
		switch {
		case hasStatic && pair[0] == "Error":
			st.failError, err = str(where, pair[0], raw)
		case hasStatic:
			st.failCause, err = str(where, pair[0], raw)
		case hasPath && pair[0] == "Error":
			st.failErrorPath, err = refPath(where, pair[1], rawPath)
		case hasPath:
			st.failCausePath, err = refPath(where, pair[1], rawPath)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// refPath reads a Reference Path field; an intrinsic function there is refused.
func refPath(where, field string, raw json.RawMessage) (*path, error) {
	s, err := str(where, field, raw)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(s, "States.") {
		name, _, _ := strings.Cut(s, "(")
		return nil, &DefinitionError{Where: where, Field: field, Msg: fmt.Sprintf("field %q: intrinsic function %q is not implemented by the local executor", field, name)}
	}
	p, err := parsePath(s)
	if err != nil {
		return nil, pathErr(where, field, err)
	}
	return p, nil
}

// Scalar field readers.

func str(where, field string, raw json.RawMessage) (string, error) {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return "", invalid(where, field, "must be a string")
	}
	return s, nil
}

func integer(where, field string, raw json.RawMessage, lo, hi int64) (int64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, invalid(where, field, "must be an integer")
	}
	v, err := n.Int64()
	if err != nil || v < lo || v > hi {
		return 0, invalid(where, field, "must be an integer from %d to %d, got %s", lo, hi, n)
	}
	return v, nil
}

// validName reports whether s is a valid execution name, Map Run label or state machine name:
// no whitespace, no < > { } [ ] ? * " # % \ ^ | ~ ` $ & , ; : /, no control characters.
func validName(s string) bool {
	for _, r := range s {
		switch {
		case r <= 0x20, r >= 0x7f && r <= 0x9f, r == 0xfffe, r == 0xffff:
			return false
		case strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", r):
			return false
		case r == 0x85 || r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) || r == 0x2028 || r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000:
			return false
		}
	}
	return true
}
