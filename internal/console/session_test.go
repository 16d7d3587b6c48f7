package console_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/harness/fakeclock"
	"github.com/doppelhq/doppel/internal/httpapi"
)

func TestASessionEndsAfterItsTTL(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(time.Now())
	f := setup(t, func(c *console.Config) { c.SessionTTL = 30 * time.Minute; c.Now = clk.Now })
	c := newClient(t, f.srv.URL)
	_, h := c.signIn(analystKey)
	require.Contains(t, strings.Join(h.Values("Set-Cookie"), "\n"), "Max-Age=1800")

	clk.Add(29 * time.Minute)
	status, _, _ := c.get("/console/queue")
	require.Equal(t, http.StatusOK, status)
	clk.Add(time.Minute)
	status, h, _ = c.get("/console/queue")
	require.Equal(t, http.StatusSeeOther, status, "the server ends the session even if the browser kept the cookie")
	require.Equal(t, "/console/login", h.Get("Location"))
}

func TestTheSessionCookieIsSecureOverTLS(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c, err := console.New(console.Config{Store: f.store, APIKeys: []apikey.Key{{Name: "analyst",
		Scopes: []string{apikey.ScopeRead}, SHA256: sha256Of(analystKey)}}})
	require.NoError(t, err)
	api := httpapi.New(httpapi.Config{})
	api.MountConsole(console.Path, c)
	srv := httptest.NewTLSServer(api.Handler())
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	hc := srv.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tc := &client{t: t, base: srv.URL, http: hc}
	_, h := tc.signIn(analystKey)
	var session string
	for _, sc := range h.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "doppel_console_session=") {
			session = sc
		}
	}
	require.Contains(t, session, "; Secure")
	require.Contains(t, session, "HttpOnly")
	require.Contains(t, session, "SameSite=Strict")
}

func TestFailedSignInsAreThrottledLikeTheAPIsAuthentication(t *testing.T) {
	t.Parallel()
	f := setup(t) // 20 failures a minute per address
	c := newClient(t, f.srv.URL)
	for i := 0; i < 20; i++ {
		status, _ := c.signIn("guess-" + strings.Repeat("x", i))
		require.Equal(t, http.StatusUnauthorized, status)
	}
	status, h := c.signIn(analystKey)
	require.Equal(t, http.StatusTooManyRequests, status, "even the right key waits once the address has used its failures up")
	require.NotEmpty(t, h.Get("Retry-After"))
}

// serveConsole serves another console (another instance of Doppel, or this one restarted) on the
// fixture's database, with keys.
func serveConsole(t *testing.T, f *fixture, keys ...apikey.Key) string {
	t.Helper()
	c, err := console.New(console.Config{Store: f.store, APIKeys: keys})
	require.NoError(t, err)
	api := httpapi.New(httpapi.Config{})
	api.MountConsole(console.Path, c)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// Sessions are kept in the database: another instance, or this one after a restart, serves a
// session and shows its next page's message; a sign-out ends it everywhere; and a key taken out of
// the configuration ends its sessions.
func TestASessionIsGoodOnEveryInstanceAndEndsEverywhere(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ringA, _ := f.seedRings()
	analyst := apikey.Key{Name: "analyst", Scopes: []string{apikey.ScopeRead, apikey.ScopeReview}, SHA256: sha256Of(analystKey)}
	a := newClient(t, f.srv.URL)
	status, _ := a.signIn(analystKey)
	require.Equal(t, http.StatusSeeOther, status)
	// The same browser (cookie jar) on another instance.
	b := &client{t: t, base: serveConsole(t, f, analyst), http: a.http}

	_, _, page := b.get("/console/rings/" + ringA)
	status, _, _ = b.post("/console/rings/"+ringA+"/decision", url.Values{"decision": {"confirmed_fraud"},
		"note": {"one face"}, "csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, status, "the other instance knows the session and its CSRF token")
	_, _, page = a.get("/console/queue")
	require.Contains(t, page, "Recorded 4 reviews", "the message left by one instance shows on the other")

	_, _, page = b.get("/console/queue")
	status, _, _ = b.post("/console/logout", url.Values{"csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, status)
	status, h, _ := a.get("/console/queue")
	require.Equal(t, http.StatusSeeOther, status, "signed out on one instance is signed out on all")
	require.Equal(t, "/console/login", h.Get("Location"))

	a.signIn(analystKey)
	revoked := &client{t: t, base: serveConsole(t, f), http: a.http} // configured without the key
	status, _, _ = revoked.get("/console/queue")
	require.Equal(t, http.StatusSeeOther, status, "a key no longer configured has no session")
	status, _, _ = a.get("/console/queue")
	require.Equal(t, http.StatusSeeOther, status, "and the session is ended in the database, for every instance")
}
