//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/statemachine/console"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// Bounds of the browser tests: a hung browser or a page that never shows what the test waits for
// fails the test instead of hanging it; one step that times out leaves the browser to the next.
const (
	consoleTimeout = 5 * time.Minute  // the browser's whole life
	stepTimeout    = 30 * time.Second // one page step: load, wait, read
	restoreTimeout = 2 * time.Minute  // a restore of a few objects, from confirm to its final status
)

// xssKey is an attacker-chosen key: the console must show it as text and never run it.
const xssKey = "<img src=x onerror=alert(1)>.txt"

// consoleFixture is one backup history, two runs apart, and a console serving it.
type consoleFixture struct {
	e          *env
	ts         *httptest.Server
	srv        *console.Server
	run1, run2 string // backup execution names
	target     string // a bucket restores may write to

	restores sync.WaitGroup // restores StartRestore started
	mu       sync.Mutex
	started  []startedRestore
	dryRuns  []*report.Report
	nDryRuns atomic.Int32
	execs    map[string]*console.Execution
}

type startedRestore struct {
	name  string
	input map[string]any
	res   *localrun.Result
	err   error
}

// newConsoleFixture backs up files in two folders, changes, deletes and adds some, backs up again,
// and serves the console in-process over the test's buckets.
func newConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	e := newEnv(t, envOptions{})
	f := &consoleFixture{e: e, execs: map[string]*console.Execution{}}
	for k, v := range map[string]string{
		"a.txt": "alpha v1\n", "a.txt.bak": "alpha backup copy\n", "b.txt": "bravo\n", "docs/c.txt": "charlie\n",
		"photos/2024/e.jpg": "echo jpeg bytes\x00\x01\x02", "photos/2024/f.jpg": "foxtrot jpeg\n", "photos/g.png": "golf png\n",
		xssKey: "not a script\n",
	} {
		e.putBytes(e.source, k, []byte(v))
	}
	f.run1 = e.mustBackup(`{}`).Execution.Name
	e.putBytes(e.source, "a.txt", []byte("alpha v2, longer\n"))
	e.del(e.source, "b.txt")
	e.putBytes(e.source, "docs/d.txt", []byte("delta\n"))
	f.run2 = e.mustBackup(`{}`).Execution.Name
	f.target = e.newBucket("restored")

	srv, err := console.New(console.Options{
		S3: e.s3, Source: e.source, Backup: e.backup, Run: e.run,
		RestoreTargets: []string{f.target},
		StartRestore:   f.startRestore,
		Execution:      f.execution,
		Logger:         slog.New(slog.NewJSONHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("console.New: %v", err)
	}
	f.srv = srv
	f.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(f.ts.Close)
	t.Cleanup(f.restores.Wait) // every restore the console started has finished before the buckets go
	return f
}

// startRestore runs the restore (or the preview: dryRun set) in the background, as
// StartExecution would, and records it.
func (f *consoleFixture) startRestore(_ context.Context, name string, input []byte) error {
	var in map[string]any
	if err := json.Unmarshal(input, &in); err != nil {
		return fmt.Errorf("restore input is not a JSON object: %w", err)
	}
	dry := in["dryRun"] == true
	x := &console.Execution{Input: input, Status: console.Running}
	f.mu.Lock()
	f.execs[name] = x
	f.mu.Unlock()
	if dry {
		f.nDryRuns.Add(1)
	}
	f.restores.Go(func() {
		res, err := f.e.runner.Restore(f.e.ctx, name, input)
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case err != nil:
			x.Status, x.Error, x.Cause = "FAILED", "States.Runtime", err.Error()
		default:
			x.Status, x.Error, x.Cause = res.Execution.Status, res.Execution.Error, res.Execution.Cause
		}
		if dry {
			if err == nil && res.Report != nil {
				f.dryRuns = append(f.dryRuns, res.Report)
			}
			return
		}
		f.started = append(f.started, startedRestore{name: name, input: in, res: res, err: err})
	})
	if !dry {
		f.mu.Lock()
		f.started = append(f.started, startedRestore{name: name, input: in})
		f.mu.Unlock()
	}
	return nil
}

// execution is what the console asks of a restore execution it started.
func (f *consoleFixture) execution(_ context.Context, name string) (console.Execution, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if x, ok := f.execs[name]; ok {
		return *x, nil
	}
	return console.Execution{}, console.ErrNoSuchExecution
}

// startedCount is how many restores the console asked for.
func (f *consoleFixture) startedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.started {
		if s.res == nil && s.err == nil {
			n++
		}
	}
	return n
}

// finished returns the finished restore named name.
func (f *consoleFixture) finished(name string) (startedRestore, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.started {
		if s.name == name && (s.res != nil || s.err != nil) {
			return s, true
		}
	}
	return startedRestore{}, false
}

// chromium finds Debian's chromium; missing, it fails the test where servers are required and
// skips it elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if required() {
		t.Fatal("Chromium is required for the console's browser tests (apt-get install chromium)")
	}
	t.Skip("SKIPPING the console's browser tests: chromium not installed (apt-get install chromium)")
	return ""
}

// browser is one headless Chromium tab, watched for anything a page's script should never do.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string // the console's URL
	shot string // where screenshots go; "" for none

	mu     sync.Mutex
	alarms []string // dialogs, uncaught exceptions, CSP violations
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), consoleTimeout)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelTab := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancelTab)
	b := &browser{t: t, ctx: bctx, base: base, shot: os.Getenv("BUCKETVAULT_SCREENSHOTS")}
	if b.shot != "" {
		if err := os.MkdirAll(b.shot, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b.watch(bctx)
	return b
}

// watch records every dialog (and dismisses it, so the page goes on), uncaught exception and
// Content-Security-Policy violation of the tab.
func (b *browser) watch(ctx context.Context) {
	b.t.Helper()
	alarm := func(s string) {
		b.mu.Lock()
		b.alarms = append(b.alarms, s)
		b.mu.Unlock()
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			alarm(fmt.Sprintf("a %s dialog opened on %s: %q", ev.Type, ev.URL, ev.Message))
			go func() { _, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) }()
		case *runtime.EventExceptionThrown:
			if d := ev.ExceptionDetails; d != nil {
				text := d.Text
				if d.Exception != nil {
					text += " " + d.Exception.Description
				}
				alarm(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
			}
		case *log.EventEntryAdded:
			if ev.Entry != nil && strings.Contains(ev.Entry.Text, "Content Security Policy") {
				alarm("CSP violation: " + ev.Entry.Text)
			}
		case *runtime.EventConsoleAPICalled:
			for _, a := range ev.Args {
				if a != nil && strings.Contains(string(a.Value), "Content Security Policy") {
					alarm("CSP violation: " + string(a.Value))
				}
			}
		}
	})
	if err != nil {
		b.t.Fatalf("start the browser: %v", err)
	}
}

// quiet fails the test when a page opened a dialog, threw, or broke the CSP.
func (b *browser) quiet(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.alarms) > 0 {
		t.Fatalf("the page ran something it should not have:\n%s", strings.Join(b.alarms, "\n"))
	}
}

// step is a context for one step: the browser stays open when it times out.
func (b *browser) step(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, d)
}

func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	b.doWithin(t, stepTimeout, what, steps...)
}

func (b *browser) doWithin(t *testing.T, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := b.step(d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b.where())
	}
}

// where describes the page the browser is on, for a failure message.
func (b *browser) where() string {
	ctx, cancel := b.step(5 * time.Second)
	defer cancel()
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(the page cannot be read: " + err.Error() + ")"
	}
	return "the browser is on " + page
}

// open loads a console page and waits until the element sel is visible.
func (b *browser) open(t *testing.T, path, sel string) {
	t.Helper()
	b.do(t, "open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// all returns the attributes of every element matching sel, with its trimmed text as "#text".
func (b *browser) all(t *testing.T, sel string) []map[string]string {
	t.Helper()
	q, _ := json.Marshal(sel)
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).map(e => {
		const o = {"#text": e.textContent.trim()};
		for (const a of e.attributes) o[a.name] = a.value;
		return o;
	})`, q)
	ctx, cancel := b.step(stepTimeout)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]map[string]string](js))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return out
}

func (b *browser) eval(t *testing.T, js string) string {
	t.Helper()
	ctx, cancel := b.step(stepTimeout)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return out
}

// screenshot saves a full-page PNG of the current screen when BUCKETVAULT_SCREENSHOTS is set.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	if b.shot == "" {
		return
	}
	ctx, cancel := b.step(stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shot, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// session returns the console's session cookie from the browser, checking its flags.
func (b *browser) session(t *testing.T) *http.Cookie {
	t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == "bv_session" {
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" {
				t.Fatalf("session cookie flags: httpOnly=%v sameSite=%q path=%q, want HttpOnly, SameSite=Strict, Path=/", c.HTTPOnly, c.SameSite, c.Path)
			}
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	t.Fatalf("no bv_session cookie after login; cookies: %d", len(res.Cookies))
	return nil
}

// cells returns the trimmed text of each cell of the row sel.
func (b *browser) cells(t *testing.T, sel string) []string {
	t.Helper()
	var out []string
	for _, c := range b.all(t, sel+` td`) {
		out = append(out, c["#text"])
	}
	return out
}

// hasSize reports whether a cell shows exactly n bytes ("9", "9 B", "9 bytes").
func hasSize(cells []string, n int) bool {
	for _, c := range cells {
		if v, ok := strings.CutPrefix(c, fmt.Sprint(n)); ok && slices.Contains([]string{"", " B", " bytes", "B"}, v) {
			return true
		}
	}
	return false
}

// cssString quotes s for a CSS attribute selector.
func cssString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func entrySel(key string) string {
	return `tr[data-testid="entry"][data-key=` + cssString(key) + `]`
}

// keysOf returns attribute attr of each element, in page order.
func keysOf(els []map[string]string, attr string) []string {
	out := []string{}
	for _, e := range els {
		out = append(out, e[attr])
	}
	return out
}

// fetch requests the console directly (not through the browser).
func (f *consoleFixture) fetch(t *testing.T, method, path string, cookie *http.Cookie, header map[string]string, form url.Values) (int, http.Header, []byte) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(f.e.ctx, method, f.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// The console in a real headless Chromium against MinIO: after two backups with a change, a
// delete and an add between them, each screen shows what S3 holds, a selection across folders
// is restored under a new prefix byte for byte, an attacker-named key stays text, and nothing is
// shown or changed without the session and the page's own origin.
func TestConsole(t *testing.T) {
	chromium(t) // before the fixture: a missing browser costs nothing
	f := newConsoleFixture(t)
	b := newBrowser(t, f.ts.URL)
	b.do(t, "log in", chromedp.Navigate(f.ts.URL+f.srv.LoginPath()))
	cookie := b.session(t)

	t.Run("Runs", func(t *testing.T) {
		b.open(t, "/runs", `tr[data-testid="run-row"][data-run=`+cssString(f.run1)+`]`)
		b.screenshot(t, "runs")
		rows := keysOf(b.all(t, `tr[data-testid="run-row"]`), "data-run")
		if i1, i2 := slices.Index(rows, f.run1), slices.Index(rows, f.run2); i1 < 0 || i2 < 0 || i2 > i1 {
			t.Fatalf("runs %q: want both backups, the newest (%s) first", rows, f.run2)
		}
		link := b.eval(t, `document.querySelector(`+jsString(`tr[data-testid="run-row"][data-run=`+cssString(f.run1)+`] a`)+`).getAttribute("href")`)
		if link != "/runs/"+f.run1 {
			t.Fatalf("the run's link leads to %s, want /runs/%s", link, f.run1)
		}
		b.do(t, "open the first run", chromedp.Navigate(f.ts.URL+link))
		if text := b.eval(t, `document.body.innerText`); !strings.Contains(text, "SUCCEEDED") {
			t.Fatalf("the run page does not say SUCCEEDED:\n%s", text)
		}
		if fails := b.all(t, `[data-testid="failure-row"]`); len(fails) != 0 {
			t.Fatalf("a successful run shows failures: %v", fails)
		}
		b.quiet(t)
	})

	t.Run("BrowseAtTheFirstRun", func(t *testing.T) {
		at := "/browse?at=" + url.QueryEscape(f.run1)
		b.open(t, at, entrySel("b.txt")) // deleted since, there as it was
		b.screenshot(t, "browse")
		entries := b.all(t, `tr[data-testid="entry"]`)
		got := keysOf(entries, "data-key")
		sort.Strings(got)
		want := []string{xssKey, "a.txt", "a.txt.bak", "b.txt", "docs/", "photos/"}
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("entries at the first run: %q, want %q", got, want)
		}
		for _, en := range entries {
			if dir := strings.HasSuffix(en["data-key"], "/"); en["data-dir"] != fmt.Sprint(dir) {
				t.Errorf("entry %q: data-dir=%q", en["data-key"], en["data-dir"])
			}
		}
		// a.txt then held 9 bytes; now it holds 17.
		if cells := b.cells(t, entrySel("a.txt")); !hasSize(cells, 9) {
			t.Fatalf("a.txt at the first run shows %q, want its size then, 9 bytes", cells)
		}
		// The runs are the picker's snap points.
		if opts := keysOf(b.all(t, `select[name="at"] option`), "value"); !slices.Contains(opts, f.run1) || !slices.Contains(opts, f.run2) {
			t.Fatalf("moment picker options %q lack the backup runs", opts)
		}
		if n := len(b.all(t, `input[type="datetime-local"][name="at"]`)); n != 1 {
			t.Fatalf("%d datetime-local moment pickers, want 1", n)
		}

		b.open(t, "/browse", entrySel("a.txt"))
		if got := keysOf(b.all(t, `tr[data-testid="entry"]`), "data-key"); slices.Contains(got, "b.txt") {
			t.Fatalf("b.txt is listed now, after its deletion: %q", got)
		}
		if cells := b.cells(t, entrySel("a.txt")); !hasSize(cells, 17) {
			t.Fatalf("a.txt now shows %q, want its new size, 17 bytes", cells)
		}

		// Into a folder, by its link; the crumbs lead back.
		b.open(t, at, entrySel("docs/"))
		b.do(t, "open docs/", chromedp.Click(chromedp.CSS(entrySel("docs/")+` a`)), chromedp.WaitVisible(chromedp.CSS(entrySel("docs/c.txt"))))
		if got := keysOf(b.all(t, `tr[data-testid="entry"]`), "data-key"); !slices.Equal(got, []string{"docs/c.txt"}) {
			t.Fatalf("docs/ at the first run: %q, want only docs/c.txt (d.txt came later)", got)
		}
		if crumbs := b.all(t, `a[data-testid="crumb"]`); len(crumbs) == 0 {
			t.Fatal("no breadcrumbs in docs/")
		}

		// Search by name, recursive, within the moment.
		b.open(t, at+"&q=c.txt", entrySel("docs/c.txt"))
		if got := keysOf(b.all(t, `tr[data-testid="entry"]`), "data-key"); !slices.Equal(got, []string{"docs/c.txt"}) {
			t.Fatalf("search c.txt at the first run: %q, want docs/c.txt", got)
		}
		b.quiet(t)
	})

	t.Run("HistoryAndDownload", func(t *testing.T) {
		b.open(t, "/history?key=a.txt", `tr[data-testid="version-row"]`)
		b.screenshot(t, "history")
		rows := b.all(t, `tr[data-testid="version-row"]`)
		if len(rows) != 2 || rows[0]["data-delete-marker"] != "false" || rows[1]["data-delete-marker"] != "false" {
			t.Fatalf("a.txt history: %v, want two versions", rows)
		}
		links := b.all(t, `a[data-testid="download"]`)
		if len(links) != 2 {
			t.Fatalf("a.txt history has %d download links, want 2", len(links))
		}
		for i, want := range []string{"alpha v2, longer\n", "alpha v1\n"} { // newest first
			href, err := url.Parse(links[i]["href"])
			if err != nil || href.Query().Get("versionId") != rows[i]["data-version"] {
				t.Fatalf("download link %q does not name version %q", links[i]["href"], rows[i]["data-version"])
			}
			code, h, body := f.fetch(t, "GET", href.RequestURI(), cookie, nil, nil)
			if code != http.StatusOK || string(body) != want {
				t.Fatalf("download version %d: %d %q, want 200 %q", i, code, body, want)
			}
			if cd := h.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
				t.Fatalf("download Content-Disposition %q, want an attachment", cd)
			}
		}

		b.open(t, "/history?key=b.txt", `tr[data-testid="version-row"]`)
		rows = b.all(t, `tr[data-testid="version-row"]`)
		if len(rows) != 2 || rows[0]["data-delete-marker"] != "true" || rows[1]["data-delete-marker"] != "false" {
			t.Fatalf("b.txt history: %v, want its delete marker, then its version", rows)
		}
		b.quiet(t)
	})

	t.Run("Diff", func(t *testing.T) {
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", []string{"added docs/d.txt", "changed a.txt", "deleted b.txt"}},
			{"docs/", []string{"added docs/d.txt"}},
		} {
			path := "/diff?from=" + url.QueryEscape(f.run1) + "&to=" + url.QueryEscape(f.run2) + "&prefix=" + url.QueryEscape(tc.prefix)
			b.open(t, path, `tr[data-testid="change"]`)
			if tc.prefix == "" {
				b.screenshot(t, "diff")
			}
			got := []string{}
			for _, c := range b.all(t, `tr[data-testid="change"]`) {
				got = append(got, c["data-change"]+" "+c["data-key"])
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("diff under %q: %q, want %q", tc.prefix, got, tc.want)
			}
		}
		b.quiet(t)
	})

	t.Run("AttackerNamedKeyIsText", func(t *testing.T) {
		for _, path := range []string{"/browse", "/browse?q=" + url.QueryEscape("onerror"), "/history?key=" + url.QueryEscape(xssKey)} {
			sel := entrySel(xssKey)
			if strings.HasPrefix(path, "/history") {
				sel = `tr[data-testid="version-row"]`
			}
			b.open(t, path, sel)
			b.quiet(t)
			if n := b.eval(t, `String(document.querySelectorAll('img[src="x"], [onerror]').length)`); n != "0" {
				t.Fatalf("%s: %s elements made from the key", path, n)
			}
			if strings.HasPrefix(path, "/history") {
				if text := b.eval(t, `document.body.textContent`); !strings.Contains(text, xssKey) {
					t.Fatalf("%s does not show the key as text", path)
				}
				continue
			}
			row := b.all(t, sel)
			if len(row) != 1 {
				t.Fatalf("%s: %d rows for the key", path, len(row))
			}
			name := b.eval(t, `document.querySelector(`+jsString(sel+` a`)+`).textContent.trim()`)
			if row[0]["data-key"] != xssKey || name != xssKey {
				t.Fatalf("%s: data-key %q, link text %q, want both %q", path, row[0]["data-key"], name, xssKey)
			}
		}
		b.quiet(t)
	})

	t.Run("SecurityHeaders", func(t *testing.T) {
		for _, path := range []string{"/runs", "/browse", "/history?key=a.txt", "/static/app.js", "/nosuchpage"} {
			_, h, _ := f.fetch(t, "GET", path, cookie, nil, nil)
			for k, want := range map[string]string{
				"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("GET %s: %s = %q, want %q", path, k, got, want)
				}
			}
		}
	})

	t.Run("NoSessionNoData", func(t *testing.T) {
		// What only the buckets know (a 401 page may echo the URL it was asked for).
		secrets := []string{"a.txt.bak", "docs/c.txt", "charlie", "alpha", xssKey, "photos/", "g.png", f.run2}
		noData := func(t *testing.T, what string, body []byte) {
			t.Helper()
			for _, s := range secrets {
				if !strings.Contains(what, s) && strings.Contains(string(body), s) {
					t.Fatalf("%s without a session shows %q:\n%s", what, s, body)
				}
			}
		}
		for _, path := range []string{
			"/runs", "/runs/" + f.run1, "/browse", "/browse?at=" + url.QueryEscape(f.run1) + "&prefix=docs/",
			"/browse?q=txt", "/history?key=a.txt", "/download?key=a.txt", "/diff?from=" + url.QueryEscape(f.run1) + "&to=" + url.QueryEscape(f.run2),
			"/restore?key=a.txt&at=" + url.QueryEscape(f.run1), "/api/runs/" + f.run1,
		} {
			code, _, body := f.fetch(t, "GET", path, nil, nil, nil)
			if code != http.StatusUnauthorized {
				t.Errorf("GET %s without a session: %d, want 401", path, code)
			}
			noData(t, "GET "+path, body)
			code, _, body = f.fetch(t, "GET", path, &http.Cookie{Name: "bv_session", Value: "forged"}, nil, nil)
			if code != http.StatusUnauthorized {
				t.Errorf("GET %s with a forged session: %d, want 401", path, code)
			}
			noData(t, "GET "+path+" (forged)", body)
		}
		// A login token works once.
		login := f.srv.LoginPath()
		if code, _, _ := f.fetch(t, "GET", login, nil, nil, nil); code >= 400 {
			t.Fatalf("a fresh login token: %d", code)
		}
		if code, _, _ := f.fetch(t, "GET", login, nil, nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("a used login token: %d, want 401", code)
		}

		// A second browser profile (no cookies) sees nothing either.
		fresh, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
		defer cancel()
		resp, err := chromedp.Run(fresh, chromedp.NavigateResponse(f.ts.URL+"/browse"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusUnauthorized {
			t.Fatalf("a browser without the session: /browse answered %d, want 401", resp.Status)
		}
		html, err := chromedp.Run(fresh, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		if err != nil {
			t.Fatal(err)
		}
		noData(t, "the browser's /browse", []byte(html))
	})

	t.Run("CrossOriginPostRefused", func(t *testing.T) {
		b.open(t, "/restore?at="+url.QueryEscape(f.run1)+"&key=a.txt", `[data-testid="preview"]`)
		csrf := b.eval(t, `document.querySelector('input[name="csrf"]').value`)
		if csrf == "" {
			t.Fatal("the restore form has an empty csrf field")
		}
		form := func(token string) url.Values {
			return url.Values{"at": {f.run1}, "key": {"a.txt"}, "to": {f.target}, "toPrefix": {"evil/"}, "csrf": {token}}
		}
		startedBefore, dryBefore := f.startedCount(), f.nDryRuns.Load()
		evil := map[string]string{"Origin": "http://evil.example"}
		evilSite := map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
		sandboxed := map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"} // a sandboxed frame elsewhere
		own := map[string]string{"Origin": f.ts.URL}
		for _, tc := range []struct {
			name   string
			path   string
			cookie *http.Cookie
			header map[string]string
			form   url.Values
			want   int
		}{
			{"another origin", "/restore", cookie, evil, form(csrf), http.StatusForbidden},
			{"another origin, as a browser sends it", "/restore", cookie, evilSite, form(csrf), http.StatusForbidden},
			{"another origin, preview", "/restore/preview", cookie, evilSite, form(csrf), http.StatusForbidden},
			{"a sandboxed frame of another site", "/restore", cookie, sandboxed, form(csrf), http.StatusForbidden},
			{"no csrf", "/restore", cookie, own, form(""), http.StatusForbidden},
			{"a wrong csrf", "/restore", cookie, own, form(csrf + "x"), http.StatusForbidden},
			{"no session", "/restore", nil, own, form(csrf), http.StatusUnauthorized},
		} {
			code, _, body := f.fetch(t, "POST", tc.path, tc.cookie, tc.header, tc.form)
			if code != tc.want && !(tc.want == http.StatusUnauthorized && code == http.StatusForbidden) {
				t.Errorf("POST %s with %s: %d, want %d\n%s", tc.path, tc.name, code, tc.want, body)
			}
		}
		if n, d := f.startedCount(), f.nDryRuns.Load(); n != startedBefore || d != dryBefore {
			t.Fatalf("refused POSTs started %d restores and %d dry runs", n-startedBefore, d-dryBefore)
		}
		if keys := f.e.keys(f.target); len(keys) != 0 {
			t.Fatalf("refused POSTs wrote %q", keys)
		}
		// The same request from the console's own origin is accepted: the refusals above were
		// the origin's and the token's doing.
		code, _, body := f.fetch(t, "POST", "/restore/preview", cookie, map[string]string{"Origin": f.ts.URL}, form(csrf))
		if code != http.StatusSeeOther || f.nDryRuns.Load() != dryBefore+1 {
			t.Fatalf("POST /restore/preview from the console's origin: %d (dry runs %d)\n%s", code, f.nDryRuns.Load()-dryBefore, body)
		}
	})

	t.Run("RestoreSelectionUnderNewPrefix", func(t *testing.T) {
		want := map[string]string{
			"restored/a.txt": "alpha v1\n", "restored/docs/c.txt": "charlie\n",
			"restored/photos/2024/e.jpg": "echo jpeg bytes\x00\x01\x02", "restored/photos/2024/f.jpg": "foxtrot jpeg\n",
			"restored/photos/g.png": "golf png\n",
		}
		var selectedBytes int64
		for _, v := range want {
			selectedBytes += int64(len(v))
		}
		at := "/browse?at=" + url.QueryEscape(f.run1)
		check := func(key string) chromedp.Action[chromedp.Void] {
			return chromedp.Click(chromedp.CSS(entrySel(key) + ` input[type="checkbox"][name="select"]`))
		}
		// a.txt here, docs/c.txt one folder down, then the whole photos/ folder back up here.
		b.open(t, at, entrySel("a.txt"))
		b.do(t, "select a.txt", check("a.txt"))
		b.do(t, "into docs/", chromedp.Click(chromedp.CSS(entrySel("docs/")+` a`)), chromedp.WaitVisible(chromedp.CSS(entrySel("docs/c.txt"))))
		b.do(t, "select docs/c.txt", check("docs/c.txt"))
		b.do(t, "back up", chromedp.Click(chromedp.CSS(`a[data-testid="crumb"]`)), chromedp.WaitVisible(chromedp.CSS(entrySel("photos/"))))
		ctx, cancel := b.step(stepTimeout)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector(`+jsString(entrySel("a.txt")+` input[name="select"]`)+`).checked`,
			chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("a.txt is no longer selected after a visit to docs/ (the selection is not kept across folders): %v", err)
		}
		b.do(t, "select photos/", check("photos/"))
		b.do(t, "Restore…", chromedp.Click(chromedp.CSS(`[data-testid="restore-selected"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="preview"]`)))

		// The form: into the allowed bucket, under a new prefix.
		if opts := keysOf(b.all(t, `select[name="to"] option`), "value"); !slices.Contains(opts, f.e.source) || !slices.Contains(opts, f.target) {
			t.Fatalf("destinations %q, want the source and %s", opts, f.target)
		}
		if ph := b.eval(t, `document.querySelector('input[name="toPrefix"]').placeholder`); !strings.HasPrefix(ph, "restored/") {
			t.Errorf("toPrefix placeholder %q, want restored/<date>/", ph)
		}
		b.do(t, "fill the form",
			chromedp.SetValue(chromedp.CSS(`select[name="to"]`), f.target),
			chromedp.SetValue(chromedp.CSS(`input[name="toPrefix"]`), "restored/"))
		b.screenshot(t, "restore")

		pctx, pcancel := b.step(stepTimeout)
		defer pcancel()
		resp, err := chromedp.RunResponse(pctx, chromedp.Click(chromedp.CSS(`[data-testid="preview"]`)))
		if err != nil {
			t.Fatalf("preview: %v\n%s", err, b.where())
		}
		if resp.Status == http.StatusForbidden {
			t.Fatalf("the console refused its own preview form (403): Chromium sends \"Origin: null\" (and "+
				"\"Sec-Fetch-Site: same-origin\") on a same-origin form POST from a page served with "+
				"Referrer-Policy: no-referrer\n%s", b.where())
		}
		b.do(t, "preview", chromedp.WaitVisible(chromedp.CSS(`[data-testid="preview-summary"]`)))
		b.screenshot(t, "restore-preview")
		f.mu.Lock()
		var dry *report.Report
		if len(f.dryRuns) > 0 {
			dry = f.dryRuns[len(f.dryRuns)-1]
		}
		f.mu.Unlock()
		if dry == nil || !dry.DryRun || dry.New != 5 || dry.BytesToCopy != selectedBytes || dry.TargetBucket != f.target || dry.TargetPrefix != "restored/" {
			t.Fatalf("the preview's dry run: %+v, want 5 new objects, %d bytes, into %s under restored/", dry, selectedBytes, f.target)
		}
		if summary := b.eval(t, `document.querySelector('[data-testid="preview-summary"]').innerText`); !strings.Contains(summary, "5") || !strings.Contains(summary, fmt.Sprint(selectedBytes)) {
			t.Fatalf("preview summary %q does not count the 5 objects and %d bytes", summary, selectedBytes)
		}
		if keys := f.e.keys(f.target); len(keys) != 0 {
			t.Fatalf("the preview wrote %q", keys)
		}

		before := f.startedCount()
		b.do(t, "confirm", chromedp.Click(chromedp.CSS(`[data-testid="confirm"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="progress"]`)))
		b.screenshot(t, "restore-progress")
		if f.startedCount() != before+1 {
			t.Fatalf("confirm started %d restores, want 1", f.startedCount()-before)
		}
		name := strings.TrimPrefix(b.eval(t, `location.pathname`), "/restores/")
		if !strings.HasPrefix(name, "restore-") {
			t.Fatalf("after confirm the page is %q, want /restores/restore-…", name)
		}
		// Progress until the page says the run is done (app.js polls /api/runs).
		final := `//*[@data-testid="status" and (contains(., "SUCCEEDED") or contains(., "FAILED") or contains(., "TIMED_OUT") or contains(., "ABORTED"))]`
		b.doWithin(t, restoreTimeout, "wait for the restore's final status", chromedp.WaitVisible(final))
		status := b.eval(t, `document.querySelector('[data-testid="status"]').textContent.trim()`)
		b.screenshot(t, "restore-result")
		run, ok := f.finished(name)
		if !ok {
			f.restores.Wait()
			run, ok = f.finished(name)
		}
		if !ok || run.err != nil || !run.res.Succeeded() {
			t.Fatalf("restore %s: page says %q; run %+v", name, status, run)
		}
		if !strings.Contains(status, "SUCCEEDED") {
			t.Fatalf("the page's final status is %q, want SUCCEEDED", status)
		}
		if by := run.input["requestedBy"]; by != "local user (console)" {
			t.Errorf("restore input requestedBy = %v, want \"local user (console)\"", by)
		}
		if run.res.Report == nil || run.res.Report.RequestedBy != "local user (console)" {
			t.Errorf("restore report requestedBy: %+v", run.res.Report)
		}

		// The restored bytes, read with the AWS CLI and with the SDK: the three picks as they were
		// at the first run, under restored/, and nothing else (a.txt.bak only shares a.txt's prefix).
		var listed struct{ Contents []struct{ Key string } }
		f.e.aws(&listed, "s3api", "list-objects-v2", "--bucket", f.target)
		got := map[string]string{}
		dir := t.TempDir()
		for i, o := range listed.Contents {
			out := filepath.Join(dir, fmt.Sprint(i))
			f.e.aws(nil, "s3api", "get-object", "--bucket", f.target, "--key", o.Key, out)
			body, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got[o.Key] = string(body)
		}
		sameMap(t, "restored objects (AWS CLI)", got, want)
		sameMap(t, "restored objects (SDK)", f.e.contents(f.target), want)
		if src := f.e.contents(f.e.source); src["a.txt"] != "alpha v2, longer\n" || len(src) != 8 {
			t.Fatalf("the restore touched the source: %q", src)
		}
		b.quiet(t)
	})
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}
