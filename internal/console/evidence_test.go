package console_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/evidence"
	"github.com/doppelhq/doppel/internal/facesearch"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// viewLog records the views the console reports, and writes them through the real LogViews.
type viewLog struct {
	mu    sync.Mutex
	views []recordedView
	next  console.EvidenceViews
}

type recordedView struct {
	actor, ringID string
	userIDs       []string
}

func (v *viewLog) RecordView(ctx context.Context, actor string, userIDs []string, ringID string) {
	v.mu.Lock()
	v.views = append(v.views, recordedView{actor: actor, ringID: ringID, userIDs: userIDs})
	v.mu.Unlock()
	v.next.RecordView(ctx, actor, userIDs, ringID)
}

func (v *viewLog) all() []recordedView {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]recordedView(nil), v.views...)
}

// syncBuffer is a log destination tests read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// evidenceFixture is a console with evidence from a real advance-sim, its sessions matching the
// checks stored.
type evidenceFixture struct {
	*fixture
	fetcher *evidence.Fetcher
	sim     *advancesim.Sim
	views   *viewLog
	logs    *syncBuffer
}

// setupEvidence serves the console with evidence fetched from an in-process advance-sim through
// the real client and vendor adapter, waiting at most wait per page.
func setupEvidence(t *testing.T, wait time.Duration) *evidenceFixture {
	t.Helper()
	sim := advancesim.New(advancesim.Config{AccessKey: "ak", SecretKey: "sk"})
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)
	client, err := advance.New(advance.Config{BaseURL: simSrv.URL, AccessKey: "ak", SecretKey: "sk", Timeout: 2 * time.Second})
	require.NoError(t, err)
	vendor := facesearch.New(client, facesearch.Config{QPS: 50})
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	views := &viewLog{next: evidence.LogViews{Logger: log, Key: pseudonym.NewKey([]byte("test-key"))}}
	fetcher := evidence.NewFetcher(evidence.FetcherConfig{
		Source: func(string) (evidence.Source, bool) { return vendor, true },
		Cache:  evidence.NewCache(100, time.Minute),
		Wait:   wait,
	})
	f := setup(t, func(cfg *console.Config) {
		cfg.Logger = log
		cfg.EvidenceViews = views
		cfg.Evidence = fetcher
	})
	return &evidenceFixture{fixture: f, fetcher: fetcher, sim: sim, views: views, logs: logs}
}

// seedPerson stores user's check (signatureId ev-<user>) linking it to matched, and the vendor's
// session behind it with face and, when not "", the person whose document it shows.
func (f *evidenceFixture) seedPerson(user, face, person string, matched ...string) {
	f.t.Helper()
	sig := "ev-" + user
	_, err := f.sim.AddSession(advancesim.Session{UserID: user, Face: face, Person: person, OverallResult: advancesim.ResultPass, SignatureID: sig})
	require.NoError(f.t, err)
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	_, err = f.store.SaveCheck(context.Background(), duplicate.Check{SignatureID: sig, UserID: user,
		EventType: duplicate.EventTypeCompleted, Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched,
		Source: duplicate.Source{Topic: "idv.completed"}, CheckedAt: time.Now()})
	require.NoError(f.t, err)
}

// seedRing stores a ring of four on one face: ev-1, ev-2 and ev-3 with documents of their own, and
// ev-4, the person of ev-3 coming back with the same document.
func (f *evidenceFixture) seedRing() string {
	f.seedPerson("ev-1", "face-x", "")
	f.seedPerson("ev-2", "face-x", "", "ev-1")
	f.seedPerson("ev-3", "face-x", "p-3", "ev-1", "ev-2")
	f.seedPerson("ev-4", "face-x", "p-3", "ev-3")
	return duplicate.RingID("ev-1")
}

// documentsOf returns what the vendor's documents say about users: the strings that must never be
// stored or logged.
func (f *evidenceFixture) documentsOf(users ...string) []string {
	f.t.Helper()
	var out []string
	for _, u := range users {
		rec, ok := f.fetcher.Cache().Get(duplicate.DefaultRegion, "ev-"+u)
		require.True(f.t, ok, "the evidence of %s is cached after the page view", u)
		out = append(out, rec.FullName, rec.IDNumber)
	}
	return out
}

func TestTheRingPageShowsTheEvidenceInARealBrowser(t *testing.T) {
	f := setupEvidence(t, 5*time.Second)
	ringID := f.seedRing()
	ctx := browser(t)
	signInInBrowser(t, ctx, f.srv.URL)

	step(t, ctx, chromedp.Navigate(f.srv.URL+"/console/rings/"+ringID+"?user=ev-4"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="evidence"]`)))
	waitFor(t, ctx, `Array.from(document.querySelectorAll("img.face")).every(i => i.complete && i.naturalWidth === 96)`)
	require.Equal(t, 4, count(t, ctx, `img[data-testid="face"]`), "a face per account")
	// One face: the four pictures are the same picture.
	same := value(t, ctx, chromedp.Evaluate[bool](`(async () => {
		const srcs = Array.from(document.querySelectorAll("img.face")).map(i => i.src);
		const bodies = await Promise.all(srcs.map(s => fetch(s).then(r => r.arrayBuffer()).then(b => btoa(String.fromCharCode(...new Uint8Array(b))))));
		return new Set(bodies).size === 1 && new Set(srcs).size === 4;
	})()`, chromedp.EvalAwaitPromise))
	require.True(t, same, "two accounts with one face show one picture, each under its own unguessable URL")
	require.Equal(t, 4, count(t, ctx, `[data-testid="doc-number"]`))

	// What the records say, beside each pair: a suggestion, never a decision.
	require.Contains(t, text(t, ctx, `tr[data-pair="ev-3|ev-4"] [data-testid="suggestion"]`), "Same document number, name and birth date")
	require.Contains(t, text(t, ctx, `tr[data-pair="ev-1|ev-2"] [data-testid="suggestion"]`), "classic duplicate-account fraud")
	require.Zero(t, f.reviewCount(), "nothing is decided by the suggestion")

	// The view is recorded: who saw whose evidence, on which ring.
	views := f.views.all()
	require.Len(t, views, 1)
	require.Equal(t, recordedView{actor: "analyst", ringID: ringID, userIDs: []string{"ev-1", "ev-2", "ev-3", "ev-4"}}, views[0])
	require.Contains(t, f.logs.String(), `"msg":"evidence viewed"`)

	// Line styles tell decisions apart, with a legend.
	pair := `tr[data-pair="ev-1|ev-2"]`
	step(t, ctx, chromedp.SetValue(chromedp.CSS(pair+" select[name=decision]"), "false_positive"),
		chromedp.Click(chromedp.CSS(pair+" button[type=submit]")), chromedp.WaitVisible(chromedp.CSS(".flash")))
	dash := value(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("svg.graph line.edge-false_positive")).strokeDasharray`))
	open := value(t, ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("svg.graph line.edge-open")).strokeDasharray`))
	require.NotEqual(t, "none", dash)
	require.NotEqual(t, dash, open, "a decided and an undecided pair are drawn in different line styles")
	require.Equal(t, 4, count(t, ctx, "ul.legend svg.graph-key"))
	screenshot(t, ctx, "12-ring-evidence")
	viewportScreenshot(t, ctx, "12b-ring-evidence-window")

	// On a phone, the ring's main action is on screen without scrolling, and nothing sticks out.
	step(t, ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(f.srv.URL+"/console/rings/"+ringID+"?user=ev-4"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="evidence"]`)))
	onScreen := value(t, ctx, chromedp.Evaluate[bool](`(() => { const r = document.getElementById("decide-ring").getBoundingClientRect();
		return r.top >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth; })()`))
	require.True(t, onScreen, "the ring's decision button is on screen at 390 px")
	require.Empty(t, value(t, ctx, chromedp.Evaluate[[]string](overflowing)))
	viewportScreenshot(t, ctx, "13-ring-evidence-narrow")
	screenshot(t, ctx, "13b-ring-evidence-narrow-full")
}

func TestEvidenceIsNeverStoredOrLogged(t *testing.T) {
	t.Parallel()
	f := setupEvidence(t, 5*time.Second)
	ringID := f.seedRing()
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)

	status, _, body := c.get("/console/rings/" + ringID)
	require.Equal(t, 200, status)
	secrets := f.documentsOf("ev-1", "ev-2", "ev-3", "ev-4")
	for _, s := range secrets {
		require.Contains(t, body, s, "the page shows the documents")
	}

	// Every row of every table, as text: no name or document number is in the database.
	rows, err := f.pool.Query(context.Background(), `
SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, tables, "idv_checks")
	for _, table := range tables {
		var dump string
		require.NoError(t, f.pool.QueryRow(context.Background(), fmt.Sprintf(`SELECT coalesce(string_agg(t::text, ' '), '') FROM %q t`, table)).Scan(&dump))
		for _, s := range secrets {
			require.NotContains(t, dump, s, "table %s holds evidence", table)
		}
	}
	// The logs: no name, no document number, and the people seen only as pseudonyms.
	logs := f.logs.String()
	require.Contains(t, logs, "evidence viewed")
	for _, s := range append(secrets, "ev-1", "ev-2", "ev-3", "ev-4") {
		require.NotContains(t, logs, s)
	}
}

func TestEvidenceUnavailableNeverBreaksThePage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults advancesim.Faults
		want   string
	}{
		{"rate limited", advancesim.Faults{ForceCode: "SERVICE_BUSY"}, "rate limit"},
		{"too slow", advancesim.Faults{LatencyMs: 3000}, "did not answer in time"},
		{"server error", advancesim.Faults{ForceCode: "ERROR"}, "answered with an error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setupEvidence(t, 500*time.Millisecond)
			ringID := f.seedRing()
			require.NoError(t, f.sim.SetFaults(tt.faults))
			c := newClient(t, f.srv.URL)
			c.signIn(analystKey)
			status, _, body := c.get("/console/rings/" + ringID)
			require.Equal(t, 200, status)
			require.Contains(t, body, "Evidence unavailable")
			require.Contains(t, body, tt.want)
			require.Contains(t, body, `id="decide-ring"`, "the analyst can still decide")
			require.Contains(t, body, "Evidence unavailable for one of the two accounts: no suggestion.")
			require.Empty(t, f.views.all(), "nothing shown, no view recorded")
		})
	}
}

func TestAFaceIsServedOnlyToASessionWhileCached(t *testing.T) {
	t.Parallel()
	f := setupEvidence(t, 5*time.Second)
	ringID := f.seedRing()
	c := newClient(t, f.srv.URL)
	c.signIn(analystKey)
	_, _, body := c.get("/console/rings/" + ringID)
	i := strings.Index(body, "/console/evidence/faces/")
	require.Positive(t, i)
	faceURL := body[i : i+len("/console/evidence/faces/")+32]

	status, h, img := c.get(faceURL)
	require.Equal(t, 200, status)
	require.Equal(t, "image/png", h.Get("Content-Type"))
	require.Contains(t, h.Get("Cache-Control"), "no-store")
	require.True(t, strings.HasPrefix(img, "\x89PNG"))

	status, _, _ = newClient(t, f.srv.URL).get(faceURL)
	require.Equal(t, 303, status, "no session, no face")
	status, _, _ = c.get("/console/evidence/faces/0123456789abcdef0123456789abcdef")
	require.Equal(t, 404, status, "a handle no page gave out")
}
