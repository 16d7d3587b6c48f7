package console_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/postgres"
)

// roleStorage is the zitadel example provider's in-memory storage with a role claim added to
// each user's ID token, as a provider's role or group mapping would.
type roleStorage struct {
	*storage.Storage
	claim string
	roles map[string]any // by subject
}

func (s roleStorage) SetUserinfoFromRequest(ctx context.Context, userinfo *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, userinfo, token, scopes); err != nil {
		return err
	}
	if r, ok := s.roles[token.GetSubject()]; ok {
		userinfo.AppendClaims(s.claim, r)
	}
	return nil
}

const (
	ssoClientID     = "doppel-console"
	ssoClientSecret = "sso-client-secret-0123456789"
)

// provider starts a real OpenID provider (zitadel's, with the in-memory storage of its example
// server and its login page) at http://localhost:<port>: another site than the console at
// 127.0.0.1, as a real provider is. Its users: test-user@localhost (id1) and test-user2 (id2), both
// with the password "verysecure"; roles gives their role claims.
func provider(t *testing.T, redirectURL, claim string, roles map[string]any) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	issuer := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	st := storage.NewStorageWithClients(storage.NewUserStore(issuer),
		map[string]*storage.Client{ssoClientID: storage.WebClient(ssoClientID, ssoClientSecret, redirectURL)})
	srv := httptest.NewUnstartedServer(exampleop.SetupServer(issuer, roleStorage{Storage: st, claim: claim, roles: roles}, nil, false))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer
}

// setupSSO serves the console as setup does, with single sign-on at a provider the test starts.
func setupSSO(t *testing.T, claim string, roles map[string]any) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	issuer := provider(t, base+"/console/sso/callback", claim, roles)
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 4}))
	keys := []apikey.Key{{Name: "analyst", Scopes: []string{apikey.ScopeRead, apikey.ScopeReview}, SHA256: sha256.Sum256([]byte(analystKey))}}
	c, err := console.New(console.Config{Store: store, APIKeys: keys, Region: "sg",
		OIDC: &console.OIDCConfig{Issuer: issuer, ClientID: ssoClientID, ClientSecret: ssoClientSecret,
			RedirectURL: base + "/console/sso/callback", RoleClaim: claim}})
	require.NoError(t, err)
	api := httpapi.New(httpapi.Config{Store: store, APIKeys: keys})
	api.MountConsole(console.Path, c)
	srv := httptest.NewUnstartedServer(api.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{t: t, store: store, pool: pool, srv: srv}
}

// providerLogin fills the provider's own login page.
func providerLogin(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	form := chromedp.CSS(`form[action="/login/username"]`)
	step(t, ctx, chromedp.WaitVisible(form), chromedp.SendKeys(chromedp.CSS(`form[action="/login/username"] #username`), user),
		chromedp.SendKeys(chromedp.CSS(`form[action="/login/username"] #password`), "verysecure"),
		chromedp.Submit(chromedp.CSS(`form[action="/login/username"] #password`)))
}

func TestAnAnalystSignsInWithSingleSignOnAtARealProviderAndDecidesUnderTheirName(t *testing.T) {
	f := setupSSO(t, "groups", map[string]any{"id1": []string{"doppel-users", "reviewer", "lead"}})
	ringA, _ := f.seedRings()
	ctx := browser(t)
	base := f.srv.URL

	step(t, ctx, chromedp.Navigate(base+"/console/queue"), chromedp.WaitVisible(chromedp.ID("sso")))
	require.Equal(t, base+"/console/login", location(t, ctx))
	screenshot(t, ctx, "20-sign-in-sso")

	step(t, ctx, chromedp.Click(chromedp.ID("sso")))
	providerLogin(t, ctx, "test-user@localhost")
	step(t, ctx, chromedp.WaitVisible(chromedp.CSS(".stats")))
	require.Equal(t, base+"/console/", location(t, ctx), "back on the console, signed in")
	require.Equal(t, "test-user@localhost", text(t, ctx, ".who"))
	require.Equal(t, "Signed in as test-user@localhost (lead)", value(t, ctx,
		chromedp.Evaluate[string](`document.querySelector(".who").title`)), "the highest role among the claim's values")
	screenshot(t, ctx, "21-signed-in-sso")

	pair := `tr[data-pair="cust-a3|cust-a4"]`
	step(t, ctx, chromedp.Navigate(base+"/console/rings/"+ringA), chromedp.WaitVisible(chromedp.CSS(pair)),
		chromedp.SetValue(chromedp.CSS(pair+" select[name=decision]"), "confirmed_fraud"),
		chromedp.Click(chromedp.CSS(pair+" button[type=submit]")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	require.Equal(t, []string{"test-user@localhost"}, f.reviewers())

	acct, err := f.store.Analyst(t.Context(), "test-user@localhost")
	require.NoError(t, err)
	require.Equal(t, analyst.Lead, acct.Role)
	require.Equal(t, "id1", acct.OIDCSubject)
	require.False(t, acct.Local())

	// Signed out, then back as a person the provider gives no Doppel role: refused, with why.
	step(t, ctx, chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.ID("sso")),
		chromedp.Click(chromedp.ID("sso")))
	providerLogin(t, ctx, "test-user2")
	step(t, ctx, chromedp.WaitVisible(chromedp.ID("login-error")))
	require.Contains(t, text(t, ctx, "#login-error"), `no Doppel role: ask for reviewer, lead or admin in the "groups" claim`)
	require.Equal(t, base+"/console/sso/callback", value(t, ctx, chromedp.Evaluate[string](`location.origin + location.pathname`)))
	screenshot(t, ctx, "22-sso-no-role")
	_, err = f.store.Analyst(t.Context(), "test-user2")
	require.ErrorIs(t, err, analyst.ErrNotFound, "no account is made for a person refused")
}

// The flow's checks, driven by an HTTP client against the same real provider: a callback whose
// state is not this browser's is refused, and an analyst disabled in Doppel stays out although
// the provider signs them in.
func TestSingleSignOnRefusesAForeignStateAndADisabledAnalyst(t *testing.T) {
	t.Parallel()
	f := setupSSO(t, "roles", map[string]any{"id1": "reviewer"})
	c := newClient(t, f.srv.URL)
	status, _, body := c.get("/console/sso/callback?code=stolen&state=someone-elses")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "expired or was not started here")
	status, _, body = c.get("/console/sso/callback?error=access_denied&error_description=Call+0800+to+unlock&state=x")
	require.Equal(t, http.StatusBadRequest, status, "a provider's error is read only for this browser's own attempt")
	require.NotContains(t, body, "0800", "a link cannot make the console say something")
	_, h, _ := c.get("/console/sso/callback?code=stolen&state=someone-elses")
	require.Contains(t, h.Get("Content-Security-Policy"), "default-src 'self'", "the new pages carry the console's policy")

	status, h, _ = c.get("/console/sso")
	require.Equal(t, http.StatusSeeOther, status)
	require.Contains(t, h.Get("Location"), "code_challenge_method=S256")
	require.Contains(t, h.Get("Location"), "nonce=")
	require.Contains(t, h.Get("Location"), "state=")
	var cookie string
	for _, sc := range h.Values("Set-Cookie") {
		cookie += sc
	}
	require.Contains(t, cookie, "SameSite=Lax", "the way back is a navigation from the provider's site")
	require.Contains(t, cookie, "HttpOnly")

	// The provider says no (the person declined): a fixed message, never the provider's (or a
	// link's) words.
	loc, err := url.Parse(h.Get("Location"))
	require.NoError(t, err)
	status, _, body = c.get("/console/sso/callback?error=access_denied&error_description=Call+0800+to+unlock&state=" +
		url.QueryEscape(loc.Query().Get("state")))
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, "denied access to Doppel")
	require.NotContains(t, body, "0800")
	status, _, _ = c.get("/console/sso/callback?code=x&state=" + url.QueryEscape(loc.Query().Get("state")))
	require.Equal(t, http.StatusBadRequest, status, "a state is good once: the cookie is gone")

	// Signed in once through the provider, then disabled in Doppel: the provider's yes is not enough.
	ctx := browser(t)
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/sso"))
	providerLogin(t, ctx, "test-user@localhost")
	step(t, ctx, chromedp.WaitVisible(chromedp.CSS(".stats")))
	_, err = f.store.DisableAnalyst(t.Context(), "test-user@localhost", "command line", time.Now())
	require.NoError(t, err)
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/"), chromedp.WaitVisible(chromedp.ID("sso")))
	step(t, ctx, chromedp.Click(chromedp.ID("sso")))
	providerLogin(t, ctx, "test-user@localhost")
	step(t, ctx, chromedp.WaitVisible(chromedp.ID("login-error")))
	require.Contains(t, text(t, ctx, "#login-error"), "disabled")

	// Another provider's (or another subject's) person of the same name cannot take the account.
	acct, err := f.store.Analyst(t.Context(), "test-user@localhost")
	require.NoError(t, err)
	_, err = f.store.UpsertSSOAnalyst(t.Context(), analyst.Account{Name: acct.Name, Role: analyst.Admin,
		OIDCIssuer: acct.OIDCIssuer, OIDCSubject: "someone-else"})
	require.ErrorIs(t, err, analyst.ErrExists)
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	_, err = f.store.UpsertSSOAnalyst(t.Context(), analyst.Account{Name: "rita", Role: analyst.Admin,
		OIDCIssuer: acct.OIDCIssuer, OIDCSubject: "id9"})
	require.ErrorIs(t, err, analyst.ErrExists, "nor a local account's")
}

func TestTheRoleClaimIsReadAsAStringAListOrAnObject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		claim any
		role  analyst.Role
		ok    bool
	}{
		{"reviewer", analyst.Reviewer, true},
		{"Lead", analyst.Lead, true},
		{"reviewer admin", analyst.Admin, true},
		{[]any{"doppel", "lead", "reviewer"}, analyst.Lead, true},
		{map[string]any{"admin": map[string]any{"org": "x"}}, analyst.Admin, true},
		{"superuser", "", false},
		{[]any{}, "", false},
		{nil, "", false},
		{42.0, "", false},
	} {
		role, ok := console.RoleFromClaim(tc.claim)
		require.Equal(t, tc.ok, ok, "%v", tc.claim)
		require.Equal(t, tc.role, role, "%v", tc.claim)
	}
}
