//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/bucketvault/bucketvault/statemachine/console"
	"github.com/bucketvault/bucketvault/statemachine/console/oidcauth"
)

// cognitoUser is a user whose ID token carries Cognito's claims (cognito:groups, token_use).
type cognitoUser struct {
	email  string
	groups []string
}

func (u cognitoUser) ID() string { return u.email }
func (u cognitoUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]string{"email": u.email})
}
func (u cognitoUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &struct {
		*mockoidc.IDTokenClaims
		Email    string   `json:"email"`
		Groups   []string `json:"cognito:groups,omitempty"`
		TokenUse string   `json:"token_use"`
	}{base, u.email, u.groups, "id"}, nil
}

// TestConsoleSignIn signs in to the console in a real Chromium through an OpenID Connect
// provider, as the stack's console does through Cognito's hosted sign-in: the console on
// "localhost" and the provider on "127.0.0.1" are different sites, so the provider's redirect
// back is a cross-site navigation, the case where a SameSite=Strict session cookie set on a
// redirect would not be sent. The provider is mockoidc (Cognito does not run locally); the
// console reads a real MinIO. A member of the restore group sees the restore controls, anyone
// else signed in browses without them, and the server refuses their restore.
func TestConsoleSignIn(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.putBytes(e.source, "docs/report.txt", []byte("quarterly figures\n"))
	run := e.mustBackup(`{}`).Execution.Name

	idp, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The provider's sign-in page: a person clicks to go on, as on Cognito's hosted page, so the
	// way back to the console starts on the provider's site.
	if err := idp.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/authorize") && r.URL.Query().Get("signed") == "" {
				q := r.URL.Query()
				q.Set("signed", "1")
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				fmt.Fprintf(w, `<!doctype html><title>Sign in</title><a id="idp-continue" href="%s">Sign in as the queued user</a>`, html.EscapeString(r.URL.Path+"?"+q.Encode()))
				return
			}
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		t.Fatal(err)
	}
	idpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := idp.Start(idpLn, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://localhost:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:")
	auth, err := oidcauth.New(e.ctx, oidcauth.Config{Issuer: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, BaseURL: base, RestoreGroup: "restorers"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := console.New(console.Options{S3: e.s3, Source: e.source, Backup: e.backup, Run: e.run, Auth: auth,
		StartRestore: func(context.Context, string, []byte) error { t.Error("a restore started"); return nil },
		Execution: func(context.Context, string) (console.Execution, error) {
			return console.Execution{}, console.ErrNoSuchExecution
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)

	signIn := func(t *testing.T, user cognitoUser) *browser {
		b := newBrowser(t, base)
		idp.QueueUser(user)
		// A page without a session: the sign-in link, which goes through the provider and back
		// to the page first asked for.
		b.open(t, "/browse?at="+run+"&prefix=docs/", `[data-testid="sign-in"]`)
		b.do(t, "sign in", chromedp.Click(chromedp.CSS(`[data-testid="sign-in"]`)), chromedp.WaitVisible(chromedp.CSS(`#idp-continue`)))
		b.do(t, "the provider's page", chromedp.Click(chromedp.CSS(`#idp-continue`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="entry"]`)))
		if got := b.eval(t, `location.pathname + location.search`); got != "/browse?at="+run+"&prefix=docs/" {
			t.Errorf("after signing in the browser is on %s", got)
		}
		if got := b.eval(t, `document.querySelector(".user").innerText`); !strings.Contains(got, user.email) {
			t.Errorf("signed in as %q, want %s", got, user.email)
		}
		if got := b.eval(t, `document.cookie`); got != "" {
			t.Errorf("script can read cookies %q: the session must be HttpOnly", got)
		}
		return b
	}

	t.Run("Restorer", func(t *testing.T) {
		b := signIn(t, cognitoUser{email: "rosa@example.com", groups: []string{"restorers"}})
		if n := len(b.all(t, `[data-testid="restore-selected"]`)); n != 1 {
			t.Errorf("a restorer sees %d restore buttons", n)
		}
		b.screenshot(t, "signin-restorer")
		// Signing out: the session is gone, the pages say so.
		b.do(t, "sign out", chromedp.Click(chromedp.CSS(`[data-testid="sign-out"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="sign-in"]`)))
		b.open(t, "/runs", `[data-testid="sign-in"]`)
	})

	t.Run("Reader", func(t *testing.T) {
		b := signIn(t, cognitoUser{email: "rick@example.com", groups: []string{"readers"}})
		if n := len(b.all(t, `[data-testid="restore-selected"], [data-testid="restore-all"], input[name="select"]`)); n != 0 {
			t.Errorf("a reader sees %d restore controls", n)
		}
		if n := len(b.all(t, `[data-testid="browse-only"]`)); n != 1 {
			t.Error("a reader is not told why there is no restore")
		}
		b.open(t, "/restore?at="+run+"&key=docs/report.txt", `[data-testid="error"]`)
		if got := b.eval(t, `document.body.innerText`); !strings.Contains(got, "not restore") {
			t.Errorf("a reader's restore form: %q", got)
		}
	})
}
