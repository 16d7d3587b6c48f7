package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// chromiumPath is Debian's Chromium; scripts/ensure-chromium.sh (run by `make test`) installs it.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium of the machine's own, with an empty profile, and returns its
// tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("no Chromium at %s: run scripts/ensure-chromium.sh (make test does)", chromiumPath)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first call starts the browser: no timeout on this one. The viewport is the brief's 1280x800.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)), "start Chromium")
	return ctx
}

// step runs actions with a bound, so that a page that never shows what a test waits for fails the
// test instead of hanging it.
func step(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(tctx, actions...))
}

func value[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	require.NoError(t, err)
	return v
}

// screenshot writes the whole page to .local/screenshots/<name>.png (git-ignored), for a reader.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	saveScreenshot(t, name, value(t, ctx, chromedp.FullScreenshot(100)))
}

// viewportScreenshot writes what the window shows, for pages too long to read whole.
func viewportScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	saveScreenshot(t, name, value(t, ctx, chromedp.CaptureScreenshot()))
}

func saveScreenshot(t *testing.T, name string, png []byte) {
	t.Helper()
	dir := filepath.Join(testinfra.RepoRoot(), ".local", "screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

func count(t *testing.T, ctx context.Context, selector string) int {
	t.Helper()
	return value(t, ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, selector)))
}

func text(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	return value(t, ctx, chromedp.Text(chromedp.CSS(selector)))
}

// waitFor polls a JavaScript condition until it holds (a page that loads after a form was posted
// replaces one that may already show what the test waits for).
func waitFor(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		if err == nil && ok {
			return
		}
		require.True(t, time.Now().Before(deadline), "waited 30s for %s", cond)
		time.Sleep(50 * time.Millisecond)
	}
}

func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	return value(t, ctx, chromedp.Location())
}

// overflowing lists the elements that stick out of the viewport's right edge, outside any box that
// scrolls on its own (the tables' .scroll wrappers): on a narrow screen the page must not scroll
// sideways.
const overflowing = `Array.from(document.querySelectorAll("body *"))
  .filter(e => !e.closest(".scroll, .sr-only") && e.getBoundingClientRect().right > window.innerWidth + 1)
  .map(e => e.tagName.toLowerCase() + (e.className ? "." + String(e.className).replace(/ /g, ".") : ""))`

func signInInBrowser(t *testing.T, ctx context.Context, base string) {
	t.Helper()
	step(t, ctx, chromedp.Navigate(base+"/console/login"), chromedp.WaitVisible(chromedp.ID("apiKey")),
		chromedp.SendKeys(chromedp.ID("apiKey"), analystKey), chromedp.Submit(chromedp.ID("apiKey")),
		chromedp.WaitVisible(chromedp.CSS(".stats")))
}

func TestAnAnalystWorksTheQueueInARealBrowser(t *testing.T) {
	f := setup(t)
	ringA, _ := f.seedRings()
	ctx := browser(t)
	base := f.srv.URL
	apiKey := chromedp.ID("apiKey")

	// Not signed in: sent to the sign-in page.
	step(t, ctx, chromedp.Navigate(base+"/console/queue"), chromedp.WaitVisible(apiKey))
	require.Equal(t, base+"/console/login", location(t, ctx))
	screenshot(t, ctx, "01-sign-in")

	// A wrong key is refused with a message; the right one signs in.
	step(t, ctx, chromedp.SendKeys(apiKey, "wrong-key"), chromedp.Submit(apiKey), chromedp.WaitVisible(chromedp.ID("login-error")))
	require.Contains(t, text(t, ctx, "#login-error"), "not known")
	screenshot(t, ctx, "01b-sign-in-refused")
	step(t, ctx, chromedp.SendKeys(apiKey, analystKey), chromedp.Submit(apiKey), chromedp.WaitVisible(chromedp.CSS(".stats")))
	require.Equal(t, base+"/console/", location(t, ctx), "the key never appears in a URL")
	stored := value(t, ctx, chromedp.Evaluate[string](`JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie`))
	require.NotContains(t, stored, analystKey, "nor in browser storage")
	require.NotContains(t, stored, "doppel_console_session", "the session cookie is HttpOnly")
	screenshot(t, ctx, "02-overview")

	// The alert list shows the four seeded alerts, newest first.
	step(t, ctx, chromedp.Navigate(base+"/console/alerts"), chromedp.WaitVisible(chromedp.CSS("table.alerts")))
	require.Equal(t, 4, count(t, ctx, "tr[data-alert]"))
	require.Contains(t, text(t, ctx, "tr[data-alert]"), "cust-b2", "newest first")
	screenshot(t, ctx, "03-queue")

	// Open the ring of cust-a4's alert: four accounts, four links, cust-a4 highlighted.
	require.Contains(t, text(t, ctx, "tr[data-alert]:nth-child(2)"), "cust-a4")
	step(t, ctx, chromedp.Click(chromedp.CSS("tr[data-alert]:nth-child(2) a.button")), chromedp.WaitVisible(chromedp.CSS("svg.graph")))
	require.Equal(t, "4", text(t, ctx, `[data-testid="ring-size"]`))
	require.Equal(t, "4", text(t, ctx, `[data-testid="ring-links"]`))
	require.Equal(t, 4, count(t, ctx, "svg.graph .node"))
	require.Equal(t, 4, count(t, ctx, "svg.graph line.edge"))
	require.Equal(t, 1, count(t, ctx, "svg.graph .node.focus"))
	require.Equal(t, "cust-a4", value(t, ctx, chromedp.Evaluate[string](`document.querySelector("svg.graph .node.focus title").textContent`)))
	require.Equal(t, 4, count(t, ctx, "tr[data-pair]"))
	require.Equal(t, "th", text(t, ctx, `tr[data-pair="cust-a3|cust-a4"] td.regions`), "the region that found the pair")
	require.Equal(t, "sg", text(t, ctx, `tr[data-pair="cust-a1|cust-a2"] td.regions`), "the default region by its host's name")
	screenshot(t, ctx, "04-ring")

	// A POST forged from the console's own origin without the CSRF token is refused, records nothing.
	forged := value(t, ctx, chromedp.Evaluate[int](fmt.Sprintf(`fetch("/console/rings/%s/decision", {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "decision=confirmed_fraud&note=forged"}).then(r => r.status)`, ringA),
		chromedp.EvalAwaitPromise))
	require.Equal(t, 403, forged)
	require.Zero(t, f.reviewCount())

	// Decide one pair (it starts a history), then the whole ring with one note.
	pair := `tr[data-pair="cust-a3|cust-a4"]`
	step(t, ctx, chromedp.SetValue(chromedp.CSS(pair+" select[name=decision]"), "confirmed_fraud"),
		chromedp.SendKeys(chromedp.CSS(pair+" input[name=note]"), "same selfie background"),
		chromedp.Click(chromedp.CSS(pair+" button[type=submit]")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	require.Contains(t, text(t, ctx, ".flash"), "confirmed fraud")
	require.Equal(t, 1, count(t, ctx, "svg.graph line.edge-confirmed_fraud"), "the decided pair is drawn by its decision")
	require.Equal(t, 3, count(t, ctx, "svg.graph line.edge-open"))
	step(t, ctx, chromedp.Click(chromedp.CSS(`input[name=decision][value=confirmed_fraud]`)),
		chromedp.SendKeys(chromedp.ID("ring-note"), "one face, four names, same device"),
		chromedp.Click(chromedp.ID("stay")), chromedp.Click(chromedp.ID("decide-ring")))
	waitFor(t, ctx, `(document.querySelector(".flash") || {}).textContent.includes("Recorded 3 reviews")`)
	require.Equal(t, 4, count(t, ctx, "svg.graph line.edge-confirmed_fraud"))
	require.Equal(t, 4, f.reviewCount(), "one review per undecided pair; the decided one is left as it was")
	step(t, ctx, chromedp.Click(chromedp.CSS(pair+" details summary")))
	screenshot(t, ctx, "05-ring-decided")

	// The audit shows the four reviews, newest first; the ring's alerts are no longer open.
	step(t, ctx, chromedp.Navigate(base+"/console/audit"), chromedp.WaitVisible(chromedp.CSS("table.audit")))
	require.Equal(t, 4, count(t, ctx, "tr[data-review]"))
	require.Contains(t, text(t, ctx, "tr[data-review]"), "one face, four names")
	screenshot(t, ctx, "06-audit")
	step(t, ctx, chromedp.Navigate(base+"/console/alerts"), chromedp.WaitVisible(chromedp.CSS("table.alerts")))
	require.Equal(t, 1, count(t, ctx, "tr[data-alert]"), "only cust-b2's alert is still open")
	require.Contains(t, text(t, ctx, "tr[data-alert]"), "cust-b2")
	step(t, ctx, chromedp.Navigate(base+"/console/alerts?status=reviewed"), chromedp.WaitVisible(chromedp.CSS("table.alerts")))
	require.Equal(t, 3, count(t, ctx, "tr[data-alert]"))

	// User search leads to the user's duplicates and ring.
	step(t, ctx, chromedp.Navigate(base+"/console/users"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "cust-a1"), chromedp.Submit(chromedp.ID("q")), chromedp.WaitVisible(chromedp.CSS(`table[data-testid="linked"]`)))
	require.Equal(t, 2, count(t, ctx, `table[data-testid="linked"] tbody tr`), "cust-a1 is linked to a2 and a3")
	screenshot(t, ctx, "07-users")
	step(t, ctx, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(".stats")))
	screenshot(t, ctx, "08-overview-after")

	// A narrow screen: the pages reflow instead of scrolling sideways.
	step(t, ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/console/rings/"+ringA+"?user=cust-a1"),
		chromedp.WaitVisible(chromedp.CSS("svg.graph")))
	require.Empty(t, value(t, ctx, chromedp.Evaluate[[]string](overflowing)), "the ring page scrolls sideways on a narrow screen")
	require.False(t, value(t, ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)))
	screenshot(t, ctx, "09-ring-narrow")
	step(t, ctx, chromedp.Navigate(base+"/console/alerts?status=all"), chromedp.WaitVisible(chromedp.CSS("table.alerts")))
	require.Empty(t, value(t, ctx, chromedp.Evaluate[[]string](overflowing)), "the alert list scrolls sideways on a narrow screen")
	require.False(t, value(t, ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)))
	screenshot(t, ctx, "10-queue-narrow")
	step(t, ctx, chromedp.EmulateViewport(1280, 800))

	// Sign out: back to the sign-in page, and the console stays closed.
	step(t, ctx, chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(apiKey))
	require.Equal(t, base+"/console/login", location(t, ctx))
	step(t, ctx, chromedp.Navigate(base+"/console/audit"), chromedp.WaitVisible(apiKey))
	require.Equal(t, base+"/console/login", location(t, ctx))
}

func TestAFaceFarmOfAThousandAccountsStaysUsable(t *testing.T) {
	f := setup(t, func(cfg *console.Config) { cfg.Store = neighbourhoodOnly{Store: cfg.Store, t: t} })
	const accounts = 1000
	ringID := f.seedFarm(accounts)
	ctx := browser(t)
	signInInBrowser(t, ctx, f.srv.URL)
	start := time.Now()
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/rings/"+ringID+"?user=farm-0500"), chromedp.WaitVisible(chromedp.CSS("svg.graph")))
	t.Logf("ring page of %d accounts loaded in %v (BenchmarkFaceFarmRingPage measures the server's part)", accounts, time.Since(start))
	require.Equal(t, strconv.Itoa(accounts), text(t, ctx, `[data-testid="ring-size"]`))
	// The neighbourhood of farm-0500: its six direct links (farm-0497..0503) and the links among them.
	require.Equal(t, 7, count(t, ctx, "svg.graph .node"), "the account and its direct neighbours")
	require.Equal(t, "farm-0500", value(t, ctx, chromedp.Evaluate[string](`document.querySelector("svg.graph .node.focus title").textContent`)))
	require.Equal(t, "6", text(t, ctx, `[data-testid="ring-links"]`))
	require.Contains(t, text(t, ctx, `[data-testid="graph-summary"]`), "A ring of 1000 accounts")
	require.Equal(t, 15, count(t, ctx, "tr[data-pair]"), "the pairs among the accounts shown")
	require.Contains(t, value(t, ctx, chromedp.Evaluate[string](`document.querySelector('svg.graph [data-testid="fold"]').textContent`)), "+993 more accounts")
	screenshot(t, ctx, "11-face-farm")
	viewportScreenshot(t, ctx, "11b-face-farm-window")

	// Without an account to start from, the page shows the ring's newest, farm-0999.
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/rings/"+ringID), chromedp.WaitVisible(chromedp.CSS("svg.graph")))
	require.Equal(t, "farm-0999", value(t, ctx, chromedp.Evaluate[string](`document.querySelector("svg.graph .node.focus title").textContent`)))
	require.Contains(t, text(t, ctx, `[data-testid="graph-summary"]`), "its newest account")

	// The fold opens on click: the paged list of every account, each leading to its neighbourhood.
	step(t, ctx, chromedp.Click(chromedp.CSS(`[data-testid="fold-link"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="members"]`)))
	require.Equal(t, 200, count(t, ctx, `[data-testid="members"] li`))
	step(t, ctx, chromedp.Click(chromedp.CSS(`a[rel="next"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="members"]`)))
	require.Contains(t, text(t, ctx, `[data-testid="members"] li`), "farm-0200")
	screenshot(t, ctx, "11c-face-farm-members")
}

// neighbourhoodOnly is the console's store with the whole-ring read forbidden for a large ring:
// its page must read the neighbourhood only, never every link of the ring.
type neighbourhoodOnly struct {
	console.Store
	t *testing.T
}

func (s neighbourhoodOnly) RingDetail(ctx context.Context, ringID, focus string) (duplicate.RingDetail, error) {
	if n, err := s.Store.RingSize(ctx, ringID); err == nil && n > duplicate.MaxRingPageMembers {
		s.t.Errorf("the page of ring %s (%d accounts) read the whole ring", ringID, n)
	}
	return s.Store.RingDetail(ctx, ringID, focus)
}

func TestTheQueueRefreshesItself(t *testing.T) {
	f := setup(t)
	f.seed("r-1")
	ctx := browser(t)
	signInInBrowser(t, ctx, f.srv.URL)
	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/alerts"), chromedp.WaitVisible(chromedp.CSS("table.alerts")))
	require.Zero(t, count(t, ctx, "tr[data-alert]"))
	f.seed("r-2", "r-1") // a new alert arrives while the analyst looks at the queue
	waitFor(t, ctx, `document.querySelectorAll("tr[data-alert]").length === 1`)
	require.Contains(t, text(t, ctx, "[data-updated]"), "updated")
}

// inViewport is true when the element selector names lies wholly inside the window.
func inViewport(selector string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false;
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth; })()`, selector)
}

// fitsNarrowScreen checks that nothing on the page sticks out sideways and that each of
// mainActions is on screen without scrolling.
func fitsNarrowScreen(t *testing.T, ctx context.Context, page string, mainActions ...string) {
	t.Helper()
	require.Empty(t, value(t, ctx, chromedp.Evaluate[[]string](overflowing)), "%s scrolls sideways on a narrow screen", page)
	require.False(t, value(t, ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)), page)
	for _, sel := range mainActions {
		require.True(t, value(t, ctx, chromedp.Evaluate[bool](inViewport(sel))), "%s: %s is not on screen at 390 px", page, sel)
	}
}

// At 390 px wide (a phone) the overview, the users search, its results and a user's page show
// their main action without scrolling, and none scrolls sideways.
func TestTheOverviewAndUsersPagesKeepTheirMainActionOnA390PxScreen(t *testing.T) {
	f := setup(t)
	ringA, _ := f.seedRings()
	f.seedFarm(60)
	ctx := browser(t)
	signInInBrowser(t, ctx, f.srv.URL)
	base := f.srv.URL
	step(t, ctx, chromedp.EmulateViewport(390, 844))

	step(t, ctx, chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS(`[data-case="open"]`)))
	fitsNarrowScreen(t, ctx, "the overview", `[data-case="open"]`, `[data-case="overdue"]`)
	require.Equal(t, "2", text(t, ctx, `[data-case="open"] .n`))
	screenshot(t, ctx, "12-overview-narrow")
	// The open cases link to the queue.
	step(t, ctx, chromedp.Click(chromedp.CSS(`[data-case="high"]`)), chromedp.WaitVisible(chromedp.CSS("table.cases")))
	require.Contains(t, location(t, ctx), "/console/queue?severity=high")
	require.Equal(t, 1, count(t, ctx, "tr[data-case]"), "the case queue filtered to high severity: ring A")

	step(t, ctx, chromedp.Navigate(base+"/console/users"), chromedp.WaitVisible(chromedp.ID("q")))
	fitsNarrowScreen(t, ctx, "the users search", "#q", `form[role="search"] button[type="submit"]`)
	screenshot(t, ctx, "13-users-narrow")
	step(t, ctx, chromedp.SendKeys(chromedp.ID("q"), "farm-"), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="matches"]`)))
	require.Equal(t, 50, count(t, ctx, `[data-testid="matches"] li`))
	fitsNarrowScreen(t, ctx, "the users found", "#q", `[data-testid="matches"] li a`)
	screenshot(t, ctx, "14-users-found-narrow")

	step(t, ctx, chromedp.Navigate(base+"/console/users?userId=cust-a1"), chromedp.WaitVisible(chromedp.CSS(`table[data-testid="checks"]`)))
	require.Equal(t, 1, count(t, ctx, `table[data-testid="checks"] tbody tr[data-check]`))
	require.Equal(t, 2, count(t, ctx, `table[data-testid="user-alerts"] tbody tr[data-alert]`))
	fitsNarrowScreen(t, ctx, "a user's page", "#q", `[data-testid="open-ring"]`)
	require.Contains(t, value(t, ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="open-ring"]').href`)), "/console/rings/"+ringA)
	screenshot(t, ctx, "15-user-narrow")
	step(t, ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/console/users?userId=cust-a1"),
		chromedp.WaitVisible(chromedp.CSS(`table[data-testid="checks"]`)))
	screenshot(t, ctx, "16-user")
}
