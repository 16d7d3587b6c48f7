package console_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/console"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// client is a browser-like HTTP client: it keeps cookies and does not follow redirects, so each
// step's answer can be checked.
type client struct {
	t    testing.TB
	base string
	http *http.Client
}

func newClient(t testing.TB, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) get(path string) (int, http.Header, string) {
	c.t.Helper()
	res, err := c.http.Get(c.base + path)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func (c *client) post(path string, form url.Values) (int, http.Header, string) {
	c.t.Helper()
	res, err := c.http.PostForm(c.base+path, form)
	require.NoError(c.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t testing.TB, body string) string {
	t.Helper()
	m := csrfInput.FindStringSubmatch(body)
	require.NotNil(t, m, "no CSRF field in the page")
	return m[1]
}

func (c *client) signIn(key string) (int, http.Header) {
	c.t.Helper()
	_, _, body := c.get("/console/login")
	status, h, _ := c.post("/console/login", url.Values{"csrf": {csrfOf(c.t, body)}, "apiKey": {key}})
	return status, h
}

func TestSignInGivesAStrictHttpOnlyCookieAndNeverEchoesTheKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := newClient(t, f.srv.URL)

	status, h, _ := c.get("/console/queue")
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/login", h.Get("Location"))

	status, h = c.signIn(analystKey)
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/", h.Get("Location"))
	var cookie string
	for _, sc := range h.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "doppel_console_session=") {
			cookie = sc
		}
	}
	require.NotEmpty(t, cookie)
	require.Contains(t, cookie, "HttpOnly")
	require.Contains(t, cookie, "SameSite=Strict")
	require.Contains(t, cookie, "Path=/console")
	require.Contains(t, cookie, "Max-Age=28800", "the default TTL is 8h")
	require.NotContains(t, cookie, "Secure", "plain HTTP: a Secure cookie would never come back")
	require.NotContains(t, cookie, analystKey)

	status, _, body := c.get("/console/")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "analyst")
	require.NotContains(t, body, analystKey)
}

func TestSignInIsRefusedForUnknownKeysKeysWithoutReadAndForgedForms(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := newClient(t, f.srv.URL)
	status, _ := c.signIn("not-a-key")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = c.signIn(botKey)
	require.Equal(t, http.StatusForbidden, status, "the bot key has review but not read")
	// A login form posted from elsewhere has no login token: refused.
	status, _, _ = newClient(t, f.srv.URL).post("/console/login", url.Values{"apiKey": {analystKey}})
	require.Equal(t, http.StatusForbidden, status)
}

func TestPostsNeedTheSessionsCSRFTokenAndTheReviewScope(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ringA, _ := f.seedRings()
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)

	status, _, _ := c.post("/console/rings/"+ringA+"/decision", url.Values{"decision": {"confirmed_fraud"}})
	require.Equal(t, http.StatusForbidden, status)
	status, _, _ = c.post("/console/rings/"+ringA+"/decision", url.Values{"decision": {"confirmed_fraud"}, "csrf": {"guess"}})
	require.Equal(t, http.StatusForbidden, status)
	require.Zero(t, f.reviewCount())

	_, _, page := c.get("/console/rings/" + ringA)
	status, h, _ := c.post("/console/rings/"+ringA+"/decision", url.Values{"decision": {"confirmed_fraud"},
		"note": {"one face, four names"}, "csrf": {csrfOf(t, page)}, "return": {"https://evil.example/"}, "stay": {"on"}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/rings/"+ringA, h.Get("Location"), "never redirected off the console")
	require.Equal(t, 4, f.reviewCount(), "one review per link of the ring")
	_, _, page = c.get(h.Get("Location"))
	require.Contains(t, page, "Recorded 4 reviews", "the next page says what was done")
	_, _, page = c.get(h.Get("Location") + "?done=Call+0800+to+unlock")
	require.NotContains(t, page, "Call 0800", "a link cannot make the console say something")
	require.NotContains(t, page, "Recorded 4 reviews", "the message shows once")

	viewer := newClient(t, f.srv.URL)
	viewer.signIn(viewerKey)
	_, _, page = viewer.get("/console/rings/" + ringA)
	require.NotContains(t, page, "Decide all")
	status, _, _ = viewer.post("/console/reviews", url.Values{"csrf": {csrfOf(t, page)}, "decision": {"false_positive"},
		"userId": {"cust-a1"}, "duplicateUserId": {"cust-a2"}})
	require.Equal(t, http.StatusForbidden, status, "a read-only key cannot decide")
	require.Equal(t, 4, f.reviewCount())
}

func TestSignOutEndsTheSession(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)
	_, _, page := c.get("/console/")
	cookies := c.http.Jar.Cookies(mustURL(t, f.srv.URL+"/console/"))
	status, h, _ := c.post("/console/logout", url.Values{"csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/login", h.Get("Location"))
	status, _, _ = c.get("/console/")
	require.Equal(t, http.StatusSeeOther, status)

	// The old cookie, replayed, is dead on the server too.
	replay := newClient(t, f.srv.URL)
	replay.http.Jar.SetCookies(mustURL(t, f.srv.URL+"/console/"), cookies)
	status, _, _ = replay.get("/console/")
	require.Equal(t, http.StatusSeeOther, status)
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func TestAnAlertWhoseRingMergedOpensTheRingItIsInNow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("m-x1")
	alert := f.seed("m-x2", "m-x1").Alert
	require.NotNil(t, alert)
	f.seed("m-a0", "m-x2") // m-a0 is smaller than m-x1: the merged ring takes its id
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)

	status, h, _ := c.get("/console/rings/" + alert.RingID + "?alert=" + alert.AlertID)
	require.Equal(t, http.StatusSeeOther, status)
	require.True(t, strings.HasPrefix(h.Get("Location"), "/console/rings/"+duplicate.RingID("m-a0")+"?"), h.Get("Location"))
	status, _, body := c.get(h.Get("Location"))
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `data-testid="ring-size">3<`)

	status, _, _ = c.get("/console/rings/" + alert.RingID)
	require.Equal(t, http.StatusNotFound, status, "without an alert there is no user to follow")
}

func TestClearingAWholeRingDissolvesItInTheRingIndex(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ringA, _ := f.seedRings()
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)
	_, _, page := c.get("/console/rings/" + ringA)
	status, _, _ := c.post("/console/rings/"+ringA+"/decision", url.Values{"decision": {"false_positive"},
		"note": {"four siblings"}, "csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, 4, f.reviewCount())
	var members int
	require.NoError(t, f.pool.QueryRow(t.Context(), `SELECT count(*) FROM ring_members WHERE user_id LIKE 'cust-a%'`).Scan(&members))
	require.Zero(t, members, "no pair of the ring joins it any more: every account is alone")
	status, _, _ = c.get("/console/rings/" + ringA)
	require.Equal(t, http.StatusNotFound, status)
}

// A userId stored before Doppel refused invisible characters is shown with a visible marker for
// each: a bidi override must not make "admin\u202egnp.exe" read as "adminexe.png".
func TestAStoredIDWithABidiOverrideIsShownWithAVisibleMarker(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("b-plain")
	saved := f.seed("admin\u202egnp.exe", "b-plain")
	require.NotNil(t, saved.Alert)
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)

	// Outside attribute values (links, hidden form fields, which carry the id as stored), no
	// override is left on the page.
	attributes := regexp.MustCompile(`="[^"]*"`)
	for _, page := range []string{"/console/rings/" + saved.Alert.RingID + "?alert=" + saved.Alert.AlertID, "/console/alerts",
		"/console/users?userId=b-plain"} {
		status, _, body := c.get(page)
		require.Equal(t, http.StatusOK, status, page)
		require.Contains(t, html.UnescapeString(body), "admin⟦U+202E⟧gnp.exe", page)
		require.NotContains(t, attributes.ReplaceAllString(body, ""), "\u202e", page)
	}
}

// Behind a TLS proxy (DOPPEL_PUBLIC_URL https) the console's cookies are Secure, with the __Host-
// prefix (so Path=/ and no Domain: no other host or plain-HTTP page can set or shadow them), and
// the console works with them.
func TestBehindTLSTheCookiesAreSecureWithTheHostPrefix(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *console.Config) { c.SecureCookies = true })
	cookieOf := func(h http.Header, name string) *http.Cookie {
		for _, ck := range (&http.Response{Header: h}).Cookies() {
			if ck.Name == name {
				return ck
			}
		}
		t.Fatalf("no %s cookie in %v", name, h.Values("Set-Cookie"))
		return nil
	}
	do := func(method, path string, form url.Values, cookie *http.Cookie) (*http.Response, string) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, f.srv.URL+path, body)
		require.NoError(t, err)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != nil {
			req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		}
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, page := do(http.MethodGet, "/console/login", nil, nil)
	login := cookieOf(res.Header, "__Host-doppel_console_login")
	res, _ = do(http.MethodPost, "/console/login", url.Values{"csrf": {csrfOf(t, page)}, "apiKey": {analystKey}}, login)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	session := cookieOf(res.Header, "__Host-doppel_console_session")
	for _, ck := range []*http.Cookie{login, session} {
		require.True(t, ck.Secure, ck.Name)
		require.True(t, ck.HttpOnly, ck.Name)
		require.Equal(t, "/", ck.Path, ck.Name)
		require.Empty(t, ck.Domain, ck.Name)
		require.Equal(t, http.SameSiteStrictMode, ck.SameSite, ck.Name)
	}
	res, page = do(http.MethodGet, "/console/", nil, session)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, page, "Signed in as analyst")
}
