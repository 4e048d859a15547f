// Package oidcauth signs people in to the restore console through an OpenID Connect provider:
// on AWS, the stack's Amazon Cognito user pool and its hosted sign-in page. It uses the
// authorization code flow with PKCE, keeps the verified ID token as the session (an HttpOnly,
// SameSite=Strict cookie; no server-side state, so any number of Lambda instances serve one
// browser), and lets only members of one group restore.
package oidcauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/statemachine/console"
)

// Defaults of a Config.
const (
	DefaultGroupsClaim  = "cognito:groups" // the ID token claim listing the user's groups (Cognito's)
	DefaultRestoreGroup = "bucketvault-restore"
	SignInTTL           = 10 * time.Minute // a sign-in must come back from the provider within this
	CallbackPath        = "/auth/callback"
	SignInPath          = "/auth/signin"
)

// Config configures the sign-in.
type Config struct {
	// Issuer is the provider's issuer URL; on Cognito
	// https://cognito-idp.<region>.amazonaws.com/<user pool id>.
	Issuer string
	// ClientID is the app client; ClientSecret is empty for a public client (Cognito's
	// console client has none: PKCE protects the code).
	ClientID, ClientSecret string
	// BaseURL is the console's own URL (scheme and host, no path), to which the provider sends the
	// browser back at BaseURL + CallbackPath. Cookies are Secure when it is https.
	BaseURL string
	// RestoreGroup names the group whose members may restore (DefaultRestoreGroup when empty);
	// every other signed-in person may browse and download. GroupsClaim is the claim naming
	// the groups (DefaultGroupsClaim when empty).
	RestoreGroup, GroupsClaim string
	// LogoutURL, when set, is where signing out sends the browser to end the provider's own
	// session too (Cognito: https://<domain>/logout?client_id=…&logout_uri=<BaseURL>/).
	LogoutURL string
	// HTTPClient talks to the provider (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock ID tokens' expiry is checked against (nil: time.Now).
	Now func() time.Time
}

// Auth is a console.Auth through an OpenID Connect provider.
type Auth struct {
	cfg      Config
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	secure   bool
	session  string // cookie names
	signin   string
}

var _ console.Auth = (*Auth)(nil)
var _ console.SignOuter = (*Auth)(nil)

// New reads the provider's discovery document.
func New(ctx context.Context, cfg Config) (*Auth, error) {
	base, err := url.Parse(cfg.BaseURL)
	switch {
	case cfg.Issuer == "" || cfg.ClientID == "":
		return nil, &fault.InvalidInput{Msg: "console sign-in: the issuer and the client ID are needed"}
	case err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || strings.Trim(base.Path, "/") != "":
		return nil, &fault.InvalidInput{Msg: fmt.Sprintf("console sign-in: the console's URL %q is not an http(s) URL without a path", cfg.BaseURL)}
	}
	if cfg.RestoreGroup == "" {
		cfg.RestoreGroup = DefaultRestoreGroup
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("console sign-in: provider %s: %w", cfg.Issuer, err)
	}
	base.Path = ""
	a := &Auth{cfg: cfg, secure: base.Scheme == "https",
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: p.Endpoint(),
			RedirectURL: base.String() + CallbackPath, Scopes: []string{oidc.ScopeOpenID, "email", "profile"}},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Now})}
	// A __Host- cookie is only for https, bound to this host and path /.
	a.session, a.signin = "bv_session", "bv_signin"
	if a.secure {
		a.session, a.signin = "__Host-bv_session", "__Host-bv_signin"
	}
	return a, nil
}

// SignInPath starts a sign-in.
func (a *Auth) SignInPath() string { return SignInPath }

// Register serves the sign-in and the provider's callback.
func (a *Auth) Register(mux *http.ServeMux, render console.Renderer) {
	mux.HandleFunc("GET "+SignInPath, a.signIn)
	mux.HandleFunc("GET "+CallbackPath, func(w http.ResponseWriter, r *http.Request) { a.callback(w, r, render) })
}

func (a *Auth) cookie(name, value string, maxAge time.Duration, sameSite http.SameSite) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: a.secure, SameSite: sameSite, MaxAge: int(maxAge / time.Second)}
	if maxAge < 0 {
		c.MaxAge = -1
	}
	return c
}

// signIn sends the browser to the provider with a fresh state, nonce and PKCE verifier, kept in a
// short-lived cookie. It is SameSite=Lax: the provider's redirect back is a cross-site navigation.
func (a *Auth) signIn(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := randomHex(32), randomHex(32), oauth2.GenerateVerifier()
	next := localPath(r.URL.Query().Get("next"))
	http.SetCookie(w, a.cookie(a.signin, strings.Join([]string{state, nonce, verifier, url.QueryEscape(next)}, "."), SignInTTL, http.SameSiteLaxMode))
	http.Redirect(w, r, a.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
}

// callback checks the state against the cookie, exchanges the code, verifies the ID token and
// keeps it as the session.
func (a *Auth) callback(w http.ResponseWriter, r *http.Request, render console.Renderer) {
	refuse := func(status int, why string, err error) {
		if err != nil {
			why += ": " + err.Error()
		}
		render(w, r, status, "error", map[string]any{"Status": status, "Title": http.StatusText(status),
			"Message": "Signing in did not work (" + why + "). Start again from the console's address."})
	}
	c, err := r.Cookie(a.signin)
	if err != nil {
		refuse(http.StatusBadRequest, "the sign-in took too long or did not start here", nil)
		return
	}
	parts := strings.SplitN(c.Value, ".", 4) // hex, hex, base64url: only the path may hold a "."
	q := r.URL.Query()
	if len(parts) != 4 || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(parts[0])) != 1 {
		refuse(http.StatusBadRequest, "the sign-in did not start in this browser", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		refuse(http.StatusUnauthorized, "the sign-in service said "+e, nil)
		return
	}
	tok, err := a.oauth.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		refuse(http.StatusUnauthorized, "the sign-in service refused the code", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := a.verifier.Verify(r.Context(), raw)
	if err != nil {
		refuse(http.StatusUnauthorized, "the sign-in service's ID token is not valid", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(parts[1])) != 1 {
		refuse(http.StatusUnauthorized, "the ID token is not for this sign-in", nil)
		return
	}
	id, err := a.identity(idt, raw)
	if err != nil {
		refuse(http.StatusUnauthorized, "the ID token does not name you", err)
		return
	}
	next, _ := url.QueryUnescape(parts[3])
	http.SetCookie(w, a.cookie(a.signin, "", -1, http.SameSiteLaxMode))
	now := time.Now
	if a.cfg.Now != nil {
		now = a.cfg.Now
	}
	http.SetCookie(w, a.cookie(a.session, raw, idt.Expiry.Sub(now()), http.SameSiteStrictMode))
	// A page, not a redirect: a SameSite=Strict cookie is not sent on a redirect chain that a
	// cross-site page (the provider's) started; a same-site navigation from this page carries it.
	render(w, r, http.StatusOK, "signedin", map[string]any{"Next": localPath(next), "Name": id.User})
}

// Identify verifies the session cookie's ID token (signature, issuer, audience, expiry).
func (a *Auth) Identify(r *http.Request) *console.Identity {
	c, err := r.Cookie(a.session)
	if err != nil || c.Value == "" {
		return nil
	}
	idt, err := a.verifier.Verify(r.Context(), c.Value)
	if err != nil {
		return nil
	}
	id, err := a.identity(idt, c.Value)
	if err != nil {
		return nil
	}
	return id
}

// claims are the ID token's claims the console reads.
type claims struct {
	Email    string `json:"email"`
	Username string `json:"cognito:username"`
	Name     string `json:"preferred_username"`
	TokenUse string `json:"token_use"`
}

func (a *Auth) identity(idt *oidc.IDToken, raw string) (*console.Identity, error) {
	var c claims
	var all map[string]any
	if err := idt.Claims(&c); err != nil {
		return nil, err
	}
	if err := idt.Claims(&all); err != nil {
		return nil, err
	}
	if c.TokenUse != "" && c.TokenUse != "id" { // Cognito marks its tokens; only an ID token signs in
		return nil, errors.New("not an ID token")
	}
	user := firstOf(c.Email, c.Username, c.Name, idt.Subject)
	if user == "" {
		return nil, errors.New("no subject")
	}
	canRestore := false
	if groups, ok := all[a.cfg.GroupsClaim].([]any); ok {
		for _, g := range groups {
			if g == a.cfg.RestoreGroup {
				canRestore = true
			}
		}
	}
	// The CSRF token is derived from the session's token, which only this browser holds (the
	// cookie is HttpOnly), so no server-side state is needed to check it.
	sum := sha256.Sum256([]byte("bucketvault console csrf\x00" + raw))
	return &console.Identity{User: user, CSRF: hex.EncodeToString(sum[:]), CanRestore: canRestore}, nil
}

// SignOut drops the session and, where configured, ends the provider's session too.
func (a *Auth) SignOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, a.cookie(a.session, "", -1, http.SameSiteStrictMode))
	to := "/"
	if a.cfg.LogoutURL != "" {
		to = a.cfg.LogoutURL
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// localPath is p when it is a path on this site ("/…", not "//…" or "/\…"), else "/runs".
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return "/runs"
	}
	return p
}

func firstOf(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
