package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/harness/fakeclock"
)

// addAnalyst adds a local account as `doppel analyst add` does.
func (f *fixture) addAnalyst(name string, role analyst.Role, password string) {
	f.t.Helper()
	hash, err := analyst.HashPassword(password)
	require.NoError(f.t, err)
	require.NoError(f.t, f.store.AddAnalyst(context.Background(), analyst.Account{Name: name, Role: role, PasswordHash: hash}))
}

// reviewers lists who recorded each review, oldest first.
func (f *fixture) reviewers() []string {
	f.t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT reviewed_by FROM link_reviews ORDER BY review_id`)
	require.NoError(f.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(f.t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

func (c *client) signInWithPassword(name, password string) (int, http.Header, string) {
	c.t.Helper()
	_, _, body := c.get("/console/login")
	return c.post("/console/login", url.Values{"csrf": {csrfOf(c.t, body)}, "name": {name}, "password": {password}})
}

const ritaPassword = "violet tractor umbrella"

func TestAnAnalystSignsInWithAPasswordAndDecidesUnderTheirOwnName(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ringA, _ := f.seedRings()
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	c := newClient(t, f.srv.URL)

	status, h, _ := c.signInWithPassword("Rita", ritaPassword) // names are not case-sensitive
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/", h.Get("Location"))
	require.Contains(t, strings.Join(h.Values("Set-Cookie"), "\n"), "SameSite=Strict")
	status, _, page := c.get("/console/rings/" + ringA)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, page, `title="Signed in as rita (reviewer)"`)
	require.Contains(t, page, "Decide the ring", "a reviewer decides")
	status, _, _ = c.post("/console/rings/"+ringA+"/decision", url.Values{"decision": {"confirmed_fraud"},
		"note": {"one face"}, "csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, []string{"rita", "rita", "rita", "rita"}, f.reviewers(), "the audit names the person, not a key")
	_, _, page = c.get("/console/audit?reviewer=rita")
	require.Contains(t, page, "rita")

	acct, err := f.store.Analyst(t.Context(), "rita")
	require.NoError(t, err)
	require.NotNil(t, acct.LastSignInAt)
}

// A wrong password, an unknown name and a single-sign-on account's name typed with a password get
// one answer: the page does not tell which names exist.
func TestTheSignInPageDoesNotTellWhichNamesExist(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	_, err := f.store.UpsertSSOAnalyst(t.Context(), analyst.Account{Name: "sam", Role: analyst.Lead, OIDCIssuer: "https://idp", OIDCSubject: "s1"})
	require.NoError(t, err)
	answer := regexp.MustCompile(`<p class="error"[^>]*>([^<]*)</p>`)
	var answers []string
	for _, name := range []string{"rita", "nobody", "sam"} {
		status, _, body := newClient(t, f.srv.URL).signInWithPassword(name, "not the password at all")
		require.Equal(t, http.StatusUnauthorized, status, name)
		m := answer.FindStringSubmatch(body)
		require.NotNil(t, m, name)
		answers = append(answers, m[1])
	}
	require.Equal(t, []string{answers[0], answers[0], answers[0]}, answers)
	require.Contains(t, answers[0], "do not match")
}

func TestFailedPasswordSignInsAreThrottledPerNameWith429(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(time.Now()) // Retry-After counts from the window's start
	f := setup(t, func(c *console.Config) {
		c.SignInLimits = analyst.Limits{PerName: 3, PerAddress: 10, Window: 15 * time.Minute}
		c.Now = clk.Now
	})
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	c := newClient(t, f.srv.URL)
	for range 3 {
		status, _, _ := c.signInWithPassword("rita", "wrong password here")
		require.Equal(t, http.StatusUnauthorized, status)
	}
	status, h, body := c.signInWithPassword("rita", ritaPassword)
	require.Equal(t, http.StatusTooManyRequests, status, "even the right password waits")
	require.Equal(t, "900", h.Get("Retry-After"))
	require.Contains(t, body, "Too many failed sign-ins for this name or from this address. Try again in 15 min.")
	require.Contains(t, body, `value="rita"`, "the name stays typed in")

	// Another name from this address is not held (3 of its 10).
	f.addAnalyst("omar", analyst.Lead, "orange piano seventeen")
	status, _, _ = newClient(t, f.srv.URL).signInWithPassword("omar", "orange piano seventeen")
	require.Equal(t, http.StatusSeeOther, status)

	// An unknown name is throttled the same way: the 429 does not tell it exists either.
	for range 3 {
		status, _, _ = c.signInWithPassword("nobody", "wrong password here")
		require.Equal(t, http.StatusUnauthorized, status)
	}
	status, _, _ = c.signInWithPassword("nobody", "wrong password here")
	require.Equal(t, http.StatusTooManyRequests, status)

	// The address has failed 6 times (a success is given back, a refused 429 is not counted); 4
	// more and it is held for every name.
	for _, name := range []string{"guess-1", "guess-2", "guess-3", "guess-4"} {
		status, _, _ = c.signInWithPassword(name, "wrong password here")
		require.Equal(t, http.StatusUnauthorized, status)
	}
	status, _, _ = c.signInWithPassword("omar", "orange piano seventeen")
	require.Equal(t, http.StatusTooManyRequests, status, "the address used its 10 up")
}

func TestDisablingAnAnalystEndsTheirSessionsAtOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	f.addAnalyst("omar", analyst.Lead, "orange piano seventeen")
	laptop, phone, other := newClient(t, f.srv.URL), newClient(t, f.srv.URL), newClient(t, f.srv.URL)
	for _, c := range []*client{laptop, phone} {
		status, _, _ := c.signInWithPassword("rita", ritaPassword)
		require.Equal(t, http.StatusSeeOther, status)
	}
	other.signInWithPassword("omar", "orange piano seventeen")

	ended, err := f.store.DisableAnalyst(t.Context(), "rita", "command line", time.Now())
	require.NoError(t, err)
	require.EqualValues(t, 2, ended)
	for _, c := range []*client{laptop, phone} {
		status, h, _ := c.get("/console/queue")
		require.Equal(t, http.StatusSeeOther, status)
		require.Equal(t, "/console/login", h.Get("Location"))
	}
	status, _, _ := other.get("/console/queue")
	require.Equal(t, http.StatusOK, status, "another analyst's session goes on")

	status, _, body := laptop.signInWithPassword("rita", ritaPassword)
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, body, "disabled")
	status, _, _ = laptop.signInWithPassword("rita", "wrong password here")
	require.Equal(t, http.StatusUnauthorized, status, "disabled is said only to whoever knows the password")
}

// The scopes of an analyst's session are their role's, read at each request: a role changed in
// the database applies to the sessions already open.
func TestASessionsScopesAreItsAnalystsRoleNow(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ringA, _ := f.seedRings()
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	c := newClient(t, f.srv.URL)
	c.signInWithPassword("rita", ritaPassword)
	_, err := f.pool.Exec(t.Context(), `UPDATE analysts SET role = 'nobody' WHERE name = 'rita'`)
	require.Error(t, err, "the table holds known roles only")
	_, err = f.pool.Exec(t.Context(), `UPDATE analysts SET role = 'lead' WHERE name = 'rita'`)
	require.NoError(t, err)
	_, _, page := c.get("/console/rings/" + ringA)
	require.Contains(t, page, `title="Signed in as rita (lead)"`)
	status, _, _ := c.post("/console/reviews", url.Values{"csrf": {csrfOf(t, page)}, "decision": {"false_positive"},
		"userId": {"cust-a1"}, "duplicateUserId": {"cust-a2"}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, []string{"rita"}, f.reviewers())
}

func TestAnAnalystSignsInWithAPasswordInARealBrowser(t *testing.T) {
	f := setup(t)
	ringA, _ := f.seedRings()
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	ctx := browser(t)
	base := f.srv.URL
	name, password := chromedp.ID("name"), chromedp.ID("password")

	step(t, ctx, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(name))
	require.Equal(t, base+"/console/login", location(t, ctx))
	require.Zero(t, count(t, ctx, "#sso"), "no single sign-on configured, no button")
	screenshot(t, ctx, "23-sign-in-password")
	step(t, ctx, chromedp.EmulateViewport(390, 844), chromedp.Reload(), chromedp.WaitVisible(name))
	require.Empty(t, value(t, ctx, chromedp.Evaluate[[]string](overflowing)), "the sign-in page scrolls sideways on a phone")
	require.True(t, value(t, ctx, chromedp.Evaluate[bool](
		`document.querySelector("#password-form button").getBoundingClientRect().bottom <= window.innerHeight`)), "its button is on screen")
	screenshot(t, ctx, "23b-sign-in-narrow")
	step(t, ctx, chromedp.EmulateViewport(1280, 800))

	step(t, ctx, chromedp.SendKeys(name, "rita"), chromedp.SendKeys(password, "not her password"), chromedp.Submit(password),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	require.Contains(t, text(t, ctx, "#login-error"), "do not match")
	require.Equal(t, "rita", value(t, ctx, chromedp.Evaluate[string](`document.getElementById("name").value`)), "the name stays typed")
	screenshot(t, ctx, "24-sign-in-password-refused")

	step(t, ctx, chromedp.SendKeys(password, ritaPassword), chromedp.Submit(password), chromedp.WaitVisible(chromedp.CSS(".stats")))
	require.Equal(t, "rita", text(t, ctx, ".who"))
	stored := value(t, ctx, chromedp.Evaluate[string](`JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie`))
	require.NotContains(t, stored, ritaPassword)

	pair := `tr[data-pair="cust-a1|cust-a2"]`
	step(t, ctx, chromedp.Navigate(base+"/console/rings/"+ringA), chromedp.WaitVisible(chromedp.CSS(pair)),
		chromedp.SetValue(chromedp.CSS(pair+" select[name=decision]"), "false_positive"),
		chromedp.SendKeys(chromedp.CSS(pair+" input[name=note]"), "twins"),
		chromedp.Click(chromedp.CSS(pair+" button[type=submit]")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	step(t, ctx, chromedp.Navigate(base+"/console/audit"), chromedp.WaitVisible(chromedp.CSS("table.audit")))
	require.Equal(t, 1, count(t, ctx, "tr[data-review]"))
	require.Contains(t, text(t, ctx, "tr[data-review]"), "rita", "the audit names who decided")
	require.Equal(t, []string{"rita"}, f.reviewers())
	screenshot(t, ctx, "25-audit-by-name")
}

// Only an admin manages analysts: the page and its form refuse a lead, a reviewer and an API key,
// and a disable from the console records the admin and ends the analyst's sessions.
func TestAnAdminDisablesAnAnalystFromTheConsole(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.addAnalyst("ada", analyst.Admin, "admin passphrase 42")
	f.addAnalyst("leo", analyst.Lead, "orange piano seventeen")
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	rita, leo, ada, key := newClient(t, f.srv.URL), newClient(t, f.srv.URL), newClient(t, f.srv.URL), newClient(t, f.srv.URL)
	rita.signInWithPassword("rita", ritaPassword)
	leo.signInWithPassword("leo", "orange piano seventeen")
	ada.signInWithPassword("ada", "admin passphrase 42")
	key.signIn(analystKey)

	for who, c := range map[string]*client{"reviewer": rita, "lead": leo, "API key": key} {
		status, _, page := c.get("/console/analysts")
		require.Equal(t, http.StatusForbidden, status, who)
		require.NotContains(t, page, `href="/console/analysts"`, "no link to it for a %s", who)
		status, _, _ = c.post("/console/analysts/rita/disable", url.Values{"csrf": {csrfOf(t, page)}})
		require.Equal(t, http.StatusForbidden, status, who)
	}

	status, _, page := ada.get("/console/analysts")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, page, `href="/console/analysts"`)
	require.Contains(t, page, `data-analyst="rita"`)
	require.Contains(t, page, "active (you)", "an admin cannot disable themself from the page")
	status, _, _ = ada.post("/console/analysts/rita/disable", url.Values{})
	require.Equal(t, http.StatusForbidden, status, "the CSRF token is needed")
	status, h, _ := ada.post("/console/analysts/rita/disable", url.Values{"csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/analysts", h.Get("Location"))
	_, _, page = ada.get("/console/analysts")
	require.Contains(t, page, "Disabled rita: their sessions have ended.")
	require.Contains(t, page, "by ada")

	status, _, _ = rita.get("/console/")
	require.Equal(t, http.StatusSeeOther, status, "rita's session ended")
	acct, err := f.store.Analyst(t.Context(), "rita")
	require.NoError(t, err)
	require.True(t, acct.Disabled())
	require.Equal(t, "ada", acct.DisabledBy, "the act records the person")
	status, _, _ = ada.post("/console/analysts/ada/disable", url.Values{"csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusBadRequest, status)
}

func TestTheAnalystsPageInARealBrowser(t *testing.T) {
	f := setup(t)
	f.addAnalyst("ada", analyst.Admin, "admin passphrase 42")
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	_, err := f.store.UpsertSSOAnalyst(t.Context(), analyst.Account{Name: "sam@risk.example", Role: analyst.Lead,
		OIDCIssuer: "https://login.example.com", OIDCSubject: "s-1"})
	require.NoError(t, err)
	ctx := browser(t)
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/login"), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "ada"), chromedp.SendKeys(chromedp.ID("password"), "admin passphrase 42"),
		chromedp.Submit(chromedp.ID("password")), chromedp.WaitVisible(chromedp.CSS(".stats")),
		chromedp.Click(chromedp.CSS(`nav a[href="/console/analysts"]`)), chromedp.WaitVisible(chromedp.CSS("table.analysts")))
	require.Equal(t, 3, count(t, ctx, "tr[data-analyst]"))
	step(t, ctx, chromedp.Click(chromedp.CSS(`tr[data-analyst="rita"] button`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	require.Contains(t, text(t, ctx, `tr[data-analyst="rita"]`), "by ada")
	screenshot(t, ctx, "26-analysts")
}
