package oidcauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/bucketvault/bucketvault/statemachine/console"
)

// cognitoUser is a user whose ID token carries Cognito's claims.
type cognitoUser struct {
	sub, email, username string
	groups               []string
}

func (u cognitoUser) ID() string { return u.sub }
func (u cognitoUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]string{"sub": u.sub})
}
func (u cognitoUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &cognitoClaims{IDTokenClaims: base, Email: u.email, Username: u.username, Groups: u.groups, TokenUse: "id"}, nil
}

type cognitoClaims struct {
	*mockoidc.IDTokenClaims
	Email    string   `json:"email,omitempty"`
	Username string   `json:"cognito:username,omitempty"`
	Groups   []string `json:"cognito:groups,omitempty"`
	TokenUse string   `json:"token_use"`
}

// env is a provider, and a site with the sign-in routes and one page that shows who is signed in.
type env struct {
	t    *testing.T
	idp  *mockoidc.MockOIDC
	auth *Auth
	site *httptest.Server
	now  time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	e := &env{t: t, idp: idp, now: time.Now()}
	mux := http.NewServeMux()
	e.site = httptest.NewServer(mux)
	t.Cleanup(e.site.Close)
	e.auth, err = New(context.Background(), Config{Issuer: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
		BaseURL: e.site.URL, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	render := func(w http.ResponseWriter, r *http.Request, status int, page string, data map[string]any) {
		w.WriteHeader(status)
		fmt.Fprintf(w, "page=%s %v", page, data)
	}
	e.auth.Register(mux, render)
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		id := e.auth.Identify(r)
		if id == nil {
			http.Error(w, "nobody", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "%s restore=%v csrf=%s", id.User, id.CanRestore, id.CSRF)
	})
	return e
}

func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func (e *env) get(c *http.Client, u string) (int, string) {
	e.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSignIn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		user    cognitoUser
		want    string
		restore bool
	}{
		{"member of the restore group", cognitoUser{"s1", "ana@example.com", "ana", []string{"readers", DefaultRestoreGroup}}, "ana@example.com", true},
		{"not a member", cognitoUser{"s2", "bo@example.com", "bo", []string{"readers"}}, "bo@example.com", false},
		{"no groups, no e-mail", cognitoUser{"s3", "", "cy", nil}, "cy", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.client()
			e.idp.QueueUser(tc.user)
			code, body := e.get(c, e.site.URL+SignInPath+"?next="+url.QueryEscape("/history?key=a.b/c.txt"))
			if code != http.StatusOK || !strings.Contains(body, "page=signedin") || !strings.Contains(body, "Next:/history?key=a.b/c.txt") {
				t.Fatalf("sign-in: %d %s", code, body)
			}
			code, body = e.get(c, e.site.URL+"/whoami")
			if code != http.StatusOK || !strings.HasPrefix(body, fmt.Sprintf("%s restore=%v csrf=", tc.want, tc.restore)) {
				t.Fatalf("whoami: %d %s", code, body)
			}
			site, _ := url.Parse(e.site.URL)
			var session *http.Cookie
			for _, ck := range c.Jar.Cookies(site) {
				if ck.Name == "bv_signin" {
					t.Errorf("the sign-in cookie outlived the sign-in")
				}
				if ck.Name == "bv_session" {
					session = ck
				}
			}
			if session == nil {
				t.Fatal("no session cookie")
			}
			// The session is the ID token: another token of the same provider but with one
			// character changed is refused, as is the token after it expires.
			forged := e.client()
			forged.Jar.SetCookies(site, []*http.Cookie{{Name: "bv_session", Value: session.Value[:len(session.Value)-2] + "AA"}})
			if code, _ := e.get(forged, e.site.URL+"/whoami"); code != http.StatusUnauthorized {
				t.Errorf("a tampered token: %d", code)
			}
			e.now = e.now.Add(24 * time.Hour)
			if code, _ := e.get(c, e.site.URL+"/whoami"); code != http.StatusUnauthorized {
				t.Errorf("an expired token: %d", code)
			}
		})
	}
}

// TestCallbackRefusals: a callback that this browser did not start, or whose code the provider
// refuses, signs nobody in.
func TestCallbackRefusals(t *testing.T) {
	e := newEnv(t)
	noRedirect := e.client()
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// Start a sign-in to get a real state and code, then replay them in other ways.
	resp, err := noRedirect.Get(e.site.URL + SignInPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = noRedirect.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	state, code := back.Query().Get("state"), back.Query().Get("code")
	if state == "" || code == "" {
		t.Fatalf("the provider did not send back a code: %s", back)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		query  string
		want   int
	}{
		{"another browser (no sign-in cookie)", e.client(), "state=" + state + "&code=" + code, http.StatusBadRequest},
		{"a forged state", noRedirect, "state=" + strings.Repeat("0", 64) + "&code=" + code, http.StatusBadRequest},
		{"the provider's error", noRedirect, "state=" + state + "&error=access_denied", http.StatusUnauthorized},
		{"a made-up code", noRedirect, "state=" + state + "&code=made-up", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, body := e.get(tc.client, e.site.URL+CallbackPath+"?"+tc.query)
			if got != tc.want || !strings.Contains(body, "page=error") {
				t.Errorf("%d %s, want %d", got, body, tc.want)
			}
			if code, _ := e.get(tc.client, e.site.URL+"/whoami"); code != http.StatusUnauthorized {
				t.Errorf("signed in after a refused callback: %d", code)
			}
		})
	}
}

func TestCookies(t *testing.T) {
	e := newEnv(t)
	rec := httptest.NewRecorder()
	e.auth.signIn(rec, httptest.NewRequest("GET", SignInPath, nil))
	c := rec.Result().Cookies()
	if len(c) != 1 || c[0].Name != "bv_signin" || !c[0].HttpOnly || c[0].SameSite != http.SameSiteLaxMode || c[0].Path != "/" {
		t.Errorf("sign-in cookie %+v: want HttpOnly, SameSite=Lax (the provider's redirect back is cross-site)", c)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	q := loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("redirect_uri") != e.site.URL+CallbackPath {
		t.Errorf("authorize URL %s: want PKCE S256, a nonce and the callback", loc)
	}
	rec = httptest.NewRecorder()
	e.auth.SignOut(rec, httptest.NewRequest("POST", "/auth/signout", nil))
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].Name != "bv_session" || c[0].MaxAge >= 0 {
		t.Errorf("sign-out cookies %+v: want the session dropped", c)
	}
	// https: __Host- cookies, Secure.
	a, err := New(context.Background(), Config{Issuer: e.idp.Issuer(), ClientID: e.idp.ClientID, BaseURL: "https://console.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	a.signIn(rec, httptest.NewRequest("GET", SignInPath, nil))
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].Name != "__Host-bv_signin" || !c[0].Secure {
		t.Errorf("https sign-in cookie %+v", c)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cfg := range []Config{
		{ClientID: "c", BaseURL: "https://x"},
		{Issuer: "https://i", BaseURL: "https://x"},
		{Issuer: "https://i", ClientID: "c", BaseURL: "ftp://x"},
		{Issuer: "https://i", ClientID: "c", BaseURL: "https://x/console"},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%+v: accepted", cfg)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/browse?prefix=a/": "/browse?prefix=a/",
		"":                  "/runs",
		"//evil.example":    "/runs",
		"/\\evil.example":   "/runs",
		"https://evil":      "/runs",
		"/a\r\nSet-Cookie:": "/runs",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

var _ console.Auth = (*Auth)(nil)
