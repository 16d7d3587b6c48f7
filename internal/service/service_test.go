package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/service"
)

// fixture is one isolated Doppel: its own schema, topics, consumer group and simulator.
type fixture struct {
	cfg  config.Config
	pool *pgxpool.Pool
	sim  *advancesim.Sim
}

func setup(t *testing.T, simCfg advancesim.Config) *fixture {
	t.Helper()
	dbURL, pool := testinfra.Database(t)
	sim, simURL := testinfra.Sim(t, simCfg)
	cfg := config.Default()
	cfg.DatabaseURL = dbURL
	cfg.KafkaBrokers = testinfra.Brokers(t)
	cfg.KafkaGroupID = testinfra.UniqueName("doppel")
	// Created here, with leaders elected, so the test can produce before the service is up.
	topics := testinfra.Topics(t, 3, "idv.completed", "doppel.alerts", "idv.completed.dlq", "idv.started")
	cfg.TopicEvents, cfg.TopicAlerts, cfg.TopicDLQ, cfg.TopicStarted = topics[0], topics[1], topics[2], topics[3]
	cfg.TopicPartitions = 3
	cfg.AdvanceBaseURL = simURL
	cfg.AdvanceAccessKey = testinfra.SimAccessKey
	cfg.AdvanceSecretKey = testinfra.SimSecretKey
	cfg.AdvanceQPS = 0
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.CommitInterval = 50 * time.Millisecond
	cfg.RetryInitialInterval = 20 * time.Millisecond
	cfg.RetryMaxInterval = 200 * time.Millisecond
	cfg.RelayInterval = 100 * time.Millisecond
	cfg.ShutdownTimeout = 10 * time.Second
	require.NoError(t, cfg.Validate())
	return &fixture{cfg: cfg, pool: pool, sim: sim}
}

// start runs the real service until the returned stop function is called; stop fails the test if
// the service returned an error.
func (f *fixture) start(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- service.Run(ctx, f.cfg, log) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("service did not stop within 30s")
		}
	}
	t.Cleanup(stop)
	return stop
}

func event(sig, typ, userID string) kafka.Message {
	body := map[string]string{"signatureId": sig, "type": typ}
	if userID != "" {
		body["userId"] = userID
	}
	b, _ := json.Marshal(body)
	return kafka.Message{Key: []byte(sig), Value: b}
}

func (f *fixture) countChecks(t *testing.T) int {
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM idv_checks`).Scan(&n))
	return n
}

func (f *fixture) waitForChecks(t *testing.T, want int, timeout time.Duration) {
	t.Helper()
	testinfra.Eventually(t, timeout, func() bool { return f.countChecks(t) >= want },
		"%d checks stored", want)
	require.Equal(t, want, f.countChecks(t))
}

func (f *fixture) links(t *testing.T) []string {
	rows, err := f.pool.Query(context.Background(),
		`SELECT user_id_low || '~' || user_id_high FROM duplicate_links ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func (f *fixture) outcomes(t *testing.T) map[string]string {
	return f.bySignature(t, `SELECT signature_id, outcome FROM idv_checks`)
}

// bySignature runs query, which selects a signatureId and one text column, into a map.
func (f *fixture) bySignature(t *testing.T, query string) map[string]string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), query)
	require.NoError(t, err)
	out := map[string]string{}
	var sig, value string
	_, err = pgx.ForEachRow(rows, []any{&sig, &value}, func() error { out[sig] = value; return nil })
	require.NoError(t, err)
	return out
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestPipelineFindsRingsStoresLinksAndPublishesAlerts(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	sim := f.sim
	// A ring of three sharing face F1, a pair on F2, a loner, a failed verification on F1, and a
	// user who verified twice with the same face (their own id must not become a link). Each
	// verification is registered before it completes; events arrive in completion order, as the
	// vendor sends them.
	register := func(user, face string) string { return testinfra.AddSession(t, sim, user, face, "INCOMPLETE") }
	a, b, c := register("alice", "F1"), register("bob", "F1"), register("carol", "F1")
	d, e := register("dave", "F2"), register("erin", "F2")
	lone := register("frank", "F3")
	failed := register("mallory", "F1")
	again1, again2 := register("grace", "F4"), register("grace", "F4")

	stop := f.start(t)
	defer stop()
	// bob's submission finishes first; his verification completes later.
	testinfra.Produce(t, f.cfg.TopicEvents, event(b, "SUBMIT_COMPLETED", ""))
	completes := func(sig, verdict string, ev kafka.Message) {
		f.complete(t, sig, verdict)
		testinfra.Produce(t, f.cfg.TopicEvents, ev)
	}
	completes(a, "PASS", event(a, "COMPLETED", "alice"))
	completes(b, "PASS", event(b, "COMPLETED", "")) // thin callback body: get-result supplies bob's id
	completes(c, "PASS", event(c, "COMPLETED", "carol"))
	completes(d, "PASS", event(d, "COMPLETED", "dave"))
	completes(e, "PASS", event(e, "COMPLETED", "erin"))
	completes(lone, "PASS", event(lone, "COMPLETED", "frank"))
	completes(failed, "FAIL", event(failed, "COMPLETED", "")) // get-result says FAIL: no search
	completes(again1, "PASS", event(again1, "COMPLETED", "grace"))
	testinfra.Produce(t, f.cfg.TopicEvents,
		event(again2, "SUBMIT_COMPLETED", "grace"), // grace's second verification is not complete yet
		kafka.Message{Key: []byte("junk"), Value: []byte(`{"signatureId": "x"`)},
		kafka.Message{Key: []byte("nosig"), Value: []byte(`{"type":"COMPLETED"}`), Headers: []kafka.Header{{Key: "trace", Value: []byte("t-1")}}},
	)
	f.waitForChecks(t, 9, 60*time.Second)

	testinfra.Eventually(t, 30*time.Second, func() bool { return f.outcome(t, b) != "skipped" },
		"bob's COMPLETED replaces his notice")
	// Each verification sees those that completed before it: the first of a face finds nobody.
	require.Equal(t, map[string]string{
		a: "no_duplicates", b: "duplicates_found", c: "duplicates_found",
		d: "no_duplicates", e: "duplicates_found", lone: "no_duplicates",
		failed: "not_passed", again1: "no_duplicates", again2: "skipped",
	}, f.outcomes(t))
	require.Equal(t, []string{"alice~bob", "alice~carol", "bob~carol", "dave~erin"}, f.links(t))

	stats := sim.Stats()
	for sig, n := range stats.FaceSearchBySignature {
		require.EqualValues(t, 1, n, "signature %s searched %d times", sig, n)
	}
	require.Zero(t, stats.FaceSearchBySignature[failed], "a FAIL verification is never searched")
	require.Zero(t, stats.FaceSearchBySignature[again2], "SUBMIT_COMPLETED is never searched")

	// Every alert in the outbox reaches the topic; each new pair is announced exactly once.
	var stored int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts`).Scan(&stored))
	msgs := testinfra.ReadAll(t, f.cfg.TopicAlerts, stored, 30*time.Second)
	require.Len(t, msgs, stored)
	announced := map[string]int{}
	for _, m := range msgs {
		var al duplicate.Alert
		require.NoError(t, json.Unmarshal(m.Value, &al))
		require.Equal(t, "duplicate_face", al.Type)
		require.Equal(t, 1, al.Version)
		require.NotEmpty(t, al.AlertID)
		require.NotEmpty(t, al.VendorTransactionID)
		require.Equal(t, al.UserID, string(m.Key), "alerts are keyed by userId")
		require.Subset(t, al.MatchedUserIDs, al.NewMatchedUserIDs)
		require.NotContains(t, al.MatchedUserIDs, al.UserID)
		for _, other := range al.NewMatchedUserIDs {
			lo, hi := duplicate.Pair(al.UserID, other)
			announced[lo+"~"+hi]++
		}
	}
	require.Equal(t, map[string]int{"alice~bob": 1, "alice~carol": 1, "bob~carol": 1, "dave~erin": 1}, announced)
	testinfra.Eventually(t, 10*time.Second, func() bool {
		var pending int
		_ = f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts WHERE published_at IS NULL`).Scan(&pending)
		return pending == 0
	}, "every alert marked published")

	// The two unusable messages are dead-lettered with their bytes, headers and reason.
	dead := testinfra.ReadAll(t, f.cfg.TopicDLQ, 2, 30*time.Second)
	require.Len(t, dead, 2)
	reasons := map[string]kafka.Message{}
	for _, m := range dead {
		reasons[header(m, consumer.HeaderReason)] = m
		require.Equal(t, f.cfg.TopicEvents, header(m, consumer.HeaderSourceTopic))
		require.NotEmpty(t, header(m, consumer.HeaderSourceOffset))
	}
	require.Contains(t, reasons, duplicate.ReasonInvalidJSON)
	require.Contains(t, reasons, duplicate.ReasonMissingSignatureID)
	require.Equal(t, `{"signatureId": "x"`, string(reasons[duplicate.ReasonInvalidJSON].Value))
	require.Equal(t, "t-1", header(reasons[duplicate.ReasonMissingSignatureID], "trace"))

	// The operator sees the same story on /metrics, on the admin listener only.
	resp, err := http.Get("http://" + f.cfg.AdminAddr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	for _, line := range []string{
		`doppel_event_outcomes_total{outcome="duplicates_found"} 3`,
		`doppel_event_outcomes_total{outcome="no_duplicates"} 4`,
		`doppel_event_outcomes_total{outcome="skipped"} 2`,
		`doppel_event_outcomes_total{outcome="not_passed"} 1`,
		`doppel_events_consumed_total 12`,
		`doppel_dead_letters_total{reason="invalid_json"} 1`,
		fmt.Sprintf(`doppel_alerts_published_total %d`, stored),
		`doppel_vendor_calls_total{code="SUCCESS",endpoint="face-search",region="default"} 7`,
		`doppel_outbox_backlog 0`,
	} {
		require.Contains(t, page, line)
	}
	require.Regexp(t, `doppel_consumer_lag\{partition="0"\} 0`, page)
}

func TestTheSameEventTwiceIsStoredAndBilledOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	x := testinfra.AddSession(t, f.sim, "xavier", "F9", "PASS")
	y := testinfra.AddSession(t, f.sim, "yolanda", "F9", "PASS")
	stop := f.start(t)
	defer stop()

	testinfra.Produce(t, f.cfg.TopicEvents, event(x, "COMPLETED", "xavier"), event(x, "COMPLETED", "xavier"))
	f.waitForChecks(t, 1, 60*time.Second)
	// And once more after the first is surely stored, as a vendor callback retry would.
	testinfra.Produce(t, f.cfg.TopicEvents, event(x, "COMPLETED", "xavier"), event(y, "COMPLETED", "yolanda"))
	f.waitForChecks(t, 2, 60*time.Second)
	time.Sleep(500 * time.Millisecond) // let any wrongly repeated search show up

	require.EqualValues(t, 1, f.sim.Stats().FaceSearchBySignature[x])
	require.Equal(t, []string{"xavier~yolanda"}, f.links(t))
	var seen int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT seen_count FROM duplicate_links`).Scan(&seen))
	require.Equal(t, 1, seen, "seen by yolanda's search (xavier completed first and saw nobody), never from a redelivery")
	var alerts int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts`).Scan(&alerts))
	require.Equal(t, 1, alerts)
}

func TestAConsumerStoppedMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{Latency: 5 * time.Millisecond})
	f.cfg.Workers = 4
	const users = 300
	msgs := make([]kafka.Message, 0, users)
	sigs := make([]string, 0, users)
	for i := range users {
		user := fmt.Sprintf("user-%03d", i)
		sig := testinfra.AddSession(t, f.sim, user, fmt.Sprintf("face-%d", i/3), "PASS") // rings of three
		sigs = append(sigs, sig)
		msgs = append(msgs, event(sig, "COMPLETED", user))
	}

	stop := f.start(t)
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)
	testinfra.Eventually(t, 60*time.Second, func() bool { return f.countChecks(t) >= 60 }, "a first part stored")
	stop()
	partial := f.countChecks(t)
	require.Less(t, partial, users, "the test must stop the consumer mid-stream")

	stop = f.start(t)
	defer stop()
	f.waitForChecks(t, users, 90*time.Second)

	stats := f.sim.Stats()
	for _, sig := range sigs {
		require.EqualValues(t, 1, stats.FaceSearchBySignature[sig], "signature %s", sig)
	}
	links := f.links(t)
	require.Len(t, links, users, "each ring of three has three links")
	sort.Strings(links)
	require.Equal(t, "user-000~user-001", links[0])
}

// complete finishes a session registered INCOMPLETE, as the vendor does when the whole
// verification is over.
func (f *fixture) complete(t *testing.T, sig, overallResult string) {
	t.Helper()
	require.NoError(t, f.sim.Complete(sig, overallResult))
}

func (f *fixture) outcome(t *testing.T, sig string) string {
	return f.outcomes(t)[sig]
}

func (f *fixture) waitForOutcome(t *testing.T, sig, want string, timeout time.Duration) {
	t.Helper()
	var got string
	defer func() {
		if t.Failed() {
			t.Logf("%s is stored as %q", sig, got)
		}
	}()
	testinfra.Eventually(t, timeout, func() bool { got = f.outcome(t, sig); return got == want },
		"%s stored as %s", sig, want)
}

// TestARingOfTwoWhoseSecondMemberSendsSubmitCompletedFirst follows the vendor's documented
// callback order: SUBMIT_COMPLETED when the user's submission finishes, COMPLETED when the whole
// verification does. The notice must not stop the COMPLETED that follows from being searched.
func TestARingOfTwoWhoseSecondMemberSendsSubmitCompletedFirst(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	stop := f.start(t)
	defer stop()

	// alice verified earlier: her verification is complete and checked.
	alice := testinfra.AddSession(t, f.sim, "alice", "F1", "PASS")
	testinfra.Produce(t, f.cfg.TopicEvents, event(alice, "COMPLETED", ""))
	f.waitForOutcome(t, alice, "no_duplicates", 60*time.Second)

	// bob, with alice's face, submits; the vendor has not finished his verification yet.
	bob := testinfra.AddSession(t, f.sim, "bob", "F1", "INCOMPLETE")
	testinfra.Produce(t, f.cfg.TopicEvents, event(bob, "SUBMIT_COMPLETED", ""))
	f.waitForOutcome(t, bob, "skipped", 60*time.Second)

	// Then the vendor completes it and sends COMPLETED.
	f.complete(t, bob, "PASS")
	testinfra.Produce(t, f.cfg.TopicEvents, event(bob, "COMPLETED", ""))
	f.waitForOutcome(t, bob, "duplicates_found", 30*time.Second)
	require.Equal(t, []string{"alice~bob"}, f.links(t))

	msgs := testinfra.ReadAll(t, f.cfg.TopicAlerts, 1, 30*time.Second)
	require.Len(t, msgs, 1)
	var al duplicate.Alert
	require.NoError(t, json.Unmarshal(msgs[0].Value, &al))
	require.Equal(t, bob, al.SignatureID)
	require.Equal(t, "bob", al.UserID)
	require.Equal(t, []string{"alice"}, al.NewMatchedUserIDs)

	// The same COMPLETED again (a vendor retry) is stored already: billed once in all.
	testinfra.Produce(t, f.cfg.TopicEvents, event(bob, "COMPLETED", ""), event(bob, "SUBMIT_COMPLETED", ""))
	time.Sleep(time.Second)
	require.Equal(t, "duplicates_found", f.outcome(t, bob), "a late notice does not overwrite a final outcome")
	stats := f.sim.Stats()
	require.Equal(t, map[string]int64{alice: 1, bob: 1}, stats.FaceSearchBySignature)
}

// TestACompletedWhoseVerdictIsStillIncompleteIsCheckedAgain covers a COMPLETED whose get-result
// still says INCOMPLETE: it is recorded, not final, and the next COMPLETED runs the search.
func TestACompletedWhoseVerdictIsStillIncompleteIsCheckedAgain(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	stop := f.start(t)
	defer stop()

	alice := testinfra.AddSession(t, f.sim, "alice", "F1", "PASS")
	testinfra.Produce(t, f.cfg.TopicEvents, event(alice, "COMPLETED", ""))
	f.waitForOutcome(t, alice, "no_duplicates", 60*time.Second)

	bob := testinfra.AddSession(t, f.sim, "bob", "F1", "INCOMPLETE")
	testinfra.Produce(t, f.cfg.TopicEvents, event(bob, "COMPLETED", ""))
	f.waitForOutcome(t, bob, "incomplete", 60*time.Second)
	require.Zero(t, f.sim.Stats().FaceSearchBySignature[bob], "no search before the verdict")

	f.complete(t, bob, "PASS")
	testinfra.Produce(t, f.cfg.TopicEvents, event(bob, "COMPLETED", ""))
	f.waitForOutcome(t, bob, "duplicates_found", 30*time.Second)
	require.Equal(t, []string{"alice~bob"}, f.links(t))
	var alerts int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts WHERE user_id = 'bob'`).Scan(&alerts))
	require.Equal(t, 1, alerts)

	// A final FAIL verdict stays final: its later events are not checked again.
	carol := testinfra.AddSession(t, f.sim, "carol", "F1", "INCOMPLETE")
	f.complete(t, carol, "FAIL")
	testinfra.Produce(t, f.cfg.TopicEvents, event(carol, "COMPLETED", ""))
	f.waitForOutcome(t, carol, "not_passed", 60*time.Second)
	require.Equal(t, map[string]int64{alice: 1, bob: 1}, f.sim.Stats().FaceSearchBySignature)
}

// One verification published six times under six keys, one copy on each of six partitions (a
// careless or hostile producer): routed by the decoded signatureId, never by the message key, the
// copies run one after another and the verification is searched, and billed, once. Keyed by the
// message key, the six ran at once and each searched.
func TestOneSignatureIDUnderSixKeysOnSixPartitionsIsBilledOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{Latency: 100 * time.Millisecond})
	f.cfg.TopicEvents = testinfra.Topics(t, 6, "idv.completed.six")[0]
	f.cfg.TopicPartitions = 6
	f.cfg.AdminAddr = testinfra.FreeAddr(t)
	x := testinfra.AddSession(t, f.sim, "xena", "F6", "PASS")
	stop := f.start(t)
	defer stop()

	var copies []kafka.Message
	for i := range 6 {
		m := event(x, "COMPLETED", "xena")
		m.Key = []byte(fmt.Sprintf("producer-key-%d", i))
		copies = append(copies, m)
	}
	for i, m := range copies { // copy i straight to partition i's leader
		// A topic just created may not have elected every partition's leader yet: the broker
		// answers Not Leader For Partition until it has, so the write is retried.
		var err error
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			var conn *kafka.Conn
			if conn, err = kafka.DialLeader(context.Background(), "tcp", f.cfg.KafkaBrokers[0], f.cfg.TopicEvents, i); err == nil {
				_, err = conn.WriteMessages(m)
				_ = conn.Close()
			}
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		require.NoError(t, err, "copy %d to partition %d", i, i)
	}
	partitions := map[int]bool{}
	for _, m := range testinfra.ReadAll(t, f.cfg.TopicEvents, 6, 30*time.Second) {
		partitions[m.Partition] = true
	}
	require.Len(t, partitions, 6, "one copy on each partition")

	f.waitForChecks(t, 1, 60*time.Second)
	testinfra.Eventually(t, 30*time.Second, func() bool {
		m := regexp.MustCompile(`\ndoppel_event_key_mismatches_total (\d+)\n`).FindStringSubmatch(metricsPage(t, f.cfg.AdminAddr))
		if m == nil {
			return false
		}
		n, _ := strconv.Atoi(m[1])
		return n >= 6
	}, "six key mismatches counted")
	time.Sleep(500 * time.Millisecond) // let any wrongly repeated search show up
	require.EqualValues(t, 1, f.sim.Stats().FaceSearchBySignature[x], "billed once")
	require.Equal(t, map[string]string{x: string(duplicate.OutcomeNoDuplicates)}, f.outcomes(t))
}
