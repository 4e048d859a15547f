// Package console serves the restore console: web pages on which a person who is not an engineer
// finds a file as it was at a moment and gets it back. It reads the run and backup buckets through
// the operations layer (shared/runlog, shared/browse, shared/progress) and starts restores through
// the restore state machine (Options.StartRestore); it never writes to a bucket itself.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/progress"
	"github.com/bucketvault/bucketvault/shared/report"
)

// ConsoleS3 is what the console needs of an S3 client.
type ConsoleS3 interface {
	s3.ListObjectsV2APIClient
	ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

var _ ConsoleS3 = (*s3.Client)(nil)

// Defaults of the console.
const (
	DefaultUser          = "local user (console)" // Options.User when empty: who a local restore is recorded as requested by
	DefaultSessionTTL    = 12 * time.Hour         // a session lasts this long after its login
	DefaultRunsLimit     = 100                    // runs shown on /runs
	DefaultSnapPoints    = 20                     // newest runs read for the moment picker's backup snap points
	DefaultFolderEntries = 1000                   // entries shown of one folder
	DefaultSearchMatches = 200                    // search stops after this many matches
	DefaultDiffChanges   = 1000                   // changes shown on /diff
	DefaultMaxSelected   = 1000                   // keys a mixed selection (files and folders) may expand to
	SessionCookie        = "bv_session"
)

// ContentSecurityPolicy is sent with every response: scripts, styles and images only from the
// console itself, no inline script or style, no framing, forms only to the console.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Options configure a console.
type Options struct {
	S3                  ConsoleS3
	Source, Backup, Run string   // buckets
	RestoreTargets      []string // buckets a restore may write besides Source
	// StartRestore starts a restore execution named name with this input (restoreinput JSON) and
	// returns at once; the run proceeds in the background.
	StartRestore func(ctx context.Context, name string, input []byte) error
	// DryRun runs a restore with dryRun=true to completion and returns its report (the preview).
	DryRun func(ctx context.Context, name string, input []byte) (*report.Report, error)
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	// User is who restores are recorded as requested by (the restore input's requestedBy);
	// empty: DefaultUser. Deployments with real sign-in set it per session (see Server.NewSession).
	User string
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/app.css static/app.js
var staticFS embed.FS

// session is one signed-in browser.
type session struct {
	csrf    string
	user    string
	expires time.Time
}

// Server is a console.
type Server struct {
	opts    Options
	pages   map[string]*template.Template
	static  map[string][]byte
	mu      sync.Mutex
	tokens  map[string]bool     // unused one-time login tokens
	session map[string]*session // session ID → session
	started map[string]bool     // restores this console started
	watch   map[string]*progress.Watcher
}

// New checks opts and parses the pages.
func New(opts Options) (*Server, error) {
	switch {
	case opts.S3 == nil:
		return nil, &fault.InvalidInput{Msg: "console: no S3 client"}
	case opts.Source == "" || opts.Backup == "" || opts.Run == "":
		return nil, &fault.InvalidInput{Msg: "console: the source, backup and run buckets are all needed"}
	case opts.StartRestore == nil || opts.DryRun == nil:
		return nil, &fault.InvalidInput{Msg: "console: StartRestore and DryRun are needed"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.User == "" {
		opts.User = DefaultUser
	}
	s := &Server{opts: opts, pages: map[string]*template.Template{}, static: map[string][]byte{},
		tokens: map[string]bool{}, session: map[string]*session{}, started: map[string]bool{}, watch: map[string]*progress.Watcher{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if name == "templates/layout.html" || strings.HasPrefix(name, "templates/_") {
			continue // the layout and the partials (_*.html) are parsed into every page
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/_*.html", name)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		s.pages[name[len("templates/"):len(name)-len(".html")]] = t
	}
	for _, name := range []string{"app.css", "app.js"} {
		b, err := staticFS.ReadFile("static/" + name)
		if err != nil {
			return nil, err
		}
		s.static[name] = b
	}
	return s, nil
}

// randomHex is n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return hex.EncodeToString(b)
}

// LoginPath returns a fresh one-time login path "/login?token=<random>"; GET it once to get the
// session cookie. A used or unknown token is refused (401).
func (s *Server) LoginPath() string {
	tok := randomHex(32)
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	return "/login?token=" + tok
}

// newSession stores a session for user and returns its ID.
func (s *Server) newSession(user string) string {
	id := randomHex(32)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for k, v := range s.session { // drop expired sessions
		if now.After(v.expires) {
			delete(s.session, k)
		}
	}
	s.session[id] = &session{csrf: randomHex(32), user: user, expires: now.Add(DefaultSessionTTL)}
	return id
}

// sessionOf is the request's session, nil without a valid one.
func (s *Server) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.session[c.Value]
	if sess == nil || s.opts.Now().After(sess.expires) {
		return nil
	}
	return sess
}

type ctxKey struct{}

func sessionFrom(r *http.Request) *session {
	sess, _ := r.Context().Value(ctxKey{}).(*session)
	return sess
}

// Handler returns the console's routes, each behind the security headers, and all but /login and
// /static/ behind the session (and every POST behind the CSRF and Origin checks).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /static/{file}", s.asset)
	authed := map[string]http.HandlerFunc{
		"GET /{$}":              func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/runs", http.StatusSeeOther) },
		"GET /runs":             s.runs,
		"GET /runs/{name}":      s.run,
		"GET /browse":           s.browse,
		"GET /history":          s.history,
		"GET /download":         s.download,
		"GET /diff":             s.diff,
		"GET /restore":          s.restoreForm,
		"POST /restore/preview": s.preview,
		"POST /restore":         s.startRestore,
		"GET /restores/{name}":  s.restoreProgress,
		"GET /api/runs/{name}":  s.apiRun,
	}
	for pattern, h := range authed {
		mux.Handle(pattern, s.requireSession(h))
	}
	// Anything else: without a session 401 (never whether a route exists), with one 404.
	mux.Handle("/", s.requireSession(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "There is no such page.")
	}))
	return securityHeaders(mux)
}

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// requireSession answers 401 without a session, and 403 to a POST without the session's CSRF
// token or from another origin.
func (s *Server) requireSession(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := s.sessionOf(r)
		if sess == nil {
			s.render(w, r, http.StatusUnauthorized, "unauthorized", nil)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Sec-Fetch-Site first, then Origin against Host (net/http's CrossOriginProtection):
			// with Referrer-Policy no-referrer a browser sends "Origin: null" on a same-site
			// form, which an Origin check alone would refuse.
			if err := crossOrigin.Check(r); err != nil {
				s.fail(w, r, http.StatusForbidden, "This request came from another site and was refused.")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.csrf)) != 1 {
				s.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this console. Go back, reload the page and try again.")
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, sess)))
	})
}

// crossOrigin refuses a state-changing request from another origin.
var crossOrigin = http.NewCrossOriginProtection()

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	s.mu.Lock()
	ok := tok != "" && s.tokens[tok]
	delete(s.tokens, tok)
	s.mu.Unlock()
	if !ok {
		s.render(w, r, http.StatusUnauthorized, "unauthorized", map[string]any{"Used": tok != ""})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: s.newSession(s.opts.User), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(DefaultSessionTTL / time.Second)})
	http.Redirect(w, r, "/runs", http.StatusSeeOther)
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, ok := s.static[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	ct := map[string]string{"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}[name]
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// allowedTargets are the buckets a restore may write: the source first.
func (s *Server) allowedTargets() []string {
	out := []string{s.opts.Source}
	for _, b := range s.opts.RestoreTargets {
		if !slices.Contains(out, b) && b != "" {
			out = append(out, b)
		}
	}
	return out
}
