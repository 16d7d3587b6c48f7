//go:build faults

package faulttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/erasure"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// The erase-scoped API key the test's privacy officer uses.
const privacyOfficerKey = "privacy-officer-key-of-the-kill-test"

// clearDataGate stands between doppel and the vendor simulator: it passes every call through
// except the data-clearing call, which it holds until opened, so that a test can kill doppel
// after an erasure's removal committed and before the erasure is done.
type clearDataGate struct {
	url     string
	arrived atomic.Int64 // clear-data calls that reached the gate
	open    chan struct{}
	once    sync.Once
}

func newClearDataGate(t *testing.T, simURL string) *clearDataGate {
	t.Helper()
	target, err := url.Parse(simURL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // a call in flight when doppel is killed fails, as it should
	g := &clearDataGate{open: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == advancesim.ClearDataPath {
			g.arrived.Add(1)
			select {
			case <-g.open:
			case <-r.Context().Done():
			}
			if r.Context().Err() != nil { // the caller was killed while held
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	g.url = srv.URL
	t.Cleanup(func() { g.Open(); srv.Close() })
	return g
}

// Open lets the held and all later clear-data calls through.
func (g *clearDataGate) Open() { g.once.Do(func() { close(g.open) }) }

// An erasure is a job that a restart finishes, and a kill -9 inside its removal or after it leaves
// nothing half-erased for a reader (issue 24), shown on the real doppel binary, PostgreSQL and
// Kafka. It fails if the removal committed in more than one transaction, or if a start did not
// resume the unfinished jobs.
// Bob is the bridge of a ring of four found through the pipeline (events on Kafka, face searches
// in the simulator): alice-bob on one face, bob-carol, bob-dave and carol-dave on another.
//
//   - Kill A, inside the removal's transaction: the test holds a lock that the removal's tombstone
//     INSERT (its second-to-last statement, after every DELETE, pseudonymising UPDATE and the ring
//     split) waits on; doppel is killed while its backend waits. A reader sees every row of bob's
//     and the ring of four, the job pending; once the lock is released the orphaned transaction
//     dies without committing, and still nothing changed.
//   - Kill B, after the removal committed and before the job is done: the next process resumes the
//     job at start, the removal commits, the vendor's clear-data call is held; doppel is killed. A
//     reader finds bob's id only in the job's own record (it publishes it), the rings recomputed.
//   - A third process finishes the job: bob's id is in no text column of any table, the rings are
//     what the links left make them, both of his verifications were cleared at the vendor, and
//     subject_erased for him is on the erasures topic.
func TestKillNineInTheMiddleOfAnErasureLeavesNothingHalfErasedAndARestartFinishesIt(t *testing.T) {
	started := time.Now()
	f := setup(t)
	ctx := context.Background()
	erasures := testinfra.Topics(t, 1, "doppel.erasures")[0]
	gate := newClearDataGate(t, f.simURL)
	sum := sha256.Sum256([]byte(privacyOfficerKey))
	f.env = append(f.env, // later entries win over newFixture's
		"DOPPEL_ADVANCE_BASE_URL="+gate.url,
		"DOPPEL_ADVANCE_CLEAR_DATA_PATH="+advancesim.ClearDataPath,
		"DOPPEL_PSEUDONYM_KEY=0123456789abcdef0123456789abcdef",
		"DOPPEL_API_KEYS=privacy:erase:"+hex.EncodeToString(sum[:]),
		"DOPPEL_TOPIC_ERASURES="+erasures)
	store := postgres.NewStore(f.pool)

	// The ring, through the real pipeline: the simulator answers a face search with the sessions
	// of the same face completed before it, so the order of registration makes the links.
	var msgs []kafka.Message
	var bobsSignatures []string
	for _, s := range []struct{ user, face string }{
		{"alice", "face-1"}, {"bob", "face-1"}, {"bob", "face-2"}, {"carol", "face-2"}, {"dave", "face-2"},
	} {
		sig := testinfra.AddSession(t, f.sim, s.user, s.face, advancesim.ResultPass)
		if s.user == "bob" {
			bobsSignatures = append(bobsSignatures, sig)
		}
		body, err := json.Marshal(duplicate.Event{SignatureID: sig, Type: duplicate.EventTypeCompleted, UserID: s.user})
		require.NoError(t, err)
		msgs = append(msgs, kafka.Message{Key: []byte(sig), Value: body})
	}
	p := f.start(t)
	testinfra.Produce(t, f.events, msgs...)
	waitFor(t, 60*time.Second, func() bool {
		return f.checks(t) == 5 && f.count(t, `SELECT count(*) FROM duplicate_links`) == 4
	}, "the five checks and four links of the ring stored")
	// The outbox drained, so that nothing but the erasure changes a row from here on.
	waitFor(t, 30*time.Second, func() bool {
		return f.count(t, `SELECT count(*) FROM alerts WHERE published_at IS NULL`) == 0
	}, "the ring's alerts published")
	// A review of the others' pair whose note names bob (written through the store, as the API would).
	_, err := store.AddReview(ctx, duplicate.Review{UserID: "carol", DuplicateUserID: "dave",
		Decision: duplicate.DecisionConfirmedFraud, Note: "both used bob's phone", ReviewedBy: "analyst"})
	require.NoError(t, err)
	members := func(user string) []string {
		t.Helper()
		ring, err := store.Ring(ctx, user)
		require.NoError(t, err)
		return ring.Members
	}
	ringOfFour := []string{"alice", "bob", "carol", "dave"}
	require.Equal(t, ringOfFour, members("carol"))
	before := testinfra.Mentions(t, f.pool, "bob")
	for _, want := range []string{"idv_checks.user_id (2 rows)", "idv_checks.matched_user_ids (2 rows)",
		"duplicate_links.user_id_low (2 rows)", "duplicate_links.user_id_high (1 rows)", "ring_members.user_id (1 rows)", "alerts.user_id (1 rows)",
		"alerts.matched_user_ids (2 rows)", "link_reviews.note (1 rows)"} {
		require.Contains(t, before, want, "bob's rows before the erasure: %v", before)
	}
	rowCounts := func() string {
		return fmt.Sprintf("checks %d, links %d, ring members %d, alerts %d, tombstones %d",
			f.checks(t), f.count(t, `SELECT count(*) FROM duplicate_links`), f.count(t, `SELECT count(*) FROM ring_members`),
			f.count(t, `SELECT count(*) FROM alerts`), f.count(t, `SELECT count(*) FROM erased_users`))
	}
	countsBefore := rowCounts()
	status := func(erasureID string) string {
		t.Helper()
		var s string
		require.NoError(t, f.pool.QueryRow(ctx, `SELECT status FROM erasures WHERE erasure_id = $1`, erasureID).Scan(&s))
		return s
	}

	// Kill A. The test's own transaction holds erased_users in SHARE mode: readers pass, the
	// removal's INSERT of the tombstone waits.
	lock, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(ctx) }()
	_, err = lock.Exec(ctx, `LOCK TABLE erased_users IN SHARE MODE`)
	require.NoError(t, err)
	var lockPID int
	require.NoError(t, lock.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&lockPID))

	code, body := f.api(t, http.MethodPost, "/v1/erasures",
		map[string]any{"userId": "bob", "reason": "request of bob, ticket 24", "override": "legal_hold"})
	require.Equal(t, http.StatusAccepted, code, "%s", body)
	var accepted struct{ ErasureID, Status string }
	require.NoError(t, json.Unmarshal(body, &accepted))
	require.Equal(t, duplicate.ErasureStatusPending, accepted.Status)
	id := accepted.ErasureID

	var removalPID int
	var wrote bool
	waitFor(t, 15*time.Second, func() bool {
		err := f.pool.QueryRow(ctx, `SELECT pid, backend_xid IS NOT NULL FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(pid)) AND query LIKE '%erased_users%'`, lockPID).Scan(&removalPID, &wrote)
		return err == nil
	}, "doppel's removal waiting on the tombstones' table")
	require.True(t, wrote, "the removal has written (its DELETEs and UPDATEs ran) when it waits")
	p.kill9(t)

	// What a reader must see until the removal commits: bob's rows as before, and the job's.
	pending := append(slices.Clone(before), "erasures.user_id (1 rows)")
	slices.Sort(pending)
	unchanged := func(when string) {
		t.Helper()
		require.Equal(t, pending, testinfra.Mentions(t, f.pool, "bob"), "%s: every row naming bob as before", when)
		require.Equal(t, countsBefore, rowCounts(), when)
		require.Equal(t, ringOfFour, members("alice"), "%s: the ring of four intact", when)
		require.Equal(t, duplicate.ErasureStatusPending, status(id), when)
	}
	unchanged("doppel killed inside the removal")
	// The orphaned transaction gets its lock, and dies without committing: its client is gone.
	require.NoError(t, lock.Rollback(ctx))
	waitFor(t, 15*time.Second, func() bool {
		return f.count(t, fmt.Sprintf(`SELECT count(*) FROM pg_stat_activity WHERE pid = %d`, removalPID)) == 0
	}, "the killed process's backend gone")
	unchanged("the orphaned removal ended")

	// Kill B. The next process resumes the job at start; its removal commits; the vendor's
	// clear-data call is held at the gate.
	p = f.start(t)
	waitFor(t, 20*time.Second, func() bool {
		return status(id) == duplicate.ErasureStatusRemoved && gate.arrived.Load() > 0
	}, "the restarted process removed bob's rows and called clear-data")
	p.kill9(t)
	require.Equal(t, []string{"erasures.user_id (1 rows)"}, testinfra.Mentions(t, f.pool, "bob"),
		"doppel killed after the removal: only the job keeps bob's id, to publish it")
	require.Equal(t, duplicate.ErasureStatusRemoved, status(id))
	require.Equal(t, []string{"carol", "dave"}, members("carol"), "carol and dave keep their ring")
	require.Equal(t, []string{"alice"}, members("alice"), "alice lost her bridge: a ring of one")
	require.Zero(t, f.sim.Stats().Calls["clear-data"], "no clear-data call reached the vendor yet")

	// The third process finishes the job.
	gate.Open()
	p = f.start(t)
	var done struct {
		Status             string
		VendorSignatureIDs []string
		VendorCleared      []string
		LastError          *string
	}
	waitFor(t, 30*time.Second, func() bool {
		code, body := f.api(t, http.MethodGet, "/v1/erasures/"+id, nil)
		if code != http.StatusOK {
			return false
		}
		require.NoError(t, json.Unmarshal(body, &done))
		return done.Status == duplicate.ErasureStatusDone
	}, "the erasure done after the second restart")
	require.ElementsMatch(t, bobsSignatures, done.VendorSignatureIDs)
	require.ElementsMatch(t, bobsSignatures, done.VendorCleared, "both of bob's verifications cleared at the vendor")
	require.Empty(t, testinfra.Mentions(t, f.pool, "bob"), "bob's id is nowhere")
	require.Equal(t, []string{"carol", "dave"}, members("dave"))
	require.Equal(t, []string{"alice"}, members("alice"))
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM duplicate_links`), "only carol-dave is left")
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM erased_users`))
	require.Equal(t, 2, f.count(t, `SELECT count(*) FROM erased_signatures`))
	require.Zero(t, f.count(t, `SELECT count(*) FROM rings r, doppel_ring_summary(r.ring_key) s
WHERE (r.link_count, r.open_alerts, r.first_seen_at, r.last_seen_at, r.newest_user_id, r.newest_at)
    IS DISTINCT FROM (s.link_count, s.open_alerts, s.first_seen_at, s.last_seen_at, s.newest_user_id, s.newest_at)`),
		"every ring's summary agrees with a recount")

	// subject_erased at least once (a kill between the publish and the mark publishes it again).
	events := testinfra.ReadAllFrom(t, f.brokers, erasures, 1, 30*time.Second)
	require.NotEmpty(t, events, "subject_erased on %s", erasures)
	for _, m := range events {
		require.Equal(t, "bob", string(m.Key))
		var ev erasure.Event
		require.NoError(t, json.Unmarshal(m.Value, &ev))
		require.Equal(t, erasure.EventType, ev.Type)
		require.Equal(t, id, ev.ErasureID)
		require.Equal(t, "bob", ev.UserID)
	}
	p.alive(t)
	t.Logf("two kill -9 in one erasure, finished by the third process: %s", time.Since(started).Round(time.Millisecond))
}

// api calls the newest doppel process's HTTP API with the privacy officer's key.
func (f *fixture) api(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		in = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+f.http+path, in)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+privacyOfficerKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error()) // not listening yet
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
