package local

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const processor = `{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},"StartAt":"C","States":%s}`

// failingChild fails items whose "fail" field is true with error Boom.
const failingChild = `{"C":{"Type":"Choice","Choices":[{"Variable":"$.fail","BooleanEquals":true,"Next":"Boom"}],"Default":"Ok"},
	"Boom":{"Type":"Fail","Error":"Boom","Cause":"item failed"},"Ok":{"Type":"Pass","End":true}}`

func distributedMap(fields, states string) string {
	return `{"StartAt":"M","States":{"M":{"Type":"Map",` + fields + `,"ItemProcessor":` + fmt.Sprintf(processor, states) + `,"End":true}}}`
}

// items renders n items {"i":k,"fail":…}, failing those in fail.
func items(n int, fail ...int) string {
	failing := map[int]bool{}
	for _, f := range fail {
		failing[f] = true
	}
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, fmt.Sprintf(`{"i":%d,"fail":%v}`, i, failing[i]))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestInlineMap(t *testing.T) {
	tests := []struct {
		name, def, input, want string
	}{
		{name: "ItemSelector context and item order",
			def: `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.list","MaxConcurrency":2,
				"ItemSelector":{"idx.$":"$$.Map.Item.Index","val.$":"$$.Map.Item.Value","tag.$":"$.tag","exec.$":"$$.Execution.Name"},
				"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"in.$":"$","state.$":"$$.State.Name"},"End":true}}},
				"ResultPath":"$.out","End":true}}}`,
			input: `{"list":["a","b","c"],"tag":"T"}`,
			want: `{"list":["a","b","c"],"tag":"T","out":[
				{"in":{"idx":0,"val":"a","tag":"T","exec":"test"},"state":"P"},
				{"in":{"idx":1,"val":"b","tag":"T","exec":"test"},"state":"P"},
				{"in":{"idx":2,"val":"c","tag":"T","exec":"test"},"state":"P"}]}`},
		{name: "legacy Iterator and Parameters",
			def: `{"StartAt":"M","States":{"M":{"Type":"Map","Parameters":{"v.$":"$$.Map.Item.Value"},
				"Iterator":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}}}`,
			input: `[1,2]`, want: `[{"v":1},{"v":2}]`},
		{name: "empty", def: `{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},"End":true}}}`,
			input: `[]`, want: `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := mustRun(t, mustNew(t, tt.def, testOptions(nil)), tt.input)
			if x.Status != "SUCCEEDED" {
				t.Fatalf("%s %s", x.Error, x.Cause)
			}
			jsonEqual(t, x.Output, tt.want)
		})
	}
}

func TestMapItemContextOnlyInItemSelector(t *testing.T) {
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"P","States":{
		"P":{"Type":"Pass","Parameters":{"i.$":"$$.Map.Item.Index"},"End":true}}},"End":true}}}`
	x := mustRun(t, mustNew(t, def, testOptions(nil)), `[1]`)
	if x.Status != "FAILED" || x.Error != "States.Runtime" || !strings.Contains(x.Cause, "'$$.Map.Item.Index'") {
		t.Errorf("got %s %s %s", x.Status, x.Error, x.Cause)
	}
}

func TestInlineMapFailure(t *testing.T) {
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":1,"ItemProcessor":{"StartAt":"C","States":` + failingChild + `},"End":true}}}`
	x := mustRun(t, mustNew(t, def, testOptions(nil)), items(4, 2))
	if x.Status != "FAILED" || x.Error != "Boom" || x.Cause != "item failed" {
		t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
	}
	types := strings.Join(eventTypes(x), " ")
	if !strings.Contains(types, "MapIterationFailed") || !strings.HasSuffix(types, "MapStateFailed ExecutionFailed") {
		t.Errorf("events %s", types)
	}
}

// inFlight is a Function that records the largest number of concurrent invocations. Every
// invocation waits until target invocations are in flight at once (or 5 s pass), so the maximum
// measured does not depend on how fast the machine schedules goroutines.
type inFlight struct {
	now, max atomic.Int32
	target   int32
	once     sync.Once
	release  chan struct{}
}

func newInFlight(target int32) *inFlight {
	return &inFlight{target: target, release: make(chan struct{})}
}

func (f *inFlight) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	n := f.now.Add(1)
	defer f.now.Add(-1)
	for {
		m := f.max.Load()
		if n <= m || f.max.CompareAndSwap(m, n) {
			break
		}
	}
	if n >= f.target {
		f.once.Do(func() { close(f.release) })
	}
	select {
	case <-f.release:
	case <-time.After(5 * time.Second):
	}
	return payload, nil
}

func TestMapMaxConcurrency(t *testing.T) {
	task := `{"C":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"f","Payload.$":"$"},"End":true}}`
	tests := []struct {
		name        string
		distributed bool
		fromPath    bool // MaxConcurrencyPath "$.max" instead of MaxConcurrency
		max, n      int
		want        int32
	}{
		{"inline 3", false, false, 3, 12, 3},
		{"inline unlimited is 40", false, false, 0, 60, 40},
		{"inline above 40 is 40", false, false, 100, 60, 40},
		{"distributed 4", true, false, 4, 16, 4},
		{"distributed unlimited", true, false, 0, 60, 60},
		{"inline from the input", false, true, 5, 20, 5},
		{"distributed from the input", true, true, 6, 24, 6},
		{"distributed from the input, 0 is unlimited", true, true, 0, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newInFlight(tt.want)
			fields, input := fmt.Sprintf(`"MaxConcurrency":%d`, tt.max), items(tt.n)
			if tt.fromPath {
				fields, input = `"MaxConcurrencyPath":"$.max","ItemsPath":"$.items"`, fmt.Sprintf(`{"max":%d,"items":%s}`, tt.max, items(tt.n))
			}
			var def string
			if tt.distributed {
				def = distributedMap(fields, task)
			} else {
				def = `{"StartAt":"M","States":{"M":{"Type":"Map",` + fields + `,"ItemProcessor":{"StartAt":"C","States":` + task + `},"End":true}}}`
			}
			x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"f": {Handler: f}})), input)
			if x.Status != "SUCCEEDED" {
				t.Fatalf("%s %s", x.Error, x.Cause)
			}
			if got := f.max.Load(); got != tt.want {
				t.Errorf("max in flight %d, want %d", got, tt.want)
			}
		})
	}
}

// A MaxConcurrencyPath that selects nothing, or anything but a non-negative integer, fails the
// Map with States.Runtime before any iteration starts.
func TestMapMaxConcurrencyPathInvalid(t *testing.T) {
	task := `{"C":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"f","Payload.$":"$"},"End":true}}`
	for _, tt := range []struct{ name, max, cause string }{
		{"missing", ``, "No results for path: $['max']"},
		{"a string", `"max":"4",`, "must point to a non-negative integer"},
		{"negative", `"max":-1,`, "must point to a non-negative integer"},
		{"a fraction", `"max":2.5,`, "must point to a non-negative integer"},
	} {
		for _, distributed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s distributed=%v", tt.name, distributed), func(t *testing.T) {
				var calls atomic.Int32
				h := rawFunction(func(_ context.Context, p []byte) ([]byte, error) { calls.Add(1); return p, nil })
				fields := `"MaxConcurrencyPath":"$.max","ItemsPath":"$.items"`
				def := `{"StartAt":"M","States":{"M":{"Type":"Map",` + fields + `,"ItemProcessor":{"StartAt":"C","States":` + task + `},"End":true}}}`
				if distributed {
					def = distributedMap(fields, task)
				}
				x := mustRun(t, mustNew(t, def, testOptions(map[string]FunctionConfig{"f": {Handler: h}})), `{`+tt.max+`"items":`+items(3)+`}`)
				if x.Status != "FAILED" || x.Error != "States.Runtime" || !strings.Contains(x.Cause, tt.cause) || calls.Load() != 0 {
					t.Fatalf("%s %s %q (%d calls); want FAILED States.Runtime containing %q and no call", x.Status, x.Error, x.Cause, calls.Load(), tt.cause)
				}
			})
		}
	}
}

func TestDistributedMapItemReader(t *testing.T) {
	store := newFakeS3("src")
	for _, k := range []string{"in/a.json", "in/b/c.json", "in/dir/", "in/z", "other/x"} {
		store.put("src", k, "body of "+k)
	}
	child := `{"C":{"Type":"Pass","Parameters":{"sel.$":"$","execId.$":"$$.Execution.Id","execName.$":"$$.Execution.Name",
		"execInput.$":"$$.Execution.Input","smId.$":"$$.StateMachine.Id","smName.$":"$$.StateMachine.Name"},"End":true}}`
	tests := []struct {
		name, reader string
		wantKeys     []string
	}{
		{"flat prefix, paginated", `{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"src","Prefix.$":"$.prefix"}}`,
			[]string{"in/a.json", "in/b/c.json", "in/dir/", "in/z"}},
		{"MaxItems", `{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"src","Prefix":"in/"},"ReaderConfig":{"MaxItems":3}}`,
			[]string{"in/a.json", "in/b/c.json", "in/dir/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := distributedMap(`"Label":"Items","ItemReader":`+tt.reader+`,
				"ItemSelector":{"item.$":"$$.Map.Item.Value","index.$":"$$.Map.Item.Index","parent.$":"$$.Execution.Name","tag.$":"$.tag"}`, child)
			opts := testOptions(nil)
			opts.S3 = store
			x := mustRun(t, mustNew(t, def, opts), `{"prefix":"in/","tag":"T"}`)
			if x.Status != "SUCCEEDED" {
				t.Fatalf("%s %s", x.Error, x.Cause)
			}
			var out []struct {
				Sel struct {
					Item   map[string]any
					Index  int
					Parent string
					Tag    string
				}
				ExecID, ExecName, SmID, SmName string
				ExecInput                      map[string]any
			}
			if err := json.Unmarshal(x.Output, &out); err != nil {
				t.Fatal(err)
			}
			if len(out) != len(tt.wantKeys) {
				t.Fatalf("%d results: %s", len(out), x.Output)
			}
			execID := regexp.MustCompile(`^arn:aws:states:us-east-1:123456789012:execution:sm/Items:([0-9a-f-]{36})$`)
			for i, o := range out {
				key := tt.wantKeys[i]
				body := []byte("body of " + key)
				wantItem := map[string]any{"Etag": etag(body), "Key": key, "LastModified": float64(store.modified.Unix()),
					"Size": float64(len(body)), "StorageClass": "STANDARD"}
				if fmt.Sprint(o.Sel.Item) != fmt.Sprint(wantItem) || o.Sel.Index != i || o.Sel.Parent != "test" || o.Sel.Tag != "T" {
					t.Errorf("result %d: %+v, want item %v", i, o.Sel, wantItem)
				}
				m := execID.FindStringSubmatch(o.ExecID)
				if m == nil || m[1] != o.ExecName || o.SmID != "arn:aws:states:us-east-1:123456789012:stateMachine:sm/Items" ||
					o.SmName != "sm/Items" || o.ExecInput["index"] != float64(i) {
					t.Errorf("child context %+v", o)
				}
			}
			want := "ExecutionStarted MapStateEntered MapStateStarted MapRunStarted MapRunSucceeded MapStateSucceeded MapStateExited ExecutionSucceeded"
			if got := strings.Join(eventTypes(x), " "); got != want {
				t.Errorf("events %s", got)
			}
			if !strings.HasPrefix(x.Events[3].Details["mapRunArn"].(string), "arn:aws:states:us-east-1:123456789012:mapRun:sm/Items:") {
				t.Errorf("MapRunStarted %v", x.Events[3].Details)
			}
		})
	}
}

func TestDistributedMapGetObject(t *testing.T) {
	store := newFakeS3("src")
	store.put("src", "items.json", `[{"a":1},{"a":2},{"a":3}]`)
	store.put("src", "items.jsonl", "{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}")
	for _, tt := range []struct{ key, inputType string }{{"items.json", "JSON"}, {"items.jsonl", "JSONL"}} {
		t.Run(tt.inputType, func(t *testing.T) {
			def := distributedMap(`"ItemReader":{"Resource":"arn:aws:states:::s3:getObject","Parameters":{"Bucket":"src","Key":"`+tt.key+`"},
				"ReaderConfig":{"InputType":"`+tt.inputType+`"}}`, `{"C":{"Type":"Pass","End":true}}`)
			opts := testOptions(nil)
			opts.S3 = store
			x := mustRun(t, mustNew(t, def, opts), `{}`)
			if x.Status != "SUCCEEDED" || string(x.Output) != `[{"a":1},{"a":2},{"a":3}]` {
				t.Errorf("got %s %s %s", x.Status, x.Output, x.Cause)
			}
		})
	}
}

func TestDistributedMapToleratedFailures(t *testing.T) {
	tests := []struct {
		name   string
		fields string
		fail   []int // of 10 items
		ok     bool
	}{
		{"defaults tolerate nothing", ``, nil, true},
		{"defaults, one failure", ``, []int{3}, false},
		{"percentage exactly at", `,"ToleratedFailurePercentage":20`, []int{1, 2}, true},
		{"percentage just over", `,"ToleratedFailurePercentage":20`, []int{1, 2, 3}, false},
		{"fractional percentage", `,"ToleratedFailurePercentage":25.5`, []int{1, 2}, true},
		{"count exactly at", `,"ToleratedFailureCount":2`, []int{1, 2}, true},
		{"count just over", `,"ToleratedFailureCount":2`, []int{1, 2, 3}, false},
		{"either threshold breaks", `,"ToleratedFailureCount":5,"ToleratedFailurePercentage":10`, []int{1, 2}, false},
		{"both within", `,"ToleratedFailureCount":5,"ToleratedFailurePercentage":50`, []int{1, 2}, true},
		{"all may fail", `,"ToleratedFailurePercentage":100`, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := distributedMap(`"MaxConcurrency":3`+tt.fields, failingChild)
			x := mustRun(t, mustNew(t, def, testOptions(nil)), items(10, tt.fail...))
			if tt.ok {
				if x.Status != "SUCCEEDED" {
					t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
				}
				var out []map[string]any
				_ = json.Unmarshal(x.Output, &out)
				for _, i := range tt.fail {
					if out[i]["Error"] != "Boom" || out[i]["Cause"] != "item failed" {
						t.Errorf("result %d = %v", i, out[i])
					}
				}
				return
			}
			if x.Status != "FAILED" || x.Error != "States.ExceedToleratedFailureThreshold" || x.Cause != "The specified tolerated failure threshold was exceeded" {
				t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
			}
			types := strings.Join(eventTypes(x), " ")
			if !strings.Contains(types, "MapRunStarted MapRunFailed MapStateFailed ExecutionFailed") {
				t.Errorf("events %s", types)
			}
		})
	}
}

// resultFiles reads a ResultWriter manifest and its files.
func resultFiles(t *testing.T, store *fakeS3, bucket, manifestKey string) (map[string]any, map[string][][]map[string]any) {
	t.Helper()
	var manifest map[string]any
	if err := json.Unmarshal(store.object(t, bucket, manifestKey), &manifest); err != nil {
		t.Fatal(err)
	}
	files := map[string][][]map[string]any{}
	for status, list := range manifest["ResultFiles"].(map[string]any) {
		for _, f := range list.([]any) {
			ref := f.(map[string]any)
			body := store.object(t, bucket, ref["Key"].(string))
			if int(ref["Size"].(float64)) != len(body) {
				t.Errorf("%s: manifest size %v, object %d bytes", ref["Key"], ref["Size"], len(body))
			}
			var recs []map[string]any
			if err := json.Unmarshal(body, &recs); err != nil {
				t.Fatal(err)
			}
			files[status] = append(files[status], recs)
		}
	}
	return manifest, files
}

func TestResultWriter(t *testing.T) {
	store := newFakeS3("out")
	def := distributedMap(`"MaxConcurrency":50,"ToleratedFailurePercentage":5,"Label":"Work",
		"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject","Parameters":{"Bucket":"out","Prefix.$":"$$.Execution.Name"}}`, failingChild)
	opts := testOptions(nil)
	opts.S3 = store
	var fail []int
	for i := 0; i < 2500; i += 100 {
		fail = append(fail, i)
	}
	x := mustRun(t, mustNew(t, def, opts), items(2500, fail...))
	if x.Status != "SUCCEEDED" {
		t.Fatalf("%s %s", x.Error, x.Cause)
	}
	var res struct {
		MapRunArn           string
		ResultWriterDetails struct{ Bucket, Key string }
	}
	if err := json.Unmarshal(x.Output, &res); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^arn:aws:states:us-east-1:123456789012:mapRun:sm/Work:([0-9a-f-]{36})$`).FindStringSubmatch(res.MapRunArn)
	if m == nil || res.ResultWriterDetails.Bucket != "out" || res.ResultWriterDetails.Key != "test/"+m[1]+"/manifest.json" {
		t.Fatalf("result %s", x.Output)
	}
	manifest, files := resultFiles(t, store, "out", res.ResultWriterDetails.Key)
	if manifest["DestinationBucket"] != "out" || manifest["MapRunArn"] != res.MapRunArn {
		t.Errorf("manifest %v", manifest)
	}
	dir := "test/" + m[1] + "/"
	refs := manifest["ResultFiles"].(map[string]any)
	wantFiles := map[string][]string{
		"SUCCEEDED": {dir + "SUCCEEDED_0.json", dir + "SUCCEEDED_1.json", dir + "SUCCEEDED_2.json"},
		"FAILED":    {dir + "FAILED_0.json"},
		"PENDING":   nil,
	}
	for status, want := range wantFiles {
		var got []string
		for _, f := range refs[status].([]any) {
			got = append(got, f.(map[string]any)["Key"].(string))
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s files %v, want %v", status, got, want)
		}
	}
	if n := len(files["SUCCEEDED"][0]) + len(files["SUCCEEDED"][1]) + len(files["SUCCEEDED"][2]); len(files["SUCCEEDED"][0]) != 1000 || n != 2475 {
		t.Errorf("SUCCEEDED records: %d in the first file, %d in all", len(files["SUCCEEDED"][0]), n)
	}
	date := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	execArn := regexp.MustCompile(`^arn:aws:states:us-east-1:123456789012:execution:sm/Work:[0-9a-f-]{36}$`)
	check := func(rec map[string]any, status string) {
		t.Helper()
		keys := []string{"ExecutionArn", "Input", "InputDetails", "Name", "RedriveCount", "RedriveStatus", "StartDate", "StateMachineArn", "Status", "StopDate"}
		if status == "SUCCEEDED" {
			keys = append(keys, "Output", "OutputDetails", "RedriveStatusReason")
		} else {
			keys = append(keys, "Error", "Cause")
		}
		if len(rec) != len(keys) {
			t.Errorf("%s record has keys %v, want %v", status, rec, keys)
		}
		if !execArn.MatchString(rec["ExecutionArn"].(string)) || !strings.HasSuffix(rec["ExecutionArn"].(string), ":"+rec["Name"].(string)) ||
			rec["StateMachineArn"] != "arn:aws:states:us-east-1:123456789012:stateMachine:sm/Work" || rec["Status"] != status ||
			!date.MatchString(rec["StartDate"].(string)) || !date.MatchString(rec["StopDate"].(string)) || rec["RedriveCount"] != float64(0) ||
			fmt.Sprint(rec["InputDetails"]) != "map[Included:true]" {
			t.Errorf("%s record %v", status, rec)
		}
		var in map[string]any
		if err := json.Unmarshal([]byte(rec["Input"].(string)), &in); err != nil {
			t.Errorf("Input %v is not a JSON string", rec["Input"])
		}
		if status == "SUCCEEDED" && (rec["Output"] != rec["Input"] || fmt.Sprint(rec["OutputDetails"]) != "map[Included:true]") {
			t.Errorf("record output %v", rec)
		}
		if status == "FAILED" && (rec["Error"] != "Boom" || rec["Cause"] != "item failed" || in["fail"] != true) {
			t.Errorf("FAILED record %v", rec)
		}
	}
	check(files["SUCCEEDED"][2][0], "SUCCEEDED")
	if len(files["FAILED"][0]) != 25 {
		t.Errorf("%d FAILED records", len(files["FAILED"][0]))
	}
	check(files["FAILED"][0][0], "FAILED")
}

func TestResultWriterWhenMapFails(t *testing.T) {
	// MaxConcurrency 1 and a count threshold of 1: the second failure stops the run, and the
	// items never started are written as PENDING.
	store := newFakeS3("out")
	var started atomic.Int32
	counter := rawFunction(func(_ context.Context, p []byte) ([]byte, error) { started.Add(1); return p, nil })
	child := `{"C":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"count","Payload.$":"$"},"ResultPath":null,"Next":"D"},` +
		strings.TrimPrefix(strings.Replace(failingChild, `"C":{"Type":"Choice"`, `"D":{"Type":"Choice"`, 1), "{")
	def := distributedMap(`"MaxConcurrency":1,"ToleratedFailureCount":1,
		"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject","Parameters":{"Bucket":"out","Prefix":""}}`, child)
	opts := testOptions(map[string]FunctionConfig{"count": {Handler: counter}})
	opts.S3 = store
	x := mustRun(t, mustNew(t, def, opts), items(10, 1, 2))
	if x.Status != "FAILED" || x.Error != "States.ExceedToleratedFailureThreshold" {
		t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
	}
	if n := started.Load(); n != 3 {
		t.Errorf("%d children started, want 3 (stop launching once the threshold is broken)", n)
	}
	var manifestKey string
	for _, k := range store.keys("out") {
		if strings.HasSuffix(k, "/manifest.json") {
			manifestKey = k
		}
	}
	if !regexp.MustCompile(`^[0-9a-f-]{36}/manifest.json$`).MatchString(manifestKey) {
		t.Fatalf("keys %v: with Prefix \"\" keys start at the Map Run id", store.keys("out"))
	}
	_, files := resultFiles(t, store, "out", manifestKey)
	counts := map[string]int{}
	for status, fs := range files {
		for _, f := range fs {
			counts[status] += len(f)
		}
	}
	if counts["SUCCEEDED"] != 1 || counts["FAILED"] != 2 || counts["PENDING"] != 7 {
		t.Errorf("record counts %v", counts)
	}
	if p := files["PENDING"][0][0]; p["Status"] != "PENDING" || p["Input"] == nil {
		t.Errorf("PENDING record %v", p)
	}
}

func TestDistributedMapS3Failures(t *testing.T) {
	tests := []struct {
		name, fields string
		failPut      bool
		wantError    string
	}{
		{name: "missing bucket", fields: `"ItemReader":{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"nope"}}`,
			wantError: "States.ItemReaderFailed"},
		{name: "missing object", fields: `"ItemReader":{"Resource":"arn:aws:states:::s3:getObject","Parameters":{"Bucket":"b","Key":"nope"},"ReaderConfig":{"InputType":"JSON"}}`,
			wantError: "States.ItemReaderFailed"},
		{name: "write failure", fields: `"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject","Parameters":{"Bucket":"b","Prefix":"p"}}`,
			failPut: true, wantError: "States.ResultWriterFailed"},
		{name: "write to missing bucket", fields: `"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject","Parameters":{"Bucket":"nope"}}`,
			wantError: "States.ResultWriterFailed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newFakeS3("b")
			if tt.failPut {
				store.failPut = func(string) error { return fmt.Errorf("access denied") }
			}
			opts := testOptions(nil)
			opts.S3 = store
			def := `{"StartAt":"M","States":{"M":{"Type":"Map",` + tt.fields + `,"Catch":[{"ErrorEquals":["States.ALL"],"Next":"Caught"}],
				"ItemProcessor":` + fmt.Sprintf(processor, `{"C":{"Type":"Pass","End":true}}`) + `,"Next":"Ok"},
				"Ok":{"Type":"Succeed"},"Caught":{"Type":"Fail","ErrorPath":"$.Error","CausePath":"$.Cause"}}}`
			x := mustRun(t, mustNew(t, def, opts), `[1,2]`)
			if x.Status != "FAILED" || x.Error != tt.wantError || x.Cause == "" {
				t.Fatalf("got %s %s %s", x.Status, x.Error, x.Cause)
			}
			types := strings.Join(eventTypes(x), " ")
			if !strings.Contains(types, "MapRunFailed MapStateFailed MapStateExited FailStateEntered") {
				t.Errorf("events %s", types)
			}
		})
	}
}
