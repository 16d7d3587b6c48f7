package console_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/duplicate"
)

const onScreenJS = `(() => { const r = document.getElementById(%q).getBoundingClientRect();
	return r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth; })()`

func onScreen(t *testing.T, ctx context.Context, id string) bool {
	t.Helper()
	return value(t, ctx, chromedp.Evaluate[bool](strings.ReplaceAll(onScreenJS, "%q", `"`+id+`"`)))
}

// An analyst works the case queue in a real browser: one row per ring; "Next case" claims the top
// case and opens its ring; a note; a ring decision that leaves the pair already decided as it was
// and goes on to the next case; the queue's export; the queue and the ring page at 390 px.
func TestAnAnalystWorksTheCaseQueueInARealBrowser(t *testing.T) {
	f := setup(t)
	ringA, ringB := f.seedRings()
	ctx := browser(t)
	base := f.srv.URL
	signInInBrowser(t, ctx, base)

	// One row per ring (ring A has three alerts), high severity first.
	step(t, ctx, chromedp.Navigate(base+"/console/queue"), chromedp.WaitVisible(chromedp.CSS("table.cases")))
	require.Equal(t, 2, count(t, ctx, "tr[data-case]"))
	require.Contains(t, text(t, ctx, "tr[data-case]:nth-child(1)"), ringA)
	require.Contains(t, text(t, ctx, "tr[data-case]:nth-child(1)"), "high")
	require.Contains(t, text(t, ctx, "tr[data-case]:nth-child(2)"), ringB)
	screenshot(t, ctx, "30-case-queue")

	// At 390 px the queue's main action is on screen and nothing sticks out.
	step(t, ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/console/queue"), chromedp.WaitVisible(chromedp.ID("next-case")))
	require.True(t, onScreen(t, ctx, "next-case"), "Next case is on screen at 390 px")
	require.Empty(t, value(t, ctx, chromedp.Evaluate[[]string](overflowing)), "the queue scrolls sideways on a narrow screen")
	viewportScreenshot(t, ctx, "31-case-queue-narrow")
	step(t, ctx, chromedp.EmulateViewport(1280, 800))

	// Next case: ring A's case is claimed by the analyst and its ring opens.
	step(t, ctx, chromedp.Click(chromedp.ID("next-case")), chromedp.WaitVisible(chromedp.CSS(".case-card")))
	require.Equal(t, base+"/console/rings/"+ringA, location(t, ctx))
	require.Equal(t, "analyst", text(t, ctx, `[data-testid="case-assignee"]`))
	require.Equal(t, "in_review", text(t, ctx, `[data-testid="case-status"]`))

	// A note.
	step(t, ctx, chromedp.Click(chromedp.CSS(".case-more summary")), chromedp.WaitVisible(chromedp.ID("case-note")),
		chromedp.SendKeys(chromedp.ID("case-note"), "same selfie background as ring 12"),
		chromedp.Click(chromedp.ID("add-note")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	require.Contains(t, text(t, ctx, `[data-testid="case-notes"]`), "analyst")
	require.Contains(t, text(t, ctx, `[data-testid="case-notes"]`), "same selfie background as ring 12")
	screenshot(t, ctx, "32-case-ring-with-note")

	// At 390 px the ring page's main action is on screen.
	step(t, ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/console/rings/"+ringA), chromedp.WaitVisible(chromedp.ID("decide-ring")))
	require.True(t, onScreen(t, ctx, "decide-ring"), "the ring's decision is on screen at 390 px")
	require.Empty(t, value(t, ctx, chromedp.Evaluate[[]string](overflowing)))
	viewportScreenshot(t, ctx, "33-case-ring-narrow")
	step(t, ctx, chromedp.EmulateViewport(1280, 800))

	// One pair decided by hand, then the ring: the decided pair is left as it was (one review).
	pair := `tr[data-pair="cust-a3|cust-a4"]`
	step(t, ctx, chromedp.SetValue(chromedp.CSS(pair+" select[name=decision]"), "confirmed_fraud"),
		chromedp.Click(chromedp.CSS(pair+" button[type=submit]")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	step(t, ctx, chromedp.Navigate(base+"/console/rings/"+ringA), chromedp.WaitVisible(chromedp.ID("decide-ring")),
		chromedp.Click(chromedp.CSS(`input[name=decision][value=confirmed_fraud]`)),
		chromedp.SendKeys(chromedp.ID("ring-note"), "one face, four names"),
		chromedp.Click(chromedp.ID("decide-ring")))
	waitFor(t, ctx, `(document.querySelector(".flash") || {}).textContent.includes("Recorded 3 reviews")`)
	require.Equal(t, base+"/console/rings/"+ringB, location(t, ctx), "the console went on to the next case")
	require.Contains(t, text(t, ctx, ".flash"), "next case")
	require.Equal(t, "analyst", text(t, ctx, `[data-testid="case-assignee"]`))
	screenshot(t, ctx, "34-next-case-after-decision")
	var pairReviews int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM link_reviews
WHERE user_id_low = 'cust-a3' AND user_id_high = 'cust-a4'`).Scan(&pairReviews))
	require.Equal(t, 1, pairReviews, "the ring decision did not re-decide the decided pair")
	require.Equal(t, 4, f.reviewCount())

	// Ring A's case is closed, with the decision as one entry of its history; the export lists it.
	step(t, ctx, chromedp.Navigate(base+"/console/queue?status=closed"), chromedp.WaitVisible(chromedp.CSS("table.cases")))
	require.Equal(t, 1, count(t, ctx, "tr[data-case]"))
	csvText := value(t, ctx, chromedp.Evaluate[string](`fetch(document.getElementById("export-queue").href).then(r => r.text())`,
		chromedp.EvalAwaitPromise))
	rows, err := csv.NewReader(strings.NewReader(csvText)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.Equal(t, "caseId", rows[0][0])
	require.Equal(t, ringA, rows[1][1])
	require.Equal(t, "closed", rows[1][7])
	step(t, ctx, chromedp.Navigate(base+"/console/cases/"+rows[1][0]), chromedp.WaitVisible(chromedp.CSS("h1")))
	require.Equal(t, base+"/console/rings/"+ringA, location(t, ctx), "a closed case still opens its ring")
	require.Contains(t, text(t, ctx, `[data-testid="case-history"]`), "confirmed_fraud on 3 pairs (1 already decided, left as they were)")
}

// Each export is recorded in the access log: who, and what (the export with its filters); the
// audit's export lists the people it holds.
func TestExportsAreRecordedWithWhoAndWhat(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	f.seedRings()
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)
	_, _, page := c.get("/console/rings/" + duplicate.RingID("cust-b1"))
	status, _, _ := c.post("/console/rings/"+duplicate.RingID("cust-b1")+"/decision", url.Values{"decision": {"false_positive"},
		"csrf": {csrfOf(t, page)}, "stay": {"on"}})
	require.Equal(t, http.StatusSeeOther, status)
	before := len(f.reads(w))

	status, h, body := c.get("/console/queue.csv?severity=high")
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "text/csv; charset=utf-8", h.Get("Content-Type"))
	require.Contains(t, h.Get("Content-Disposition"), "attachment")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2, "ring A's case: the only high one")
	status, _, body = c.get("/console/audit.csv?user=cust-b1")
	require.Equal(t, http.StatusOK, status, body)
	rows, err = csv.NewReader(strings.NewReader(body)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"reviewId", "reviewedAt", "reviewedBy", "userId", "duplicateUserId", "decision", "note"}, rows[0])
	require.Len(t, rows, 2)
	require.Equal(t, "analyst", rows[1][2])
	status, _, _ = c.get("/console/queue.csv?severity=urgent")
	require.Equal(t, http.StatusBadRequest, status)

	got := f.reads(w)[before:]
	require.Len(t, got, 2, "%+v", got)
	require.Equal(t, consoleRead{Actor: "analyst", Via: "console", What: "GET /console/queue.csv?severity=high",
		UserIDs: []string{}, UserCount: 0}, got[0])
	require.Equal(t, "GET /console/audit.csv?user=cust-b1", got[1].What)
	require.Equal(t, []string{"cust-b1", "cust-b2"}, got[1].UserIDs)
}

// Assigning a case to someone else is a lead's (scope assign): a reviewer's form is refused, a
// lead's gives the case to the named analyst, recorded under the lead's name; a reviewer claims
// within the cap.
func TestALeadAssignsACaseAndAReviewerClaimsWithinTheCap(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *console.Config) { c.CaseCap = 1 })
	ringA, ringB := f.seedRings()
	f.addAnalyst("rita", analyst.Reviewer, ritaPassword)
	f.addAnalyst("omar", analyst.Lead, "orange piano seventeen")
	rita, omar := newClient(t, f.srv.URL), newClient(t, f.srv.URL)
	rita.signInWithPassword("rita", ritaPassword)
	omar.signInWithPassword("omar", "orange piano seventeen")
	caseA, err := f.store.CaseOfRing(t.Context(), ringA)
	require.NoError(t, err)
	caseB, err := f.store.CaseOfRing(t.Context(), ringB)
	require.NoError(t, err)

	_, _, page := rita.get("/console/rings/" + ringA)
	require.NotContains(t, page, `id="assign-case"`, "a reviewer is not offered assignment")
	status, _, _ := rita.post("/console/cases/"+caseA+"/assign", url.Values{"assignee": {"omar"}, "csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusForbidden, status)

	_, _, page = omar.get("/console/rings/" + ringA)
	require.Contains(t, page, `id="assign-case"`)
	status, _, _ = omar.post("/console/cases/"+caseA+"/assign", url.Values{"assignee": {"rita"}, "csrf": {csrfOf(t, page)}})
	require.Equal(t, http.StatusSeeOther, status)
	d, err := f.store.Case(t.Context(), caseA)
	require.NoError(t, err)
	require.Equal(t, "rita", d.Assignee)
	require.Equal(t, "assigned", d.History[len(d.History)-1].Kind)
	require.Equal(t, "omar", d.History[len(d.History)-1].Author)

	// Rita holds one case: the cap (1) refuses a second claim, with a message on the queue.
	_, _, page = rita.get("/console/queue")
	status, h, _ := rita.post("/console/cases/"+caseB+"/claim", url.Values{"csrf": {csrfOf(t, page)}, "return": {"/console/queue"}})
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/queue", h.Get("Location"))
	_, _, page = rita.get("/console/queue")
	require.Contains(t, page, "DOPPEL_CASE_CAP")
	d, err = f.store.Case(t.Context(), caseB)
	require.NoError(t, err)
	require.Empty(t, d.Assignee)
}
