package console

import (
	"context"
	"crypto/subtle"
	"net/http"
	"sync"
	"time"
)

// Identity is the signed-in person a request comes from.
type Identity struct {
	User       string // shown on every page, and recorded as a restore's requestedBy
	CSRF       string // the token every state-changing request of this session must carry
	CanRestore bool   // may preview and start restores; otherwise browse and download only
}

// Auth signs people in. The console asks it who each request is from; every route but its own
// and /static/ needs an Identity.
type Auth interface {
	// Identify returns the request's signed-in person, or nil.
	Identify(r *http.Request) *Identity
	// Register adds the routes that sign in and out; they are served without a session.
	Register(mux *http.ServeMux, render Renderer)
	// SignInPath is where a person without a session goes to sign in ("" when there is no such
	// page: locally, only the link the command printed signs in).
	SignInPath() string
}

// SignOuter is an Auth with a sign-out: the console serves it as POST /auth/signout, behind the
// session and its CSRF checks, and shows a "Sign out" button.
type SignOuter interface {
	SignOut(w http.ResponseWriter, r *http.Request)
}

// Renderer shows one of the console's pages; Auth implementations use it for their pages
// ("unauthorized", "signedin").
type Renderer func(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any)

// TokenAuth is the local console's sign-in: a one-time token in a link printed by the command,
// exchanged for a session cookie (HttpOnly, SameSite=Strict) kept in this process's memory.
type TokenAuth struct {
	user string
	now  func() time.Time
	mu   sync.Mutex
	tok  map[string]bool     // unused one-time login tokens
	sess map[string]*session // session ID → session
}

// session is one signed-in browser of a TokenAuth.
type session struct {
	id      Identity
	expires time.Time
}

// NewTokenAuth signs everyone in as user (DefaultUser when empty), who may restore.
func NewTokenAuth(user string, now func() time.Time) *TokenAuth {
	if user == "" {
		user = DefaultUser
	}
	if now == nil {
		now = time.Now
	}
	return &TokenAuth{user: user, now: now, tok: map[string]bool{}, sess: map[string]*session{}}
}

// LoginPath returns a fresh one-time login path "/login?token=<random>"; GET it once to get the
// session cookie. A used or unknown token is refused (401).
func (a *TokenAuth) LoginPath() string {
	tok := randomHex(32)
	a.mu.Lock()
	a.tok[tok] = true
	a.mu.Unlock()
	return "/login?token=" + tok
}

// SignInPath is "": only a printed link signs in.
func (a *TokenAuth) SignInPath() string { return "" }

// Register serves GET /login.
func (a *TokenAuth) Register(mux *http.ServeMux, render Renderer) {
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("token")
		a.mu.Lock()
		ok := tok != "" && a.tok[tok]
		delete(a.tok, tok)
		a.mu.Unlock()
		if !ok {
			render(w, r, http.StatusUnauthorized, "unauthorized", map[string]any{"Used": tok != ""})
			return
		}
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: a.newSession(), Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(DefaultSessionTTL / time.Second)})
		http.Redirect(w, r, "/runs", http.StatusSeeOther)
	})
}

// newSession stores a session and returns its ID.
func (a *TokenAuth) newSession() string {
	id := randomHex(32)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for k, v := range a.sess { // drop expired sessions
		if now.After(v.expires) {
			delete(a.sess, k)
		}
	}
	a.sess[id] = &session{id: Identity{User: a.user, CSRF: randomHex(32), CanRestore: true}, expires: now.Add(DefaultSessionTTL)}
	return id
}

// Identify is the session of the request's cookie.
func (a *TokenAuth) Identify(r *http.Request) *Identity {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	sess := a.sess[c.Value]
	if sess == nil || a.now().After(sess.expires) {
		return nil
	}
	id := sess.id
	return &id
}

type ctxKey struct{}

// identityFrom is the Identity requireSession put in the request's context, nil on the
// routes that need none.
func identityFrom(r *http.Request) *Identity {
	id, _ := r.Context().Value(ctxKey{}).(*Identity)
	return id
}

// withIdentity is r carrying id.
func withIdentity(r *http.Request, id *Identity) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
}

// sameToken reports whether a posted CSRF token is the session's.
func sameToken(posted, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(posted), []byte(want)) == 1
}
