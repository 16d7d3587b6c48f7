package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/console"
)

// A user's page shows the person's legal hold and why. A session with the erase scope is offered
// an erasure behind a confirmation step (the userId typed again, and a reason); a held person needs
// the override, recorded with the reason; a key without erase sees the hold and no form, and its
// POST is refused.
func TestAUsersPageShowsTheHoldAndOffersErasureOnlyWithTheEraseScope(t *testing.T) {
	t.Parallel()
	woken := 0
	f := setup(t, func(c *console.Config) { c.OnErasure = func() { woken++ } })
	f.seed("eva")
	f.seed("eve", "eva") // a new pair: an open alert, so both are held
	f.seed("lone")

	viewer := newClient(t, f.srv.URL)
	viewer.signIn(viewerKey)
	_, _, page := viewer.get("/console/users?userId=eve")
	require.Contains(t, page, `data-testid="held"`)
	require.Contains(t, page, "open alert")
	require.NotContains(t, page, `data-testid="erase-form"`, "no erase scope, no form")
	status, _, _ := viewer.post("/console/users/erase", url.Values{"csrf": {csrfOf(t, page)}, "userId": {"eve"},
		"confirm": {"eve"}, "reason": {"DSR-1"}})
	require.Equal(t, http.StatusForbidden, status)

	privacy := newClient(t, f.srv.URL)
	privacy.signIn(privacyKey)
	_, _, page = privacy.get("/console/users?userId=lone")
	require.Contains(t, page, `data-testid="not-held"`)
	require.Contains(t, page, `data-testid="erase-form"`)
	erase := func(user, confirm, override string) string {
		t.Helper()
		_, _, page := privacy.get("/console/users?userId=" + user)
		form := url.Values{"csrf": {csrfOf(t, page)}, "userId": {user}, "confirm": {confirm}, "reason": {"DSR-2026-117"}}
		if override != "" {
			form.Set("override", override)
		}
		status, h, _ := privacy.post("/console/users/erase", form)
		require.Equal(t, http.StatusSeeOther, status)
		_, _, next := privacy.get(h.Get("Location"))
		return next
	}
	count := func(sql string) int {
		var n int
		require.NoError(t, f.pool.QueryRow(context.Background(), sql).Scan(&n))
		return n
	}

	require.Contains(t, erase("lone", "lon", ""), "type the userId exactly")
	require.Zero(t, count(`SELECT count(*) FROM erasures`), "no confirmation, no erasure")

	next := erase("eve", "eve", "")
	require.Contains(t, next, "legal hold")
	require.Zero(t, count(`SELECT count(*) FROM erasures`), "held: refused without the override")

	next = erase("eve", "eve", "legal_hold")
	require.True(t, strings.Contains(next, "Erasure ") && strings.Contains(next, "pending"), next)
	require.Equal(t, 1, count(`SELECT count(*) FROM erasures`))
	require.Equal(t, 1, count(`SELECT count(*) FROM erasures WHERE requested_by = 'privacy' AND legal_hold_override IS NOT NULL AND reason = 'DSR-2026-117'`),
		"the override is recorded with the reason, under the session's name")
	require.Equal(t, 1, woken, "the erasure runner is woken")
}

// The erasure form in a real browser: the hold, the confirmation step, and the refusal until the
// userId is typed again (the browser's own required fields first).
func TestTheErasureFormInABrowser(t *testing.T) {
	f := setup(t)
	f.seed("ana")
	f.seed("ann", "ana")
	ctx := browser(t)
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/login"), chromedp.WaitVisible(chromedp.ID("apiKey")),
		chromedp.SendKeys(chromedp.ID("apiKey"), privacyKey), chromedp.Submit(chromedp.ID("apiKey")),
		chromedp.WaitVisible(chromedp.CSS(".stats")))
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/users?userId=ann"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="held"]`)),
		chromedp.Click(chromedp.CSS("details.erase summary")), chromedp.WaitVisible(chromedp.ID("erase-confirm")))
	require.Contains(t, text(t, ctx, `[data-testid="held"]`), "open alert")
	step(t, ctx, chromedp.SendKeys(chromedp.ID("erase-reason"), "DSR-2026-118"), chromedp.SendKeys(chromedp.ID("erase-confirm"), "ann"),
		chromedp.Click(chromedp.CSS(`input[name=override]`)))
	screenshot(t, ctx, "40-erasure-form")
	step(t, ctx, chromedp.Click(chromedp.ID("erase")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	require.Contains(t, text(t, ctx, ".flash"), "pending")
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM erasures WHERE legal_hold_override IS NOT NULL`).Scan(&n))
	require.Equal(t, 1, n)
}
