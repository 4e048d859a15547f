//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/statemachine/console"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// consoleUnderItsRole serves the restore console with the console role's S3 client: every
// screen must work with what the role grants, and a restore started from it must run under the
// restore state machine's roles (restoreSM), not the console's. Then the console's client tries
// what its role must not allow. first is a backup that wrote docs/b.txt = "bravo".
func consoleUnderItsRole(t *testing.T, e *env, client, restoreSM *s3.Client, first *localrun.Result) {
	t.Helper()
	restore := func(ctx context.Context, name string, input []byte) (*localrun.Result, error) {
		saved := e.runner.StateMachineS3
		e.runner.StateMachineS3 = restoreSM
		defer func() { e.runner.StateMachineS3 = saved }()
		return e.runner.Restore(ctx, name, input)
	}
	var restored []string
	execs := map[string]console.Execution{}
	srv, err := console.New(console.Options{S3: client, Source: e.source, Backup: e.backup, Run: e.run,
		// Each execution runs to its end before StartRestore returns.
		StartRestore: func(ctx context.Context, name string, input []byte) error {
			res, err := restore(ctx, name, input)
			if err != nil {
				return err
			}
			execs[name] = console.Execution{Input: input, Status: res.Execution.Status, Error: res.Execution.Error, Cause: res.Execution.Cause}
			restored = append(restored, name)
			return nil
		},
		Execution: func(_ context.Context, name string) (console.Execution, error) {
			if x, ok := execs[name]; ok {
				return x, nil
			}
			return console.Execution{}, console.ErrNoSuchExecution
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := web.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(srv.LoginPath()); code != http.StatusSeeOther {
		t.Fatalf("console login: %d", code)
	}
	at := url.QueryEscape(first.Execution.Name)
	var bVersion string
	for _, tc := range []struct{ path, want string }{
		{"/runs", first.Execution.Name},
		{"/runs/" + first.Execution.Name, "Copied"},
		{"/browse?at=" + at + "&prefix=docs/", "docs/b.txt"},
		{"/browse?q=b.txt&at=" + at, "docs/b.txt"},
		{"/history?key=docs/b.txt", "docs/b.txt"},
		{"/diff?prefix=docs/&from=" + at, "docs/b.txt"},
		{"/api/runs/" + first.Execution.Name, `"finished":true`},
	} {
		code, body := get(tc.path)
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("console %s under its role: %d, want 200 with %q\n%.600s", tc.path, code, tc.want, body)
		}
		if strings.HasPrefix(tc.path, "/history") {
			if _, rest, ok := strings.Cut(body, "versionId="); ok {
				bVersion, _, _ = strings.Cut(rest, `"`)
				bVersion, _, _ = strings.Cut(bVersion, "&")
			}
		}
	}
	// The first version of docs/b.txt downloads with its bytes.
	out, err := client.ListObjectVersions(e.ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(e.backup), Prefix: aws.String("docs/b.txt")})
	if err != nil {
		t.Fatalf("the console role lists versions: %v", err)
	}
	for _, v := range out.Versions {
		if !aws.ToBool(v.IsLatest) {
			bVersion = aws.ToString(v.VersionId)
		}
	}
	if code, body := get("/download?key=docs/b.txt&versionId=" + url.QueryEscape(bVersion)); code != http.StatusOK || body != "bravo" {
		t.Errorf("download of the first docs/b.txt under the console role: %d %q", code, body)
	}

	// A restore from the console: preview, then the restore itself, under the restore roles.
	_, page := get("/restore?at=" + at + "&key=docs/b.txt")
	_, rest, _ := strings.Cut(page, `name="csrf" value="`)
	csrf, _, _ := strings.Cut(rest, `"`)
	form := url.Values{"at": {first.Execution.Name}, "key": {"docs/b.txt"}, "to": {e.source}, "toPrefix": {"from-console/"}, "overwrite": {"true"}, "csrf": {csrf}}
	post := func(path string) (int, string) {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := web.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/restore/preview"); code != http.StatusSeeOther {
		t.Fatalf("preview from the console: %d\n%.800s", code, body)
	}
	if len(restored) != 1 {
		t.Fatalf("executions from the console: %v", restored)
	}
	if code, body := get("/previews/" + restored[0]); code != http.StatusOK || !strings.Contains(body, `data-testid="preview-objects">1<`) {
		t.Fatalf("the preview's page under the console role: %d\n%.800s", code, body)
	}
	form = url.Values{"preview": {restored[0]}, "csrf": {csrf}}
	if code, body := post("/restore"); code != http.StatusSeeOther {
		t.Fatalf("restore from the console: %d\n%.800s", code, body)
	}
	if got := string(e.get(e.source, "from-console/docs/b.txt")); got != "bravo" {
		t.Errorf("restored from the console: %q, want bravo", got)
	}
	if len(restored) != 2 {
		t.Fatalf("executions from the console: %v", restored)
	}
	code, body := get("/api/runs/" + restored[1])
	var st struct {
		Status string         `json:"status"`
		Report *report.Report `json:"report"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.Report == nil || st.Report.RequestedBy == "" || st.Report.Copied != 1 {
		t.Errorf("the console's restore as the console reads it: %d %s", code, body)
	}

	// What the console's role must not do.
	denied := map[string]func() error{
		"console writes to the backup": func() error {
			_, err := client.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.backup), Key: aws.String("docs/a.txt"), Body: strings.NewReader("x")})
			return err
		},
		"console writes a report": func() error {
			_, err := client.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.run), Key: aws.String("runs/" + first.Execution.Name + "/report.json"), Body: strings.NewReader("{}")})
			return err
		},
		"console writes to the source (a restore target)": func() error {
			_, err := client.PutObject(e.ctx, &s3.PutObjectInput{Bucket: aws.String(e.source), Key: aws.String("x"), Body: strings.NewReader("x")})
			return err
		},
		"console copies into the source": func() error {
			_, err := client.CopyObject(e.ctx, &s3.CopyObjectInput{Bucket: aws.String(e.source), Key: aws.String("y"), CopySource: aws.String(e.backup + "/docs/b.txt")})
			return err
		},
		"console reads the source": func() error {
			o, err := client.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(e.source), Key: aws.String("docs/a.txt")})
			if err == nil {
				o.Body.Close()
			}
			return err
		},
		"console lists the source": func() error {
			_, err := client.ListObjectsV2(e.ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e.source)})
			return err
		},
		"console deletes in the backup": func() error {
			_, err := client.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.backup), Key: aws.String("docs/a.txt")})
			return err
		},
		"console deletes a backup version": func() error {
			_, err := client.DeleteObject(e.ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.backup), Key: aws.String("docs/b.txt"), VersionId: aws.String(bVersion)})
			return err
		},
		"console reads the ETag index": func() error {
			o, err := client.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(e.run), Key: aws.String("index/current.json")})
			if err == nil {
				o.Body.Close()
			}
			return err
		},
	}
	for name, do := range denied {
		var apiErr smithy.APIError
		if err := do(); !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
			t.Errorf("%s: got %v, want AccessDenied", name, err)
		}
	}
}
