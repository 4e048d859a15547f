// Package console serves the restore console: web pages on which a person who is not an engineer
// finds a file as it was at a moment and gets it back. It reads the run and backup buckets through
// the operations layer (shared/runlog, shared/browse, shared/progress) and starts restores through
// the restore state machine (Options.StartRestore); it never writes to a bucket itself.
package console

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/progress"
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
	// returns at once; the run proceeds in the background. A preview is such an execution with
	// dryRun set.
	StartRestore func(ctx context.Context, name string, input []byte) error
	// Execution describes the restore execution named name, or returns ErrNoSuchExecution.
	Execution func(ctx context.Context, name string) (Execution, error)
	// AllowExact offers exact rollback (the restore planner must allow it too:
	// ALLOW_EXACT_ROLLBACK).
	AllowExact bool
	// Presign, when set, gives a short-lived URL from which the browser downloads a version
	// (bucket, key, versionID) as filename; without it the console streams the download itself.
	Presign func(ctx context.Context, bucket, key, versionID, filename string) (string, error)
	Logger  *slog.Logger
	Now     func() time.Time // nil: time.Now
	// Auth signs people in; nil: a TokenAuth (one-time links from LoginPath) signing everyone in
	// as User (empty: DefaultUser). Deployments with real sign-in give their own (oidcauth).
	Auth Auth
	User string
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/app.css static/app.js
var staticFS embed.FS

// Server is a console.
type Server struct {
	opts   Options
	pages  map[string]*template.Template
	static map[string][]byte
	auth   Auth
	mu     sync.Mutex
	watch  map[string]*progress.Watcher
}

// New checks opts and parses the pages.
func New(opts Options) (*Server, error) {
	switch {
	case opts.S3 == nil:
		return nil, &fault.InvalidInput{Msg: "console: no S3 client"}
	case opts.Source == "" || opts.Backup == "" || opts.Run == "":
		return nil, &fault.InvalidInput{Msg: "console: the source, backup and run buckets are all needed"}
	case opts.StartRestore == nil || opts.Execution == nil:
		return nil, &fault.InvalidInput{Msg: "console: StartRestore and Execution are needed"}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	auth := opts.Auth
	if auth == nil {
		auth = NewTokenAuth(opts.User, opts.Now)
	}
	s := &Server{opts: opts, auth: auth, pages: map[string]*template.Template{}, static: map[string][]byte{},
		watch: map[string]*progress.Watcher{}}
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

// LoginPath returns a fresh one-time login path of the local sign-in (TokenAuth), or the
// sign-in page of another Auth.
func (s *Server) LoginPath() string {
	if t, ok := s.auth.(*TokenAuth); ok {
		return t.LoginPath()
	}
	return s.auth.SignInPath()
}

// Handler returns the console's routes, each behind the security headers, and all but the
// Auth's own and /static/ behind the session (and every POST behind the CSRF and Origin checks;
// the restore routes behind Identity.CanRestore).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.auth.Register(mux, s.render)
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
		"GET /previews/{name}":  s.previewPage,
		"GET /restores/{name}":  s.restoreProgress,
		"GET /api/runs/{name}":  s.apiRun,
	}
	if so, ok := s.auth.(SignOuter); ok {
		authed["POST /auth/signout"] = so.SignOut
	}
	for pattern, h := range authed {
		if restoring[pattern] {
			h = s.requireRestorer(h)
		}
		mux.Handle(pattern, s.requireSession(h))
	}
	// Anything else: without a session 401 (never whether a route exists), with one 404.
	mux.Handle("/", s.requireSession(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "There is no such page.")
	}))
	return securityHeaders(mux)
}

// restoring are the routes only people who may restore reach.
var restoring = map[string]bool{"GET /restore": true, "POST /restore/preview": true, "POST /restore": true, "GET /previews/{name}": true}

// requireRestorer answers 403 to a person who may not restore.
func (s *Server) requireRestorer(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !identityFrom(r).CanRestore {
			s.fail(w, r, http.StatusForbidden, "You may browse and download, but not restore. Ask for a restore, or to be added to the group of people who may.")
			return
		}
		next(w, r)
	}
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
		id := s.auth.Identify(r)
		if id == nil {
			signIn := s.auth.SignInPath()
			if signIn != "" && r.Method == http.MethodGet {
				signIn += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			s.render(w, r, http.StatusUnauthorized, "unauthorized", map[string]any{"SignIn": signIn})
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
			if !sameToken(r.PostFormValue("csrf"), id.CSRF) {
				s.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this console. Go back, reload the page and try again.")
				return
			}
		}
		next(w, withIdentity(r, id))
	})
}

// crossOrigin refuses a state-changing request from another origin.
var crossOrigin = http.NewCrossOriginProtection()

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
