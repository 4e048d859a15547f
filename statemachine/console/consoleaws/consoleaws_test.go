package consoleaws

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func TestConfigFromEnv(t *testing.T) {
	full := map[string]string{"SOURCE_BUCKET": "src", "BACKUP_BUCKET": "bak", "RUN_BUCKET": "run", "RESTORE_STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:1:stateMachine:r",
		"CONSOLE_URL": "https://abc.execute-api.eu-west-1.amazonaws.com/", "OIDC_ISSUER": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_x", "OIDC_CLIENT_ID": "cid",
		"RESTORE_TARGETS": "a,b", "COGNITO_DOMAIN": "https://bv-1.auth.eu-west-1.amazoncognito.com"}
	c, err := ConfigFromEnv(envconf.Map(full))
	if err != nil || c.URL != "https://abc.execute-api.eu-west-1.amazonaws.com" || c.RestoreGroup != "bucketvault-restore" || len(c.RestoreTargets) != 2 || c.ClientID != "cid" ||
		c.LogoutURL != "https://bv-1.auth.eu-west-1.amazoncognito.com/logout?client_id=cid&logout_uri=https%3A%2F%2Fabc.execute-api.eu-west-1.amazonaws.com%2F" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, missing := range []string{"SOURCE_BUCKET", "RESTORE_STATE_MACHINE_ARN", "CONSOLE_URL", "OIDC_ISSUER", "OIDC_CLIENT_ID"} {
		m := map[string]string{}
		for k, v := range full {
			if k != missing {
				m[k] = v
			}
		}
		if _, err := ConfigFromEnv(envconf.Map(m)); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("without %s: %v", missing, err)
		}
	}
}

// fakeSFN records executions; each one "runs" at once: it writes a report and succeeds.
type fakeSFN struct {
	f      *s3fake.S3
	mu     sync.Mutex
	inputs map[string]map[string]any
	raw    map[string]string
}

func (s *fakeSFN) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := aws.ToString(in.Name)
	var m map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(in.Input)), &m); err != nil {
		return nil, err
	}
	s.inputs[name] = m
	s.raw[name] = aws.ToString(in.Input)
	b, _ := json.Marshal(report.Report{Status: report.Succeeded, Execution: name, DryRun: m["dryRun"] == true, New: 1, BytesToCopy: 5,
		RestoredAt: "2026-01-01T00:02:00Z", TargetBucket: "src"})
	s.f.Put("run", batch.ReportKey(name), b)
	arn := "arn:aws:states:eu-west-1:1:execution:r:" + name
	return &sfn.StartExecutionOutput{ExecutionArn: &arn, StartDate: aws.Time(time.Now())}, nil
}

func (s *fakeSFN) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	arn := aws.ToString(in.ExecutionArn)
	name, ok := strings.CutPrefix(arn, "arn:aws:states:eu-west-1:1:execution:r:")
	s.mu.Lock()
	defer s.mu.Unlock()
	input, found := s.raw[name]
	if !ok || !found {
		return nil, &sfntypes.ExecutionDoesNotExist{Message: aws.String("Execution Does Not Exist: '" + arn + "'")}
	}
	return &sfn.DescribeExecutionOutput{ExecutionArn: &arn, Name: &name, Status: sfntypes.ExecutionStatusSucceeded, Input: &input,
		StartDate: aws.Time(time.Now()), StopDate: aws.Time(time.Now())}, nil
}

// cognitoUser is a user whose ID token carries Cognito's claims.
type cognitoUser struct {
	email  string
	groups []string
}

func (u cognitoUser) ID() string                        { return u.email }
func (u cognitoUser) Userinfo([]string) ([]byte, error) { return []byte(`{}`), nil }
func (u cognitoUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &struct {
		*mockoidc.IDTokenClaims
		Email    string   `json:"email"`
		Groups   []string `json:"cognito:groups"`
		TokenUse string   `json:"token_use"`
	}{base, u.email, u.groups, "id"}, nil
}

// lambdaEnv is the console's Lambda handler, fed API Gateway HTTP API events as AWS sends them.
type lambdaEnv struct {
	t     *testing.T
	idp   *mockoidc.MockOIDC
	sf    *fakeSFN
	proxy *httpadapter.HandlerAdapterV2
	cfg   Config
}

const consoleURL = "https://abc123.execute-api.eu-west-1.amazonaws.com"

func newLambdaEnv(t *testing.T) *lambdaEnv {
	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	f := s3fake.New()
	for _, b := range []string{"src", "bak", "run"} {
		f.AddBucket(b, b == "bak")
	}
	f.Tick(time.Minute)
	f.Put("bak", "docs/a.txt", []byte("hello"))
	b, _ := json.Marshal(report.Report{Status: report.Succeeded, Execution: "backup-20260101T000100Z-aaaa", StartedAt: "2026-01-01T00:01:00Z", FinishedAt: "2026-01-01T00:02:00Z", Copied: 1})
	f.Put("run", batch.ReportKey("backup-20260101T000100Z-aaaa"), b)
	sf := &fakeSFN{f: f, inputs: map[string]map[string]any{}, raw: map[string]string{}}
	cfg := Config{Source: "src", Backup: "bak", Run: "run", RestoreStateMachineArn: "arn:aws:states:eu-west-1:1:stateMachine:r",
		URL: consoleURL, Issuer: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, RestoreGroup: "restorers"}
	auth, err := Auth(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	presigner := s3.NewPresignClient(s3.New(s3.Options{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")}))
	srv, err := New(cfg, f, presigner, sf, auth, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &lambdaEnv{t: t, idp: idp, sf: sf, proxy: httpadapter.NewV2(srv.Handler()), cfg: cfg}
}

// send is one API Gateway HTTP API event (payload format 2.0).
func (e *lambdaEnv) send(method, target string, cookies []string, form url.Values, hdr map[string]string) events.APIGatewayV2HTTPResponse {
	e.t.Helper()
	u, _ := url.Parse(target)
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "$default", RawPath: u.Path, RawQueryString: u.RawQuery, Cookies: cookies,
		Headers: map[string]string{"host": "abc123.execute-api.eu-west-1.amazonaws.com", "sec-fetch-site": "same-origin"}}
	for k, v := range hdr {
		ev.Headers[k] = v
	}
	ev.RequestContext.DomainName = "abc123.execute-api.eu-west-1.amazonaws.com"
	ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = method, u.Path
	if form != nil {
		ev.Body = form.Encode()
		ev.Headers["content-type"] = "application/x-www-form-urlencoded"
	}
	resp, err := e.proxy.ProxyWithContext(context.Background(), ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// signIn signs user in and returns the session cookie ("name=value").
func (e *lambdaEnv) signIn(user cognitoUser) string {
	e.t.Helper()
	e.idp.QueueUser(user)
	r := e.send("GET", "/auth/signin?next=/runs", nil, nil, nil)
	if r.StatusCode != http.StatusFound || len(r.Cookies) != 1 {
		e.t.Fatalf("sign-in: %d %v", r.StatusCode, r.Cookies)
	}
	signin, _, _ := strings.Cut(r.Cookies[0], ";")
	// The browser at the provider: it sends the browser back with a code.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(r.Headers["Location"])
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(back.String(), consoleURL+"/auth/callback?") {
		e.t.Fatalf("the provider sent the browser to %q", back)
	}
	r = e.send("GET", back.RequestURI(), []string{signin}, nil, nil)
	for _, ck := range r.Cookies {
		if strings.HasPrefix(ck, "__Host-bv_session=") {
			if !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "Secure") || !strings.Contains(ck, "SameSite=Strict") {
				e.t.Errorf("session cookie %q: want HttpOnly, Secure, SameSite=Strict", ck)
			}
			session, _, _ := strings.Cut(ck, ";")
			return session
		}
	}
	e.t.Fatalf("callback: %d, no session cookie in %v\n%s", r.StatusCode, r.Cookies, r.Body)
	return ""
}

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	_, rest, ok := strings.Cut(body, `name="csrf" value="`)
	if !ok {
		t.Fatalf("no CSRF token on the page:\n%s", body)
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

func TestConsoleOnLambda(t *testing.T) {
	e := newLambdaEnv(t)

	// No session: 401 and a sign-in link, never data.
	for _, path := range []string{"/runs", "/browse?at=2026-01-01T00:03:00Z", "/download?key=docs/a.txt&versionId=x", "/api/runs/backup-20260101T000100Z-aaaa"} {
		r := e.send("GET", path, nil, nil, nil)
		if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Body, "<h1>Not signed in</h1>") || strings.Contains(r.Body, "hello") || strings.Contains(r.Body, `"status"`) {
			t.Errorf("GET %s without a session: %d\n%s", path, r.StatusCode, r.Body)
		}
	}
	if r := e.send("GET", "/runs", nil, nil, nil); !strings.Contains(r.Body, `href="/auth/signin?next=%2Fruns"`) || strings.Contains(r.Body, "backup-20260101T000100Z-aaaa") {
		t.Errorf("the 401 page has no sign-in link:\n%s", r.Body)
	}

	// A reader: sees runs and downloads through a presigned link, but may not restore.
	reader := e.signIn(cognitoUser{email: "rea@example.com", groups: []string{"readers"}})
	r := e.send("GET", "/runs", []string{reader}, nil, nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, "backup-20260101T000100Z-aaaa") || !strings.Contains(r.Body, "rea@example.com") {
		t.Fatalf("GET /runs as a reader: %d\n%s", r.StatusCode, r.Body)
	}
	r = e.send("GET", "/download?key=docs/a.txt&versionId=v1", []string{reader}, nil, nil)
	loc, _ := url.Parse(r.Headers["Location"])
	if r.StatusCode != http.StatusSeeOther || loc.Host != "bak.s3.eu-west-1.amazonaws.com" || loc.Path != "/docs/a.txt" ||
		loc.Query().Get("versionId") != "v1" || loc.Query().Get("X-Amz-Expires") != "300" || !strings.Contains(loc.Query().Get("response-content-disposition"), `filename="a.txt"`) {
		t.Errorf("download: %d %s", r.StatusCode, loc)
	}
	csrf := csrfOf(t, e.send("GET", "/runs", []string{reader}, nil, nil).Body)
	form := url.Values{"at": {"2026-01-01T00:03:00Z"}, "key": {"docs/a.txt"}, "to": {"src"}, "csrf": {csrf}}
	for _, path := range []string{"/restore/preview", "/restore"} {
		if r := e.send("POST", path, []string{reader}, form, nil); r.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s as a reader: %d", path, r.StatusCode)
		}
	}
	if r := e.send("GET", "/restore?at=2026-01-01T00:03:00Z&key=docs/a.txt", []string{reader}, nil, nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("GET /restore as a reader: %d", r.StatusCode)
	}
	if len(e.sf.inputs) != 0 {
		t.Fatalf("a reader started executions: %v", e.sf.inputs)
	}

	// A member of the restore group: preview and restore run as executions of the restore
	// state machine, recording who asked.
	restorer := e.signIn(cognitoUser{email: "res@example.com", groups: []string{"restorers"}})
	form.Set("csrf", csrfOf(t, e.send("GET", "/runs", []string{restorer}, nil, nil).Body))
	if r := e.send("POST", "/restore", []string{restorer}, form, map[string]string{"sec-fetch-site": "cross-site", "origin": "https://evil.example"}); r.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site POST: %d", r.StatusCode)
	}
	if r := e.send("POST", "/restore", []string{restorer}, url.Values{"at": form["at"], "key": form["key"], "to": form["to"], "csrf": {csrf}}, nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("a POST with another session's CSRF token: %d", r.StatusCode)
	}
	r = e.send("POST", "/restore/preview", []string{restorer}, form, nil)
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Headers["Location"], "/previews/restore-") {
		t.Fatalf("preview: %d %v\n%s", r.StatusCode, r.Headers, r.Body)
	}
	preview := strings.TrimPrefix(r.Headers["Location"], "/previews/")
	if r := e.send("GET", "/previews/"+preview, []string{restorer}, nil, nil); r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `data-testid="preview-summary"`) {
		t.Fatalf("the preview's page (its input read back with DescribeExecution): %d\n%s", r.StatusCode, r.Body)
	}
	if r := e.send("GET", "/previews/restore-20990101T000000Z-00000000", []string{restorer}, nil, nil); r.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown preview: %d", r.StatusCode)
	}
	confirm := url.Values{"preview": {preview}, "csrf": form["csrf"]}
	if r := e.send("POST", "/restore", []string{restorer}, confirm, nil); r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Headers["Location"], "/restores/restore-") {
		t.Fatalf("restore: %d %v\n%s", r.StatusCode, r.Headers, r.Body)
	}
	var dry, real int
	for name, in := range e.sf.inputs {
		if in["requestedBy"] != "res@example.com" || in["targetBucket"] != "src" || !strings.HasPrefix(name, "restore-") {
			t.Errorf("execution %s input %v", name, in)
		}
		if in["dryRun"] == true {
			dry++
		} else {
			real++
		}
	}
	if dry != 1 || real != 1 {
		t.Errorf("%d previews and %d restores started, want 1 and 1: %v", dry, real, e.sf.inputs)
	}

	// Signing out drops the session cookie and ends the provider's session.
	r = e.send("POST", "/auth/signout", []string{restorer}, url.Values{"csrf": form["csrf"]}, nil)
	if r.StatusCode != http.StatusSeeOther || len(r.Cookies) != 1 || !strings.Contains(r.Cookies[0], "Max-Age=0") {
		t.Errorf("sign-out: %d %v", r.StatusCode, r.Cookies)
	}
}
