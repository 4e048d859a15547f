package console

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	xssKey     = "docs/<img src=x onerror=alert(1)>.txt"
	backupRun  = "backup-20260101T000100Z-aaaaaaaa"
	restoreRun = "restore-20260101T050000Z-bbbbbbbb"
	runningRun = "restore-20260101T060000Z-cccccccc"
	secretBody = "SECRET-CONTENT"
)

// env is a console over a fake backup: docs/a.txt in two versions (the first before backupRun
// finished), the XSS key, a finished restore with a failure and a running one.
type env struct {
	t      *testing.T
	f      *s3fake.S3
	srv    *Server
	h      http.Handler
	mu     sync.Mutex
	starts []started
	dry    []started
	execs  map[string]Execution
	// holdPreviews keeps previews running until finishPreview.
	holdPreviews bool
	v1, v2       string // docs/a.txt's versions
	t1           time.Time
}

type started struct {
	name  string
	input map[string]any
}

func putJSON(t *testing.T, f *s3fake.S3, bucket, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f.Put(bucket, key, b)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	f := s3fake.New()
	for _, b := range []string{"source-bucket", "backup-bucket", "run-bucket", "other-bucket"} {
		f.AddBucket(b, b == "backup-bucket")
	}
	e := &env{t: t, f: f, execs: map[string]Execution{}}
	f.Tick(time.Minute)
	f.Put("backup-bucket", "docs/a.txt", []byte("first"))
	f.Put("backup-bucket", "docs/sub/c.txt", []byte("c"))
	f.Put("backup-bucket", xssKey, []byte(secretBody))
	e.t1 = f.Tick(time.Minute)
	f.Tick(time.Minute)
	f.Put("backup-bucket", "docs/a.txt", []byte("second, longer"))
	f.Put("backup-bucket", "docs/new.txt", []byte("new"))
	vs := f.Versions("backup-bucket", "docs/a.txt")
	e.v1, e.v2 = vs[0].VersionID, vs[1].VersionID
	putJSON(t, f, "run-bucket", batch.ReportKey(backupRun), report.Report{Status: report.Succeeded, Execution: backupRun,
		StartedAt: "2026-01-01T00:01:00Z", FinishedAt: e.t1.Format(time.RFC3339Nano), Copied: 3, BytesCopied: 20})
	putJSON(t, f, "run-bucket", batch.ReportKey(restoreRun), report.Report{Status: report.Failed, Error: "BackupIncomplete", Cause: "1 objects were not restored",
		Execution: restoreRun, StartedAt: "2026-01-01T05:00:00Z", FinishedAt: "2026-01-01T05:01:00Z", RestoredAt: "2026-01-01T00:02:00Z", TargetBucket: "source-bucket",
		RequestedBy: "ana", Copied: 1, Failed: 1, Batches: 1, Failures: []report.Failure{{Key: xssKey, Op: "copy", Error: "AccessDenied"}}})
	if err := batch.WriteManifest(context.Background(), f, "run-bucket", runningRun, 2); err != nil {
		t.Fatal(err)
	}
	okey, _ := batch.OutcomeKey(batch.Key(runningRun, 0))
	putJSON(t, f, "run-bucket", okey, report.Outcome{Copied: 3, BytesCopied: 30})
	srv, err := New(Options{S3: f, Source: "source-bucket", Backup: "backup-bucket", Run: "run-bucket", RestoreTargets: []string{"other-bucket"},
		// A preview (dryRun) "runs" at once unless holdPreviews: its report is in the run bucket
		// when StartRestore returns.
		StartRestore: func(_ context.Context, name string, input []byte) error {
			var in map[string]any
			_ = json.Unmarshal(input, &in)
			if in["dryRun"] != true {
				e.record(&e.starts, name, input)
				e.setExecution(name, Execution{Input: input, Status: Running})
				return nil
			}
			e.record(&e.dry, name, input)
			e.setExecution(name, Execution{Input: input, Status: Running})
			if !e.holdPreviews {
				e.finishPreview(name)
			}
			return nil
		},
		Execution: func(_ context.Context, name string) (Execution, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			if x, ok := e.execs[name]; ok {
				return x, nil
			}
			return Execution{}, ErrNoSuchExecution
		},
		AllowExact: true,
		Now:        func() time.Time { return time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.h = srv, srv.Handler()
	return e
}

func (e *env) setExecution(name string, x Execution) {
	e.mu.Lock()
	e.execs[name] = x
	e.mu.Unlock()
}

// finishPreview writes the report of the preview name, as a dry run's reporter would; an exact
// preview would remove two objects.
func (e *env) finishPreview(name string) {
	e.mu.Lock()
	x := e.execs[name]
	e.mu.Unlock()
	rep := report.Report{Status: report.Succeeded, Execution: name, DryRun: true, RestoredAt: e.t1.Format(time.RFC3339Nano),
		New: 2, Changed: 1, Unchanged: 4, Archived: 1, BytesToCopy: 2048}
	if strings.Contains(string(x.Input), `"exact":true`) {
		rep.ToDelete = 2
		rep.Notes = []report.Note{{Key: "docs/ransom.txt", Note: "would be removed (exact restore): not in the backup"}, {Key: "docs/a.txt.locked", Note: "would be removed (exact restore): not in the backup"}}
	}
	putJSON(e.t, e.f, "run-bucket", batch.ReportKey(name), rep)
	x.Status = "SUCCEEDED"
	e.setExecution(name, x)
}

func (e *env) record(list *[]started, name string, input []byte) {
	var m map[string]any
	if err := json.Unmarshal(input, &m); err != nil {
		e.t.Errorf("input %s: %v", input, err)
	}
	e.mu.Lock()
	*list = append(*list, started{name, m})
	e.mu.Unlock()
}

// do sends a request with the given cookie (none when empty), form (a POST when non-nil) and
// extra headers.
func (e *env) do(method, target, cookie string, form url.Values, hdr map[string]string) *http.Response {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// login signs in and returns the session cookie's value.
func (e *env) login() string {
	e.t.Helper()
	r := e.do("GET", e.srv.LoginPath(), "", nil, nil)
	for _, c := range r.Cookies() {
		if c.Name == SessionCookie {
			return c.Value
		}
	}
	e.t.Fatalf("login: %d, no session cookie", r.StatusCode)
	return ""
}

// csrf is the session's CSRF token, read from the restore form.
func (e *env) csrf(cookie string) string {
	e.t.Helper()
	body := readBody(e.t, e.do("GET", "/restore?at="+backupRun+"&key=docs/a.txt", cookie, nil, nil))
	_, rest, ok := strings.Cut(body, `name="csrf" value="`)
	if !ok {
		e.t.Fatalf("no csrf field in the restore form:\n%s", body)
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

// routes is every route with a request that would show data with a session.
var routes = []struct{ method, target string }{
	{"GET", "/"},
	{"GET", "/runs"},
	{"GET", "/runs/" + restoreRun},
	{"GET", "/browse?prefix=docs/"},
	{"GET", "/browse?at=" + backupRun + "&q=a"},
	{"GET", "/history?key=docs/a.txt"},
	{"GET", "/download?key=" + url.QueryEscape(xssKey) + "&versionId=x"},
	{"GET", "/diff?from=" + backupRun},
	{"GET", "/restore?at=" + backupRun + "&key=docs/a.txt"},
	{"POST", "/restore/preview"},
	{"POST", "/restore"},
	{"GET", "/restores/" + restoreRun},
	{"GET", "/previews/" + restoreRun},
	{"GET", "/api/runs/" + restoreRun},
	{"GET", "/no/such/page"},
}

func TestNoSessionNoData(t *testing.T) {
	e := newEnv(t)
	e.login() // another browser's session exists
	for _, rt := range routes {
		for _, cookie := range []string{"", "forged-session-id"} {
			var form url.Values
			if rt.method == "POST" {
				form = url.Values{"at": {backupRun}, "key": {"docs/a.txt"}, "to": {"source-bucket"}, "csrf": {"x"}}
			}
			r := e.do(rt.method, rt.target, cookie, form, nil)
			body := readBody(t, r)
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s (cookie %q): status %d, want 401", rt.method, rt.target, cookie, r.StatusCode)
			}
			for _, secret := range []string{"docs/", "a.txt", secretBody, backupRun, restoreRun, "AccessDenied", "source-bucket", "backup-bucket"} {
				if strings.Contains(body, secret) {
					t.Errorf("%s %s: the 401 body holds %q", rt.method, rt.target, secret)
				}
			}
		}
	}
	if len(e.starts)+len(e.dry) != 0 {
		t.Fatalf("a request without a session started %d restores and %d previews", len(e.starts), len(e.dry))
	}
}

func TestLoginTokenOnce(t *testing.T) {
	e := newEnv(t)
	path := e.srv.LoginPath()
	r := e.do("GET", path, "", nil, nil)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/runs" {
		t.Fatalf("first login: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, x := range r.Cookies() {
		if x.Name == SessionCookie {
			c = x
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || len(c.Value) != 64 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, 32 random bytes", c)
	}
	if got := e.do("GET", "/runs", c.Value, nil, nil); got.StatusCode != http.StatusOK {
		t.Fatalf("with the session: %d", got.StatusCode)
	}
	for name, p := range map[string]string{"used twice": path, "unknown": "/login?token=00", "empty": "/login"} {
		r := e.do("GET", p, "", nil, nil)
		if r.StatusCode != http.StatusUnauthorized || len(r.Cookies()) != 0 {
			t.Errorf("%s token: %d with %d cookies, want 401 and none", name, r.StatusCode, len(r.Cookies()))
		}
	}
	// Over TLS the cookie is Secure.
	req := httptest.NewRequest("GET", e.srv.LoginPath(), nil)
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if cs := rec.Result().Cookies(); len(cs) != 1 || !cs[0].Secure {
		t.Fatalf("TLS login cookies %+v, want one Secure cookie", cs)
	}
}

func TestSecurityHeadersEverywhere(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	targets := []string{"/static/app.js", "/static/app.css", "/login?token=bad", "/static/none.js"}
	for _, rt := range routes {
		if rt.method == "GET" {
			targets = append(targets, rt.target)
		}
	}
	for _, target := range targets {
		for _, c := range []string{"", cookie} {
			r := e.do("GET", target, c, nil, nil)
			h := r.Header
			if h.Get("Content-Security-Policy") != ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("GET %s (session %v): headers %v", target, c != "", h)
			}
			if body := readBody(t, r); strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, "<style") {
				t.Errorf("GET %s: inline script or style", target)
			}
		}
	}
	r := e.do("GET", "/static/app.js", "", nil, nil)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("app.js: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
}

func TestPostNeedsCSRFAndOrigin(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	token := e.csrf(cookie)
	other := e.login()
	form := func(csrf string) url.Values {
		v := url.Values{"at": {backupRun}, "key": {"docs/a.txt", xssKey}, "to": {"other-bucket"}, "toPrefix": {"restored/2026-02-03/"}, "overwrite": {"true"}}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		return v
	}
	tests := []struct {
		name   string
		cookie string
		form   url.Values
		hdr    map[string]string
		want   int
	}{
		{"no csrf", cookie, form(""), nil, http.StatusForbidden},
		{"wrong csrf", cookie, form(wrongToken(token)), nil, http.StatusForbidden},
		{"another session's csrf", other, form(token), nil, http.StatusForbidden},
		{"foreign origin", cookie, form(token), map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"null origin", cookie, form(token), map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"csrf in the query only", cookie, form(""), nil, http.StatusForbidden},
		{"right csrf and origin", cookie, form(token), map[string]string{"Origin": "http://example.com"}, http.StatusSeeOther},
		{"right csrf, no origin", cookie, form(token), nil, http.StatusSeeOther},
	}
	for _, tt := range tests {
		for _, path := range []string{"/restore", "/restore/preview"} {
			target := path
			if tt.name == "csrf in the query only" {
				target += "?csrf=" + token
			}
			r := e.do("POST", target, tt.cookie, tt.form, tt.hdr)
			want := tt.want
			if r.StatusCode != want {
				t.Errorf("%s, POST %s: %d, want %d", tt.name, path, r.StatusCode, want)
			}
		}
	}
	if len(e.starts) != 2 || len(e.dry) != 2 {
		t.Fatalf("%d restores started and %d previews, want 2 each (the accepted POSTs)", len(e.starts), len(e.dry))
	}
	want := map[string]any{"at": backupRun, "keys": []any{"docs/a.txt", xssKey}, "targetBucket": "other-bucket", "targetPrefix": "restored/2026-02-03/",
		"overwrite": true, "requestedBy": DefaultUser}
	for _, s := range append(e.starts, e.dry...) {
		got := map[string]any{}
		for k := range want {
			got[k] = s.input[k]
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("input %v, want %v", s.input, want)
		}
		if !strings.HasPrefix(s.name, "restore-20260203T040506Z-") || len(s.name) != len("restore-20260203T040506Z-")+8 {
			t.Errorf("run name %q", s.name)
		}
	}
	if e.starts[0].input["dryRun"] != false || e.dry[0].input["dryRun"] != true {
		t.Errorf("dryRun: restore %v, preview %v", e.starts[0].input["dryRun"], e.dry[0].input["dryRun"])
	}
	r := e.do("POST", "/restore", cookie, form(token), nil)
	if loc := r.Header.Get("Location"); loc != "/restores/"+e.starts[2].name {
		t.Fatalf("redirect to %q, want the new run's progress page", loc)
	}
	if r := e.do("GET", r.Header.Get("Location"), cookie, nil, nil); r.StatusCode != 200 || !strings.Contains(readBody(t, r), "Starting") {
		t.Fatalf("progress page of a run just started: %d", r.StatusCode)
	}
}

func TestRestoreInput(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	token := e.csrf(cookie)
	tests := []struct {
		name     string
		form     url.Values
		want     map[string]any // fields of the input
		wantCode int
	}{
		{"folders only", url.Values{"at": {backupRun}, "prefix": {"docs/sub/"}, "to": {"source-bucket"}},
			map[string]any{"prefixes": []any{"docs/sub/"}, "keys": nil, "overwrite": false, "targetBucket": "source-bucket"}, http.StatusSeeOther},
		{"whole bucket", url.Values{"at": {backupRun}, "to": {"source-bucket"}},
			map[string]any{"prefixes": nil, "keys": nil}, http.StatusSeeOther},
		{"files and a folder: the folder's files at the moment", url.Values{"at": {backupRun}, "select": {"docs/a.txt", "docs/sub/"}, "to": {"source-bucket"}},
			map[string]any{"keys": []any{"docs/a.txt", "docs/sub/c.txt"}, "prefixes": nil}, http.StatusSeeOther},
		{"one version", url.Values{"versionId": {"v9"}, "key": {"docs/a.txt"}, "to": {"source-bucket"}},
			map[string]any{"versionId": "v9", "keys": []any{"docs/a.txt"}, "at": ""}, http.StatusSeeOther},
		{"a bucket not allowed", url.Values{"at": {backupRun}, "to": {"backup-bucket"}}, nil, http.StatusBadRequest},
		{"a date picker time", url.Values{"at": {"2026-01-01T00:02"}, "to": {"source-bucket"}}, map[string]any{"at": "2026-01-01T00:02:00Z"}, http.StatusSeeOther},
	}
	for _, tt := range tests {
		tt.form.Set("csrf", token)
		n := len(e.starts)
		r := e.do("POST", "/restore", cookie, tt.form, nil)
		if r.StatusCode != tt.wantCode {
			t.Errorf("%s: %d, want %d: %s", tt.name, r.StatusCode, tt.wantCode, readBody(t, r))
			continue
		}
		if tt.want == nil {
			if len(e.starts) != n {
				t.Errorf("%s: a restore started", tt.name)
			}
			continue
		}
		in := e.starts[len(e.starts)-1].input
		for k, v := range tt.want {
			if !reflect.DeepEqual(in[k], v) {
				t.Errorf("%s: input %s = %v, want %v (input %v)", tt.name, k, in[k], v, in)
			}
		}
	}
}

func TestXSSKeyEscaped(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	for _, target := range []string{
		"/browse?prefix=docs/",
		"/browse?at=" + backupRun + "&prefix=docs/",
		"/browse?q=onerror",
		"/history?key=" + url.QueryEscape(xssKey),
		"/runs/" + restoreRun,
		"/restores/" + restoreRun,
		"/diff?from=2026-01-01T00:00:00Z&to=" + backupRun,
		"/restore?at=" + backupRun + "&key=" + url.QueryEscape(xssKey),
	} {
		r := e.do("GET", target, cookie, nil, nil)
		body := readBody(t, r)
		if r.StatusCode != 200 {
			t.Errorf("GET %s: %d\n%s", target, r.StatusCode, body)
			continue
		}
		if strings.Contains(body, "<img") {
			t.Errorf("GET %s: the key reached the page as markup", target)
		}
		if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;.txt") {
			t.Errorf("GET %s: the key is not shown as text", target)
		}
	}
}

func TestBrowse(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	tests := []struct {
		name, target string
		want         []string // data-key of every entry, in order
		wantCode     int
		wantText     string
	}{
		{"now", "/browse?prefix=docs/", []string{xssKey, "docs/a.txt", "docs/new.txt", "docs/sub/"}, 200, ""},
		{"at the backup", "/browse?at=" + backupRun + "&prefix=docs/", []string{xssKey, "docs/a.txt", "docs/sub/"}, 200, ""},
		{"picker time and an empty list choice", "/browse?at=" + url.QueryEscape(e.t1.Format("2006-01-02T15:04:05")) + "&at=&prefix=docs/", []string{xssKey, "docs/a.txt", "docs/sub/"}, 200, ""},
		{"search recursive", "/browse?q=C.TXT", []string{"docs/sub/c.txt"}, 200, "1 found"},
		{"bad at", "/browse?at=2026-13-01T00:00:00Z", nil, http.StatusBadRequest, "is not an RFC 3339 time"},
		{"unknown run", "/browse?at=backup-nope", nil, http.StatusBadRequest, "no backup execution named"},
		{"a restore as the moment", "/browse?at=" + restoreRun, nil, http.StatusBadRequest, "is a restore, not a backup"},
	}
	for _, tt := range tests {
		r := e.do("GET", tt.target, cookie, nil, nil)
		body := readBody(t, r)
		if r.StatusCode != tt.wantCode || !strings.Contains(body, tt.wantText) {
			t.Errorf("%s: %d, want %d with %q:\n%s", tt.name, r.StatusCode, tt.wantCode, tt.wantText, body)
			continue
		}
		if got := attrs(body, `data-testid="entry" data-key="`); !reflect.DeepEqual(got, escapeAll(tt.want)) {
			t.Errorf("%s: entries %q, want %q", tt.name, got, tt.want)
		}
	}
	body := readBody(t, e.do("GET", "/browse?at="+backupRun+"&prefix=docs/", cookie, nil, nil))
	for _, want := range []string{`data-testid="restore-folder" href="/restore?at=` + backupRun + `&amp;prefix=docs%2f"`, `data-testid="crumb"`,
		`<option value="` + backupRun + `" selected>`, `data-testid="restore-selected"`, `data-testid="restore-all"`} {
		if !strings.Contains(body, want) {
			t.Errorf("browse page lacks %s", want)
		}
	}
}

// attrs returns the value following every occurrence of marker, up to the next quote.
func attrs(body, marker string) []string {
	var out []string
	for _, part := range strings.Split(body, marker)[1:] {
		v, _, _ := strings.Cut(part, `"`)
		out = append(out, v)
	}
	return out
}

func escapeAll(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(s))
	}
	return out
}

func TestHistoryAndDownload(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	body := readBody(t, e.do("GET", "/history?key=docs/a.txt", cookie, nil, nil))
	if got := attrs(body, `data-testid="version-row" data-version="`); !reflect.DeepEqual(got, []string{e.v2, e.v1}) {
		t.Fatalf("versions %v, want newest first %v", got, []string{e.v2, e.v1})
	}
	if !strings.Contains(body, `href="/runs/`+backupRun+`"`) {
		t.Errorf("the first version is not attributed to %s", backupRun)
	}
	tests := []struct {
		key, version string
		want         int
		body         string
	}{
		{"docs/a.txt", e.v1, 200, "first"},
		{"docs/a.txt", e.v2, 200, "second, longer"},
		{xssKey, e.f.Versions("backup-bucket", xssKey)[0].VersionID, 200, secretBody},
		{"docs/a.txt", "nope", 404, ""},
		{"docs/a.txt", "", 400, ""},
	}
	for _, tt := range tests {
		r := e.do("GET", "/download?key="+url.QueryEscape(tt.key)+"&versionId="+url.QueryEscape(tt.version), cookie, nil, nil)
		got := readBody(t, r)
		if r.StatusCode != tt.want || (tt.want == 200 && got != tt.body) {
			t.Errorf("download %s@%s: %d %q, want %d %q", tt.key, tt.version, r.StatusCode, got, tt.want, tt.body)
		}
		if tt.want == 200 {
			cd := r.Header.Get("Content-Disposition")
			name, _, _ := strings.Cut(strings.TrimPrefix(cd, `attachment; filename="`), `"`)
			if !strings.HasPrefix(cd, "attachment; ") || strings.ContainsAny(name, `<>"/\ `) || name == "" {
				t.Errorf("Content-Disposition %q", cd)
			}
		}
	}
}

func TestAPIRun(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	tests := []struct {
		name string
		want runState
		code int
	}{
		// 2 objects from startedAt to finishedAt, a minute apart.
		{restoreRun, runState{Status: report.Failed, Batches: 1, Done: 1, Objects: 2, Finished: true, StartedAt: "2026-01-01T05:00:00Z",
			ObjectsPerSecond: 2.0 / 60, RateText: "About 2.0 files and 0 B per minute since the run started."}, 200},
		// Its outcome was written before the time in its name: no rate yet.
		{runningRun, runState{Status: StatusRunning, Batches: 2, Done: 1, Objects: 3, Bytes: 30, StartedAt: "2026-01-01T06:00:00Z"}, 200},
		{"restore-nope", runState{}, 404},
	}
	for _, tt := range tests {
		r := e.do("GET", "/api/runs/"+tt.name, cookie, nil, nil)
		var got runState
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil || r.StatusCode != tt.code {
			t.Fatalf("%s: %d, %v", tt.name, r.StatusCode, err)
		}
		if tt.code != 200 {
			continue
		}
		rep := got.Report
		got.Report = nil
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
		if tt.want.Finished != (rep != nil) || (rep != nil && (rep.RequestedBy != "ana" || len(rep.Failures) != 1)) {
			t.Errorf("%s: report %+v", tt.name, rep)
		}
	}
	body := readBody(t, e.do("GET", "/restores/"+restoreRun, cookie, nil, nil))
	for _, want := range []string{`data-testid="status">FAILED<`, `data-testid="failure-row"`, `data-finished="true"`} {
		if !strings.Contains(body, want) {
			t.Errorf("progress page of a finished restore lacks %s", want)
		}
	}
}

func TestRunsAndPreview(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	body := readBody(t, e.do("GET", "/runs", cookie, nil, nil))
	if got := attrs(body, `data-testid="run-row" data-run="`); !reflect.DeepEqual(got, []string{runningRun, restoreRun, backupRun}) {
		t.Fatalf("runs %v", got)
	}
	body = readBody(t, e.do("GET", "/runs/"+restoreRun, cookie, nil, nil))
	if n := strings.Count(body, `data-testid="failure-row"`); n != 1 || !strings.Contains(body, "AccessDenied") || !strings.Contains(body, "ana") {
		t.Fatalf("run page: %d failure rows", n)
	}
	if r := e.do("GET", "/runs/no-such-run", cookie, nil, nil); r.StatusCode != 404 {
		t.Fatalf("unknown run: %d", r.StatusCode)
	}
	form := url.Values{"at": {backupRun}, "prefix": {"docs/"}, "to": {"source-bucket"}, "csrf": {e.csrf(cookie)}}
	// The preview is a dry run: its page says "working" (and reloads itself) until the run's
	// report exists, then shows what the restore would do and the button that starts exactly it.
	e.holdPreviews = true
	r := e.do("POST", "/restore/preview", cookie, form, nil)
	page := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || len(e.dry) != 1 || page != "/previews/"+e.dry[0].name {
		t.Fatalf("POST /restore/preview: %d to %q, previews %v", r.StatusCode, page, e.dry)
	}
	body = readBody(t, e.do("GET", page, cookie, nil, nil))
	if !strings.Contains(body, `data-testid="preview-pending"`) || !strings.Contains(body, `<meta http-equiv="refresh" content="2">`) || strings.Contains(body, `data-testid="confirm"`) {
		t.Fatalf("a running preview's page:\n%s", body)
	}
	e.finishPreview(e.dry[0].name)
	body = readBody(t, e.do("GET", page, cookie, nil, nil))
	for _, want := range []string{`data-testid="preview-summary"`, `data-testid="preview-objects">3<`, `data-testid="preview-bytes">2.0 KiB<`,
		`data-testid="preview-archived">1<`, `data-testid="confirm"`, `name="preview" value="` + e.dry[0].name + `"`, `name="csrf" value="` + form.Get("csrf") + `"`, "everything in <span class=\"key\">docs/</span>"} {
		if !strings.Contains(body, want) {
			t.Errorf("preview lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "http-equiv") {
		t.Error("a finished preview still reloads itself")
	}
	// Confirming starts the previewed restore, as whoever confirms it.
	r = e.do("POST", "/restore", cookie, url.Values{"preview": {e.dry[0].name}, "csrf": form["csrf"]}, nil)
	if r.StatusCode != http.StatusSeeOther || len(e.starts) != 1 {
		t.Fatalf("confirm: %d, %d restores", r.StatusCode, len(e.starts))
	}
	got := e.starts[0].input
	if got["dryRun"] != false || got["prefixes"] == nil || fmt.Sprint(got["prefixes"]) != "[docs/]" || got["at"] != backupRun || got["targetBucket"] != "source-bucket" || got["requestedBy"] != DefaultUser {
		t.Errorf("the restore a preview started: %v", got)
	}
	for _, bad := range []string{"no-such-preview", e.starts[0].name} {
		if r := e.do("GET", "/previews/"+bad, cookie, nil, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /previews/%s: %d", bad, r.StatusCode)
		}
		if r := e.do("POST", "/restore", cookie, url.Values{"preview": {bad}, "csrf": form["csrf"]}, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /restore from preview %s: %d", bad, r.StatusCode)
		}
	}
}

// TestExactRollbackPreview: an exact rollback shows how many files it would remove and which,
// and starts only with the box ticked, sending that count for the planner to check.
func TestExactRollbackPreview(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	csrf := e.csrf(cookie)
	if body := readBody(t, e.do("GET", "/restore?at="+backupRun+"&prefix=docs/", cookie, nil, nil)); !strings.Contains(body, `data-testid="exact"`) {
		t.Fatal("the restore form does not offer exact rollback where it is allowed")
	}
	form := url.Values{"at": {backupRun}, "prefix": {"docs/"}, "to": {"source-bucket"}, "exact": {"true"}, "csrf": {csrf}}
	r := e.do("POST", "/restore/preview", cookie, form, nil)
	if r.StatusCode != http.StatusSeeOther || len(e.dry) != 1 || e.dry[0].input["exact"] != true || e.dry[0].input["overwrite"] != true {
		t.Fatalf("exact preview: %d %v", r.StatusCode, e.dry)
	}
	body := readBody(t, e.do("GET", r.Header.Get("Location"), cookie, nil, nil))
	for _, want := range []string{`data-testid="preview-removals">2<`, "docs/ransom.txt", "docs/a.txt.locked", `name="confirmRemovals" value="2"`, `data-testid="confirm-removals"`} {
		if !strings.Contains(body, want) {
			t.Errorf("exact preview lacks %s:\n%s", want, body)
		}
	}
	confirm := url.Values{"preview": {e.dry[0].name}, "csrf": {csrf}, "confirmRemovals": {"2"}}
	if r := e.do("POST", "/restore", cookie, confirm, nil); r.StatusCode != http.StatusBadRequest || len(e.starts) != 0 {
		t.Fatalf("confirm without ticking the box: %d, %d started", r.StatusCode, len(e.starts))
	}
	confirm.Set("confirmed", "true")
	if r := e.do("POST", "/restore", cookie, confirm, nil); r.StatusCode != http.StatusSeeOther || len(e.starts) != 1 {
		t.Fatalf("confirm: %d, %d started", r.StatusCode, len(e.starts))
	}
	if in := e.starts[0].input; in["exact"] != true || in["confirmRemovals"] != float64(2) || in["dryRun"] != false {
		t.Errorf("exact restore input %v", in)
	}
	// Where the deployment does not allow it, the form does not offer it and the server refuses it.
	e.srv.opts.AllowExact = false
	if body := readBody(t, e.do("GET", "/restore?at="+backupRun+"&prefix=docs/", cookie, nil, nil)); strings.Contains(body, `data-testid="exact"`) {
		t.Error("exact rollback offered where it is not allowed")
	}
	if r := e.do("POST", "/restore/preview", cookie, form, nil); r.StatusCode != http.StatusBadRequest || len(e.dry) != 1 {
		t.Errorf("exact preview where not allowed: %d", r.StatusCode)
	}
}

// wrongToken differs from token in its last character, always.
func wrongToken(token string) string {
	last := "0"
	if strings.HasSuffix(token, "0") {
		last = "1"
	}
	return token[:len(token)-1] + last
}

func TestFolders(t *testing.T) {
	for _, tt := range []struct {
		prefix, key string
		want        []string
	}{
		{"", "top.txt", nil},
		{"a/", "a/b/c/d.txt", []string{"a/b/", "a/b/c/"}},
		{"", "a/b.txt", []string{"a/"}},
		{"do", "docs/x/y.txt", []string{"docs/", "docs/x/"}},
	} {
		if got := folders(tt.prefix, tt.key); !slices.Equal(got, tt.want) {
			t.Errorf("folders(%q, %q) = %q, want %q", tt.prefix, tt.key, got, tt.want)
		}
	}
}

// A folder of 2,500 files (and one deleted before the backup's moment) pages by Next page links,
// 1,000 entries a page, each entry on exactly one page; the page says which entries it shows in
// plain numbers, links back to the first page, and keeps the folder's restore link; a forged
// continuation is refused.
func TestBrowsePages(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	const files = 2500
	for i := range files {
		e.f.Put("backup-bucket", fmt.Sprintf("big/%05d.txt", i), []byte("x"))
	}
	e.f.Put("backup-bucket", "big/01500.txt/inner.txt", []byte("a sub-folder named like a file"))
	del := &s3.DeleteObjectInput{Bucket: aws.String("backup-bucket"), Key: aws.String("big/00999.txt")}
	if _, err := e.f.DeleteObject(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	const want = files // 2,500 files, one deleted, one sub-folder
	seen := map[string]int{}
	var ranges []string
	target := "/browse?prefix=big/"
	for page := 1; target != ""; page++ {
		r := e.do("GET", target, cookie, nil, nil)
		body := readBody(t, r)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("page %d (%s): %d\n%s", page, target, r.StatusCode, body)
		}
		for _, k := range attrs(body, `data-testid="entry" data-key="`) {
			seen[k]++
		}
		rng, _, _ := strings.Cut(attrs(body, `data-testid="page-range">`)[0], "<")
		ranges = append(ranges, rng)
		if !strings.Contains(body, `data-testid="restore-folder" href="/restore?at=2026-02-03T04%3a05%3a06Z&amp;prefix=big%2f"`) {
			t.Errorf("page %d lacks the folder's restore link", page)
		}
		if hasFirst := strings.Contains(body, `data-testid="first-page" href="/browse?at=&amp;prefix=big%2f"`); hasFirst != (page > 1) {
			t.Errorf("page %d: first-page link %v", page, hasFirst)
		}
		target = ""
		if next := attrs(body, `data-testid="next-page" href="`); len(next) > 0 {
			target = html.UnescapeString(next[0])
		}
	}
	wantRanges := []string{
		"Showing 1–1,000 of the files and folders in this folder (there are more).",
		"Showing 1,001–2,000 of the files and folders in this folder (there are more).",
		"Showing 2,001–2,500 of the files and folders in this folder.",
	}
	if !reflect.DeepEqual(ranges, wantRanges) {
		t.Errorf("pages say %q, want %q", ranges, wantRanges)
	}
	if len(seen) != want {
		t.Errorf("%d entries over the pages, want %d", len(seen), want)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s shown %d times", k, n)
		}
	}
	if seen["big/00999.txt"] != 0 || seen["big/01500.txt/"] != 1 || seen["big/01500.txt"] != 1 {
		t.Errorf("deleted file or sub-folder wrong: %v %v %v", seen["big/00999.txt"], seen["big/01500.txt/"], seen["big/01500.txt"])
	}
	// A folder that fits on one page has no pager.
	if body := readBody(t, e.do("GET", "/browse?prefix=docs/", cookie, nil, nil)); strings.Contains(body, "page-range") {
		t.Errorf("a small folder shows a pager")
	}

	for _, bad := range []string{
		"/browse?prefix=big/&after=other/x.txt&from=1001",                        // not in the folder
		"/browse?prefix=big/&after=big/a/b.txt&from=1001",                        // deeper than the folder
		"/browse?prefix=big/&after=big/00010.txt&from=one",                       // not a number
		"/browse?prefix=big/&after=big/00010.txt&from=0",                         // before the first page
		"/browse?prefix=big/&after=big/%FF&from=1001",                            // not UTF-8
		"/browse?prefix=big/&after=big/" + strings.Repeat("x", 1100) + "&from=2", // longer than a key
	} {
		r := e.do("GET", bad, cookie, nil, nil)
		if body := readBody(t, r); r.StatusCode != http.StatusBadRequest || !strings.Contains(body, "page link is not valid") {
			t.Errorf("GET %s: %d, want 400 naming the page link:\n%.300s", bad, r.StatusCode, body)
		}
	}
}

// A restore waiting for thaws: the progress page and /api/runs say how many archived files, since
// when, and when S3's documented wait (planner.ThawTime, Standard) ends, in plain words; and
// once it copies, the rate since it started, by the run bucket's clock.
func TestProgressThawAndRate(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	const name = "restore-20260101T000000Z-dddddddd"
	ctx := context.Background()
	items := make([]batch.Item, 1500)
	for i := range items {
		items[i] = batch.Item{Op: batch.OpCopy, Key: fmt.Sprintf("k%d", i), VersionID: "v"}
	}
	hdr := batch.Header{Version: batch.Version, Source: "backup-bucket", Destination: "source-bucket"}
	e.f.Tick(time.Hour)
	for seq, part := range [][]batch.Item{items[:1000], items[1000:]} {
		if err := batch.Write(ctx, e.f, "run-bucket", fmt.Sprintf("work/%s/thaw/%06d.jsonl", name, seq), hdr, part); err != nil {
			t.Fatal(err)
		}
	}
	vs := e.f.Versions("run-bucket", "work/"+name+"/thaw/000000.jsonl")
	since := vs[0].LastModified.UTC()
	if err := batch.WriteManifest(ctx, e.f, "run-bucket", name, 2); err != nil {
		t.Fatal(err)
	}
	api := func() runState {
		t.Helper()
		r := e.do("GET", "/api/runs/"+name, cookie, nil, nil)
		var st runState
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil || r.StatusCode != 200 {
			t.Fatalf("api: %d, %v", r.StatusCode, err)
		}
		return st
	}
	st := api()
	wantSince, wantBy, wantDeep := since.Format(time.RFC3339), since.Add(5*time.Hour).Format(time.RFC3339), since.Add(12*time.Hour).Format(time.RFC3339)
	if st.Thawing != 1500 || st.ThawSince != wantSince || st.ThawReadyBy != wantBy || st.ThawDeepBy != wantDeep || st.ThawExpected != "5h0m0s" {
		t.Fatalf("thaw state %+v; want 1500 since %s, ready by %s (deep %s)", st, wantSince, wantBy, wantDeep)
	}
	wantText := "Waiting for 1,500 archived files to be brought back from the archive, asked for at " + since.Format("2006-01-02 15:04 UTC") +
		". Amazon S3 says this takes up to 5 hours (up to 12 hours for files in Deep Archive), so they should be ready by about " +
		since.Add(5*time.Hour).Format("2006-01-02 15:04 UTC") + " (" + since.Add(12*time.Hour).Format("2006-01-02 15:04 UTC") + " for Deep Archive)."
	if !strings.HasPrefix(st.ThawText, wantText) {
		t.Fatalf("thaw text %q\nwant it to start %q", st.ThawText, wantText)
	}
	body := readBody(t, e.do("GET", "/restores/"+name, cookie, nil, nil))
	for _, want := range []string{`data-testid="thaw" class="thaw">` + html.EscapeString(st.ThawText) + "<", "Waiting for archived files to thaw; then 2 batches will be copied.", `data-testid="rate" hidden>`} {
		if !strings.Contains(body, want) {
			t.Errorf("progress page lacks %q:\n%s", want, body)
		}
	}

	// Copying: the thaws are done; 600 files and 6,000 bytes, by the fake clock an hour and
	// some after the time in the run's name.
	e.f.Tick(time.Minute)
	okey, _ := batch.OutcomeKey(batch.Key(name, 0))
	putJSON(t, e.f, "run-bucket", okey, report.Outcome{Copied: 600, BytesCopied: 6000})
	ov := e.f.Versions("run-bucket", okey)
	secs := ov[0].LastModified.Sub(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).Seconds()
	st = api()
	if st.Thawing != 0 || st.ThawText != "" || st.ObjectsPerSecond != 600/secs || st.BytesPerSecond != 6000/secs || !strings.HasPrefix(st.RateText, "About ") {
		t.Fatalf("copying: %+v; want no thaw and %v files/s", st, 600/secs)
	}
}

// A backup's further destinations and a drill's findings are on their run pages: each copy with
// its counts and problem, each failure with the copy it concerns, a drill's checks and restore.
func TestRunPageDestinationsAndDrill(t *testing.T) {
	e := newEnv(t)
	cookie := e.login()
	const withCopies, drill = "backup-20260102T000100Z-dddddddd", "verify-20260102T040000Z-eeeeeeee"
	dr := report.Destination{DestinationTotals: report.DestinationTotals{Name: "offsite", Bucket: "far-bucket", New: 3}, Copied: 1, Failed: 2, Batches: 1}
	putJSON(t, e.f, "run-bucket", batch.ReportKey(withCopies), report.Report{Status: report.Failed, Error: "BackupIncomplete", Execution: withCopies,
		Copied: 3, Destinations: []report.Destination{dr, {DestinationTotals: report.DestinationTotals{Name: "dr", Bucket: "dr-bucket", New: 3}, Copied: 3, Batches: 1}},
		Failures: []report.Failure{{Key: "docs/<b>x</b>", Op: "copy", Error: "connection refused", Destination: "offsite"}}})
	putJSON(t, e.f, "run-bucket", batch.ReportKey(drill), report.Report{Status: report.Failed, Error: "VerifyMismatch", Execution: drill,
		Verify: &report.Verify{AgainstBackup: backupRun, Checked: 120, Verified: 119, Mismatches: []report.Mismatch{{Key: "docs/a.txt", Kind: "content"}},
			Restore: &report.VerifyRestore{Sampled: 20, Identical: 19, Seconds: 1.25}},
		Failures: []report.Failure{{Key: "docs/a.txt", Op: "verify", Error: "content differs"}}})

	body := readBody(t, e.do("GET", "/runs/"+withCopies, cookie, nil, nil))
	if got := attrs(body, `data-testid="destination-row" data-name="`); !reflect.DeepEqual(got, []string{"offsite", "dr"}) {
		t.Fatalf("copies %v", got)
	}
	for _, want := range []string{`destination &#34;offsite&#34; (far-bucket): 2 objects were not written`, `<td>docs/&lt;b&gt;x&lt;/b&gt;</td><td>offsite</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("backup page lacks %s", want)
		}
	}
	body = readBody(t, e.do("GET", "/runs/"+drill, cookie, nil, nil))
	for _, want := range []string{"Restore drill", `data-testid="drill-checked">120<`, `data-testid="drill-mismatches">1<`, `data-testid="drill-restored">19 of 20 identical, in 1.2 s<`, `<td>docs/a.txt</td><td>backup</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("drill page lacks %s", want)
		}
	}
}
