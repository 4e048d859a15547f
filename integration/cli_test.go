//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// cli is the built bucketvault binary, run with a config file naming one test's buckets.
type cli struct {
	t      *testing.T
	bin    string
	env    []string
	config string
}

func buildCLI(t *testing.T, e *env) *cli {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bucketvault")
	build := exec.Command("go", "build", "-o", bin, "../statemachine/cmd/bucketvault")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	config := filepath.Join(dir, "config.json")
	body, _ := json.Marshal(map[string]string{"source": e.source, "backup": e.backup, "run": e.run})
	if err := os.WriteFile(config, body, 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name == "SOURCE_BUCKET" || name == "BACKUP_BUCKET" || name == "RUN_BUCKET" || name == "BUCKETVAULT_CONFIG" {
			continue
		}
		env = append(env, kv)
	}
	return &cli{t: t, bin: bin, env: env, config: config}
}

// run runs the binary with args and the test's config file; it returns stdout, stderr and the
// exit status.
func (c *cli) run(extraEnv []string, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append([]string{}, c.env...), "BUCKETVAULT_CONFIG="+c.config)
	cmd.Env = append(cmd.Env, extraEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		c.t.Fatalf("bucketvault %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// jsonOf runs a command that must succeed and decodes its --json output.
func (c *cli) jsonOf(v any, args ...string) {
	c.t.Helper()
	out, errs, code := c.run(nil, append(args, "--json")...)
	if code != 0 {
		c.t.Fatalf("bucketvault %v: exit %d\n%s\n%s", args, code, out, errs)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("bucketvault %v --json: %v\n%s", args, err, out)
	}
}

type cliReport struct {
	Execution string `json:"execution"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Copied    int    `json:"copied"`
	Deleted   int    `json:"deleted"`
	Failed    int    `json:"failed"`
	New       int    `json:"new"`
	Changed   int    `json:"changed"`
}

// Through the built binary only, against MinIO: backup, change/delete/add, backup; runs, ls at
// both moments, versions, diff, and a restore of the first state into a new bucket, checked with
// the AWS CLI; then bad input, each a non-zero exit with one line and nothing written.
func TestCLI(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := buildCLI(t, e)
	for k, v := range map[string]string{"a.txt": "alpha v1\n", "b.txt": "bravo\n", "docs/c.txt": "charlie\n"} {
		e.putBytes(e.source, k, []byte(v))
	}
	var first, second cliReport
	c.jsonOf(&first, "backup")
	if first.Status != "SUCCEEDED" || first.Copied != 3 {
		t.Fatalf("first backup: %+v", first)
	}
	e.putBytes(e.source, "a.txt", []byte("alpha v2, longer\n"))
	e.del(e.source, "b.txt")
	e.putBytes(e.source, "docs/d.txt", []byte("delta\n"))
	c.jsonOf(&second, "backup")
	if second.Status != "SUCCEEDED" || second.Copied != 2 || second.Deleted != 1 || second.Changed != 1 || second.New != 1 {
		t.Fatalf("second backup: %+v", second)
	}

	var runs []cliReport
	c.jsonOf(&runs, "runs")
	if len(runs) != 2 || runs[0].Execution != second.Execution || runs[1].Execution != first.Execution || runs[0].Kind != "backup" || runs[1].Copied != 3 || runs[0].Deleted != 1 {
		t.Fatalf("runs: %+v", runs)
	}
	if out, _, code := c.run(nil, "runs"); code != 0 || !strings.Contains(out, first.Execution) || !strings.Contains(out, "SUCCEEDED") {
		t.Fatalf("runs table (exit %d):\n%s", code, out)
	}
	// A drill with a drill bucket restores its sample there, says so, and leaves it empty.
	drill := e.newBucket("drill")
	out, errs, code := c.run([]string{"DRILL_BUCKET=" + drill, "RESTORE_TARGETS=" + drill}, "verify", "--sample", "all")
	if code != 0 || !regexp.MustCompile(`restored\s+3\s+identical\s+3\s+differ\s+0`).MatchString(out) ||
		!regexp.MustCompile(`scratch removed\s+3\s+left\s+0`).MatchString(out) || !strings.Contains(out, "(SUCCEEDED) into s3://"+drill+"/drill/verify-") {
		t.Fatalf("verify (exit %d):\n%s\n%s", code, out, errs)
	}
	if left := e.keys(drill); len(left) != 0 {
		t.Fatalf("the drill left %v", left)
	}
	// A further destination: the summary has its line, and a restore reads it with --from.
	dr := e.newBucket("dr")
	e.versioning(dr)
	dests := []string{`DESTINATIONS=[{"name":"dr","bucket":"` + dr + `"}]`}
	out, errs, code = c.run(dests, "backup")
	if code != 0 || !regexp.MustCompile(`to dr\s+`+dr+`\s+copied\s+3\s+deleted\s+0\s+failed\s+0`).MatchString(out) {
		t.Fatalf("backup to dr (exit %d):\n%s\n%s", code, out, errs)
	}
	fromDR := e.newBucket("from-dr")
	// dr's history begins with this run: restore as of its end (as of the second run, dr held nothing).
	withDR := strings.TrimSuffix(strings.Fields(out)[1], ":")
	if out, errs, code = c.run(dests, "restore", "--at", withDR, "--from", "dr", "--to", fromDR); code != 0 {
		t.Fatalf("restore --from dr (exit %d):\n%s\n%s", code, out, errs)
	}
	if got := e.keys(fromDR); strings.Join(got, ",") != "a.txt,docs/c.txt,docs/d.txt" || string(e.get(fromDR, "a.txt")) != "alpha v2, longer\n" {
		t.Fatalf("restored from dr: %v", got)
	}

	type entry struct {
		Key          string `json:"key"`
		Size         int64  `json:"size"`
		LastModified string `json:"lastModified"`
		VersionID    string `json:"versionId"`
		StorageClass string `json:"storageClass"`
		Dir          bool   `json:"dir"`
	}
	ls := func(args ...string) map[string]entry {
		t.Helper()
		var es []entry
		c.jsonOf(&es, append([]string{"ls"}, args...)...)
		m := map[string]entry{}
		for _, e := range es {
			if !e.Dir && (e.VersionID == "" || e.LastModified == "") {
				t.Fatalf("ls %v: entry without a version or time: %+v", args, e)
			}
			m[e.Key] = e
		}
		return m
	}
	then := ls("--at", first.Execution)
	if len(then) != 3 || then["a.txt"].Size != int64(len("alpha v1\n")) || !then["docs/"].Dir || then["b.txt"].Key == "" {
		t.Fatalf("ls --at the first run: %+v", then)
	}
	now := ls()
	if len(now) != 2 || now["a.txt"].Size != int64(len("alpha v2, longer\n")) || !now["docs/"].Dir {
		t.Fatalf("ls now: %+v", now)
	}
	if docs := ls("docs/"); len(docs) != 2 || docs["docs/d.txt"].Key == "" {
		t.Fatalf("ls docs/ now: %+v", docs)
	}

	type version struct {
		VersionID    string `json:"versionId"`
		LastModified string `json:"lastModified"`
		Size         int64  `json:"size"`
		IsLatest     bool   `json:"isLatest"`
		DeleteMarker bool   `json:"deleteMarker"`
		Run          string `json:"run"`
	}
	var va, vb []version
	c.jsonOf(&va, "versions", "a.txt")
	if len(va) != 2 || !va[0].IsLatest || va[0].DeleteMarker || va[0].Run != second.Execution || va[1].Run != first.Execution {
		t.Fatalf("versions a.txt: %+v", va)
	}
	c.jsonOf(&vb, "versions", "b.txt")
	if len(vb) != 2 || !vb[0].DeleteMarker || !vb[0].IsLatest || vb[1].DeleteMarker || vb[1].Size != int64(len("bravo\n")) {
		t.Fatalf("versions b.txt: %+v", vb)
	}

	var diff []struct{ Key, Change string }
	c.jsonOf(&diff, "diff", first.Execution, second.Execution)
	got := []string{}
	for _, d := range diff {
		got = append(got, d.Change+" "+d.Key)
	}
	sort.Strings(got)
	if want := []string{"added docs/d.txt", "changed a.txt", "deleted b.txt"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("diff: %q, want %q", got, want)
	}

	// Restore the first state into a new bucket: exactly the three objects as they were.
	target := e.newBucket("restored")
	var restored cliReport
	c.jsonOf(&restored, "restore", "--at", first.Execution, "--to", target)
	if restored.Status != "SUCCEEDED" || restored.Copied != 3 {
		t.Fatalf("restore: %+v", restored)
	}
	var listed struct{ Contents []struct{ Key string } }
	e.aws(&listed, "s3api", "list-objects-v2", "--bucket", target)
	keys := []string{}
	for _, o := range listed.Contents {
		keys = append(keys, o.Key)
	}
	if fmt.Sprint(keys) != "[a.txt b.txt docs/c.txt]" {
		t.Fatalf("restored bucket holds %q", keys)
	}
	for k, v := range map[string]string{"a.txt": "alpha v1\n", "b.txt": "bravo\n", "docs/c.txt": "charlie\n"} {
		if got := string(e.get(target, k)); got != v {
			t.Errorf("restored %s = %q, want %q", k, got, v)
		}
	}

	// Bad input: a non-zero exit, one line on stderr, nothing written to any bucket.
	count := func() int {
		n := 0
		for _, b := range []string{e.source, e.backup, e.run, target} {
			out, err := e.s3.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(b)})
			if err != nil {
				t.Fatal(err)
			}
			n += len(out.Versions) + len(out.DeleteMarkers)
		}
		return n
	}
	before := count()
	home := t.TempDir()
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unparseable time", nil, []string{"ls", "--at", "2026-13-45T99:00:00Z"}, "not an RFC 3339 time"},
		{"before the first backup", nil, []string{"restore", "--at", "2001-01-01T00:00:00Z", "--to", target}, "before the first backup"},
		{"unknown run", nil, []string{"show", "backup-20000101T000000Z-deadbeef"}, "backup-20000101T000000Z-deadbeef\" in s3://"},
		{"unknown run as a moment", nil, []string{"ls", "--at", "backup-20000101T000000Z-deadbeef"}, "backup-20000101T000000Z-deadbeef\" in s3://"},
		{"missing bucket", nil, []string{"ls", "--backup", "no-such-bucket-" + e.backup}, "no-such-bucket-"},
		{"missing bucket for a backup", nil, []string{"backup", "--source", "no-such-bucket-" + e.source}, "no-such-bucket-"},
		{"no configuration", []string{"BUCKETVAULT_CONFIG=" + filepath.Join(home, "none.json")}, []string{"runs"}, "no run bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := c.run(tc.env, tc.args...)
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q (stdout %q); want a non-zero exit and one line containing %q", code, errs, out, tc.want)
			}
			if n := count(); n != before {
				t.Fatalf("%d object versions written by a refused command", n-before)
			}
		})
	}
}

// fakeAWS answers CloudFormation's DescribeStacks (query protocol, XML) and Step Functions'
// StartExecution, DescribeExecution and ListMapRuns (awsJson1_0) with the shapes of AWS's API
// reference, and records what it was sent.
type fakeAWS struct {
	t        *testing.T
	outputs  map[string]string
	mu       sync.Mutex
	requests []string // "DescribeStacks StackName=…" or "StartExecution {json}"
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		op := strings.TrimPrefix(target, "AWSStepFunctions.")
		f.requests = append(f.requests, op+" "+string(body))
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		exec := "arn:aws:states:us-east-1:123456789012:execution:bucketvault-backup:aws-run-1"
		switch op {
		case "StartExecution":
			fmt.Fprintf(w, `{"executionArn":%q,"startDate":1764900000}`, exec)
		case "DescribeExecution":
			fmt.Fprintf(w, `{"executionArn":%q,"stateMachineArn":%q,"name":"aws-run-1","status":"SUCCEEDED","startDate":1764900000,"stopDate":1764900042,"input":"{}","output":"{\"status\":\"SUCCEEDED\"}"}`,
				exec, f.outputs["StateMachineArn"])
		case "ListMapRuns":
			fmt.Fprint(w, `{"mapRuns":[]}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"__type":"UnknownOperationException"}`)
		}
		return
	}
	form, _ := url.ParseQuery(string(body))
	f.requests = append(f.requests, form.Get("Action")+" StackName="+form.Get("StackName"))
	var b strings.Builder
	for k, v := range f.outputs {
		fmt.Fprintf(&b, "<member><OutputKey>%s</OutputKey><OutputValue>%s</OutputValue></member>", k, v)
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprint(w, `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member>`+
		`<StackName>BucketVault</StackName><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/BucketVault/1</StackId>`+
		`<CreationTime>2026-01-01T00:00:00Z</CreationTime><StackStatus>CREATE_COMPLETE</StackStatus><Outputs>`+b.String()+
		`</Outputs></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></DescribeStacksResponse>`)
}

// On AWS (--stack), at the wire: the command reads the stack's outputs, starts the backup state
// machine with the execution's name and input, follows it, and prints the report the run wrote
// to the stack's run bucket (here MinIO). Not run against AWS itself.
func TestCLIOnAWS(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := buildCLI(t, e)
	machine := "arn:aws:states:us-east-1:123456789012:stateMachine:bucketvault-backup"
	fake := &fakeAWS{t: t, outputs: map[string]string{
		"StateMachineArn": machine, "RestoreStateMachineArn": machine + "-restore",
		"SourceBucketName": e.source, "BackupBucketName": e.backup, "RunBucketName": e.run,
		"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:alarms", "ExecutionsConsoleUrl": "https://console.aws.amazon.com/states",
		"ConsoleUrl": "https://abc123.execute-api.us-east-1.amazonaws.com/",
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	// The run on AWS writes its report; here the test does, as the deployed reporter would.
	e.putBytes(e.run, "runs/aws-run-1/report.json", []byte(`{"status":"SUCCEEDED","execution":"aws-run-1","copied":7,"reportKey":"runs/aws-run-1/report.json"}`))
	awsEnv := []string{"AWS_ENDPOINT_URL_SFN=" + srv.URL, "AWS_ENDPOINT_URL_CLOUDFORMATION=" + srv.URL, "AWS_REGION=us-east-1", "BUCKETVAULT_CONFIG=" + filepath.Join(t.TempDir(), "none.json")}
	out, errs, code := c.run(awsEnv, "backup", "--stack", "BucketVault", "--name", "aws-run-1", "--dry-run", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	var rep cliReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Execution != "aws-run-1" || rep.Copied != 7 {
		t.Fatalf("report %q: %v", out, err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.requests) < 3 || fake.requests[0] != "DescribeStacks StackName=BucketVault" {
		t.Fatalf("requests %q", fake.requests)
	}
	var start struct{ StateMachineArn, Name, Input string }
	if op, body, _ := strings.Cut(fake.requests[1], " "); op != "StartExecution" || json.Unmarshal([]byte(body), &start) != nil ||
		start.StateMachineArn != machine || start.Name != "aws-run-1" || start.Input != `{"dryRun":true}` {
		t.Fatalf("StartExecution request %q", fake.requests[1])
	}
	if !strings.HasPrefix(fake.requests[len(fake.requests)-1], "DescribeExecution") {
		t.Fatalf("the run was not followed to its end: %q", fake.requests)
	}
	fake.mu.Unlock()
	// The console on AWS is deployed with the stack: the command says where.
	out, errs, code = c.run(awsEnv, "console", "--stack", "BucketVault")
	if code != 0 || !strings.Contains(out, "https://abc123.execute-api.us-east-1.amazonaws.com/") {
		t.Errorf("console --stack: exit %d\n%s%s", code, out, errs)
	}
	fake.mu.Lock()
}
