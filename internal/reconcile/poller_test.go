package reconcile_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/facesearch"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/reconcile"
)

type bundle struct {
	pool   *pgxpool.Pool
	store  *postgres.Store
	sim    *advancesim.Sim
	vendor *facesearch.Vendor
}

func setup(t *testing.T) *bundle {
	t.Helper()
	_, pool := testinfra.Database(t)
	sim, simURL := testinfra.Sim(t, advancesim.Config{Latency: 5 * time.Millisecond})
	client, err := advance.New(advance.Config{BaseURL: simURL, AccessKey: testinfra.SimAccessKey, SecretKey: testinfra.SimSecretKey})
	require.NoError(t, err)
	return &bundle{pool: pool, store: postgres.NewStore(pool), sim: sim, vendor: facesearch.New(client, facesearch.Config{})}
}

// handledEvents stands in for the events topic and its consumer in these tests of the poller's
// logic (the service tests run the real topic): each published event is decoded and handled at
// once by a detector, as the main path would.
type handledEvents struct {
	detector *duplicate.Detector
	vendor   duplicate.Vendor
	mu       sync.Mutex
	keys     []string
	fail     error // when set, Publish fails with it
}

func (b *bundle) events() *handledEvents {
	return &handledEvents{detector: duplicate.NewDetector(b.store, nil), vendor: b.vendor}
}

func (h *handledEvents) Publish(ctx context.Context, key, value []byte) error {
	h.mu.Lock()
	fail := h.fail
	h.keys = append(h.keys, string(key))
	h.mu.Unlock()
	if fail != nil {
		return fail
	}
	ev, err := duplicate.DecodeEvent(value, duplicate.DecodeOptions{MaxBytes: 1 << 20, RejectUnknownTypes: true})
	if err != nil {
		return err
	}
	_, err = h.detector.Handle(ctx, ev, h.vendor, duplicate.Source{Topic: "idv.completed"})
	return err
}

// recordingVendor notes when each signatureId was polled, by any instance.
type recordingVendor struct {
	reconcile.Vendor
	owner string
	mu    *sync.Mutex
	calls map[string][]poll
	state string
}

type poll struct {
	owner string
	at    time.Time
}

func (v *recordingVendor) Verification(ctx context.Context, sig string) (duplicate.Verification, error) {
	v.mu.Lock()
	v.calls[sig] = append(v.calls[sig], poll{owner: v.owner, at: time.Now()})
	v.mu.Unlock()
	return v.Vendor.Verification(ctx, sig)
}

// regions is the one region polled through v, paused while v.state (else b's vendor) says open.
func (b *bundle) regions(v *recordingVendor) reconcile.Regions {
	return reconcile.OneRegion("", v, func() bool {
		if v.state != "" {
			return v.state == "open"
		}
		return b.vendor.State() == "open"
	})
}

// started registers n sessions that never complete, each announced as started and due at once.
func (b *bundle) started(t *testing.T, n int) []string {
	t.Helper()
	sigs := make([]string, n)
	for i := range sigs {
		sigs[i] = testinfra.AddSession(t, b.sim, fmt.Sprintf("user-%03d", i), "f", "INCOMPLETE")
		require.NoError(t, b.store.RecordStarted(context.Background(), duplicate.Started{SignatureID: sigs[i]},
			0, duplicate.Source{Topic: "idv.started"}))
	}
	return sigs
}

// startedSession registers one session of user whose verdict is already in, announced as started
// and due at once.
func (b *bundle) startedSession(t *testing.T, user, verdict string) string {
	t.Helper()
	sig := testinfra.AddSession(t, b.sim, user, "f", verdict)
	require.NoError(t, b.store.RecordStarted(context.Background(), duplicate.Started{SignatureID: sig}, 0, duplicate.Source{}))
	return sig
}

// poller polls b's one region, never paused, and hands what it finds to events.
func (b *bundle) poller(events reconcile.Events, interval time.Duration) *reconcile.Poller {
	return reconcile.NewPoller(reconcile.Config{Owner: "a", Interval: interval, GiveUp: 48 * time.Hour}, b.store,
		reconcile.OneRegion("", b.vendor, func() bool { return false }), events, nil, nil)
}

// startedState returns sig's status, kept verdict and last poll result.
func (b *bundle) startedState(t *testing.T, sig string) (status, verdict, last string) {
	t.Helper()
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT status, coalesce(verdict, ''), coalesce(last_poll_result, '')
FROM started_verifications WHERE signature_id = $1`, sig).Scan(&status, &verdict, &last))
	return status, verdict, last
}

func TestTwoInstancesNeverPollOneVerificationTwiceInAnInterval(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sigs := b.started(t, 60)
	const interval = time.Second
	var mu sync.Mutex
	calls := map[string][]poll{}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for _, owner := range []string{"a", "b"} {
		v := &recordingVendor{Vendor: b.vendor, owner: owner, mu: &mu, calls: calls}
		p := reconcile.NewPoller(reconcile.Config{Owner: owner, Interval: interval, GiveUp: time.Hour,
			Tick: 20 * time.Millisecond, BatchSize: 7, Workers: 3},
			b.store, b.regions(v), b.events(), nil, nil)
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Run(ctx) }()
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	owners := map[string]int{}
	for _, sig := range sigs {
		polls := calls[sig]
		require.GreaterOrEqual(t, len(polls), 3, "%s is polled again after each interval", sig)
		for i := 1; i < len(polls); i++ {
			// The lease is taken in PostgreSQL's clock; the call follows it by a few ms.
			require.GreaterOrEqual(t, polls[i].at.Sub(polls[i-1].at), interval-150*time.Millisecond,
				"%s polled twice within an interval (by %s then %s)", sig, polls[i-1].owner, polls[i].owner)
		}
		for _, p := range polls {
			owners[p.owner]++
		}
	}
	require.Positive(t, owners["a"], "both instances share the work")
	require.Positive(t, owners["b"], "both instances share the work")

	var pending int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM started_verifications WHERE status = 'pending'`).Scan(&pending))
	require.Equal(t, 60, pending, "INCOMPLETE is polled again later, never settled")
}

func TestAnOpenCircuitPausesPolling(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.started(t, 3)
	var mu sync.Mutex
	calls := map[string][]poll{}
	v := &recordingVendor{Vendor: b.vendor, owner: "a", mu: &mu, calls: calls, state: "open"}
	p := reconcile.NewPoller(reconcile.Config{Owner: "a", Interval: time.Minute, GiveUp: time.Hour},
		b.store, b.regions(v), b.events(), nil, nil)
	require.NoError(t, p.Round(context.Background()))
	require.Empty(t, calls, "no poll while the vendor's circuit is open")
	var claimed int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM started_verifications WHERE polls > 0 OR next_poll_at > now()`).Scan(&claimed))
	require.Zero(t, claimed, "nothing claimed: all stay due for when the circuit closes")

	v.state = "closed"
	require.NoError(t, p.Round(context.Background()))
	require.Len(t, calls, 3)
}

func TestCallbacksMissingRatio(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	require.Nil(t, reconcile.NewCallbacksMissing("id", reconcile.Counts{}, 0.05, now), "nothing settled, nothing to say")
	require.Nil(t, reconcile.NewCallbacksMissing("id", reconcile.Counts{RecoveredRecent: 5, SettledRecent: 100}, 0.05, now),
		"at the threshold is not above it")
	a := reconcile.NewCallbacksMissing("id", reconcile.Counts{RecoveredRecent: 6, SettledRecent: 100}, 0.05, now)
	require.NotNil(t, a)
	require.Equal(t, reconcile.AlertTypeCallbacksMissing, a.Type)
	require.InDelta(t, 0.06, a.Ratio, 1e-9)
	require.Equal(t, "1h0m0s", a.Window)
}

func TestAnIncompleteVerificationIsPolledAgainAndRecoveredWhenItCompletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ids, err := b.sim.AddSessions([]advancesim.Session{
		{UserID: "alice", Face: "f", OverallResult: "PASS"},
		{UserID: "bob", Face: "f", OverallResult: "INCOMPLETE"},
	})
	require.NoError(t, err)
	bob := ids[1]
	ctx := context.Background()
	require.NoError(t, b.store.RecordStarted(ctx, duplicate.Started{SignatureID: bob}, 0, duplicate.Source{}))
	const interval = 300 * time.Millisecond
	events := b.events()
	p := reconcile.NewPoller(reconcile.Config{Owner: "a", Interval: interval, GiveUp: time.Hour}, b.store,
		reconcile.OneRegion("", b.vendor, func() bool { return b.vendor.State() == "open" }),
		events, nil, nil)

	require.NoError(t, p.Round(ctx))
	status, _, last := b.startedState(t, bob)
	require.Equal(t, "pending", status)
	require.Equal(t, "get-result: INCOMPLETE", last)
	require.Empty(t, b.sim.Stats().FaceSearchBySignature, "no search before the verdict")

	require.NoError(t, b.sim.Complete(bob, "PASS"))
	require.NoError(t, p.Round(ctx))
	status, _, _ = b.startedState(t, bob)
	require.Equal(t, "pending", status, "not polled again within the interval")

	time.Sleep(interval)
	require.NoError(t, p.Round(ctx))
	status, _, _ = b.startedState(t, bob)
	require.Equal(t, "recovered", status)
	c, err := b.store.Check(ctx, bob)
	require.NoError(t, err)
	require.Equal(t, duplicate.OutcomeDuplicatesFound, c.Outcome)
	require.Equal(t, []string{"alice"}, c.MatchedUserIDs)
	require.Equal(t, duplicate.FoundByPolling, c.FoundBy)
	require.Equal(t, "PASS", c.OverallResult, "the verdict polling found")
	require.Equal(t, "idv.completed", c.Source.Topic, "searched by the main path, from its event")
	require.Equal(t, []string{bob}, events.keys, "one COMPLETED event, keyed by its signatureId")
	require.EqualValues(t, 2, b.sim.Stats().Calls["get-result"], "bob's two polls: its event carried its user")
	require.EqualValues(t, 1, b.sim.Stats().FaceSearchBySignature[bob], "billed once")
}

// When the event of a verification found final cannot be published, the verdict is kept, the
// round reports the failure and the verification is polled again after the interval, not at every
// tick of the broker's outage (each poll is a get-result call).
func TestAFailedPublishKeepsTheVerdictAndPollsAgainAfterTheInterval(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sig := b.startedSession(t, "carol", "PASS")
	ctx := context.Background()
	events := b.events()
	events.fail = errors.New("broker down")
	const interval = 500 * time.Millisecond
	p := b.poller(events, interval)

	err := p.Round(ctx)
	require.ErrorContains(t, err, "broker down")
	require.ErrorContains(t, err, sig)
	require.NoError(t, p.Round(ctx), "the lease stands: nothing is due, nothing polled")
	status, verdict, _ := b.startedState(t, sig)
	require.Equal(t, "pending", status)
	require.Equal(t, "PASS", verdict, "the verdict is kept")
	require.EqualValues(t, 1, b.sim.Stats().Calls["get-result"], "not polled again within the interval")
	require.Empty(t, b.sim.Stats().FaceSearchBySignature, "nothing searched")

	events.mu.Lock()
	events.fail = nil
	events.mu.Unlock()
	time.Sleep(interval)
	require.NoError(t, p.Round(ctx))
	require.NoError(t, p.Round(ctx)) // settles what the event stored
	status, _, _ = b.startedState(t, sig)
	require.Equal(t, "recovered", status)
	require.EqualValues(t, 2, b.sim.Stats().Calls["get-result"], "polled once more; the PASS's event carried its user")
	require.EqualValues(t, 1, b.sim.Stats().FaceSearchBySignature[sig], "billed once")
}

// A PASS whose get-result names no valid user can never be searched: its poll is recorded as
// failed with the reason and nothing is published (the main path would dead-letter it at every
// poll), and it is polled again after the interval.
func TestAPassNamingAnInvalidUserIsRecordedAndNotPublished(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sig := b.startedSession(t, "tab\tuser", "PASS")
	events := b.events()
	require.NoError(t, b.poller(events, time.Hour).Round(context.Background()))
	status, verdict, last := b.startedState(t, sig)
	require.Equal(t, "pending", status)
	require.Empty(t, verdict, "no verdict kept: the next poll asks again")
	require.True(t, strings.HasPrefix(last, "failed: "+duplicate.ReasonInvalidUserID), last)
	require.Empty(t, events.keys, "nothing published")
}

// A verification naming a region that is not configured calls no vendor: each poll is recorded as
// failed, the region is logged once however often it is polled, and it expires at give-up.
func TestAnUnknownRegionIsAFailedPollLoggedOnceWithoutAVendorCall(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, sig := range []string{"unknown-1", "unknown-2"} {
		require.NoError(t, b.store.RecordStarted(ctx, duplicate.Started{SignatureID: sig, Region: "zz"}, 0, duplicate.Source{}))
	}
	var mu sync.Mutex
	calls := map[string][]poll{}
	v := &recordingVendor{Vendor: b.vendor, owner: "a", mu: &mu, calls: calls}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	const interval = 200 * time.Millisecond
	p := reconcile.NewPoller(reconcile.Config{Owner: "a", Interval: interval, GiveUp: time.Hour, Logger: log},
		b.store, b.regions(v), b.events(), nil, nil)
	for range 3 {
		require.NoError(t, p.Round(ctx))
		time.Sleep(interval)
	}
	require.Empty(t, calls, "no vendor is called for an unconfigured region")
	require.Equal(t, 1, strings.Count(logs.String(), "level=ERROR"), "logged once: %s", logs.String())
	var polls int
	var last string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT polls, last_poll_result FROM started_verifications
WHERE signature_id = 'unknown-1'`).Scan(&polls, &last))
	require.Equal(t, 3, polls, "each round's poll is recorded")
	require.Contains(t, last, duplicate.ReasonUnknownRegion)

	expiring := reconcile.NewPoller(reconcile.Config{Owner: "a", Interval: interval, GiveUp: time.Nanosecond},
		b.store, b.regions(v), b.events(), nil, nil)
	require.NoError(t, expiring.Round(ctx))
	var expired int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM started_verifications WHERE status = 'expired'`).Scan(&expired))
	require.Equal(t, 2, expired, "expired at give-up like any verification without a verdict")
}

// A round deletes the verifications that settled longer ago than the retention, and no others.
func TestARoundPrunesWhatSettledBeforeTheRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `
INSERT INTO started_verifications (signature_id, started_at, next_poll_at, status, settled_at) VALUES
    ('old', now() - interval '3 days', now(), 'completed', now() - interval '2 days'),
    ('recent', now() - interval '3 days', now(), 'recovered', now() - interval '1 hour')`)
	require.NoError(t, err)
	v := &recordingVendor{Vendor: b.vendor, owner: "a", mu: &sync.Mutex{}, calls: map[string][]poll{}}
	p := reconcile.NewPoller(reconcile.Config{Owner: "a", Interval: time.Minute, GiveUp: time.Hour, Retention: 24 * time.Hour},
		b.store, b.regions(v), b.events(), nil, nil)
	require.NoError(t, p.Round(ctx))
	rows, err := b.pool.Query(ctx, `SELECT signature_id FROM started_verifications ORDER BY 1`)
	require.NoError(t, err)
	kept, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"recent"}, kept)
}
