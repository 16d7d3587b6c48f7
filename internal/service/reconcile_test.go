package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// reconcileFixture is a running Doppel with short reconciliation settings and the API on.
func reconcileFixture(t *testing.T, after, interval, giveUp time.Duration, enroll bool) (*fixture, string) {
	t.Helper()
	f := setup(t, advancesim.Config{})
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	f.cfg.APIKeys = "analyst:read+review:" + hexSHA256(analystKey)
	f.cfg.ReconcileAfter, f.cfg.ReconcileInterval, f.cfg.ReconcileGiveUp = after, interval, giveUp
	f.cfg.EnrollFailed = enroll
	require.NoError(t, f.cfg.Validate())
	f.start(t)
	base := "http://" + f.cfg.HTTPAddr
	testinfra.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "/healthz answers")
	return f, base
}

func startedEvent(sig, userID string, startedAt *time.Time) kafka.Message {
	body := map[string]any{"signatureId": sig, "userId": userID, "region": "Default"}
	if startedAt != nil {
		body["startedAt"] = startedAt.Format(time.RFC3339Nano)
	}
	b, _ := json.Marshal(body)
	return kafka.Message{Key: []byte(sig), Value: b}
}

// statuses returns the started verifications' status by signatureId.
func (f *fixture) statuses(t *testing.T) map[string]string {
	return f.bySignature(t, `SELECT signature_id, status FROM started_verifications`)
}

func countOf(m map[string]string, want string) int {
	n := 0
	for _, v := range m {
		if v == want {
			n++
		}
	}
	return n
}

// waitConsumed waits until the consumer group has committed everything on the events topic: every
// event produced so far has been handled.
func (f *fixture) waitConsumed(t *testing.T) {
	t.Helper()
	testinfra.Eventually(t, 30*time.Second, func() bool {
		lag, err := consumer.Lag(context.Background(), f.cfg.KafkaBrokers, f.cfg.KafkaGroupID, f.cfg.TopicEvents)
		if err != nil {
			return false
		}
		for _, n := range lag {
			if n > 0 {
				return false
			}
		}
		return true
	}, "every event handled")
}

func (f *fixture) alertCount(t *testing.T, sig string) int {
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts WHERE signature_id = $1`, sig).Scan(&n))
	return n
}

// The scenario: 100 started verifications, 90 completed with their callback, 10 completed
// at the vendor whose callback never came (two of them in rings), 5 never completed.
func TestVerificationsWithoutCallbacksAreFoundByPolling(t *testing.T) {
	t.Parallel()
	const after, interval, giveUp = 3 * time.Second, 2 * time.Second, 12 * time.Second
	f, base := reconcileFixture(t, after, interval, giveUp, false)

	var sessions []advancesim.Session
	add := func(user, face string) {
		sessions = append(sessions, advancesim.Session{UserID: user, Face: face, OverallResult: "INCOMPLETE"})
	}
	for i := range 90 {
		face := fmt.Sprintf("face-cb-%03d", i)
		switch i {
		case 0:
			face = "ring-a"
		case 1:
			face = "ring-b"
		}
		add(fmt.Sprintf("cb-%03d", i), face)
	}
	for i := range 10 {
		face := fmt.Sprintf("face-lost-%d", i)
		switch i {
		case 0:
			face = "ring-a"
		case 1:
			face = "ring-b"
		}
		add(fmt.Sprintf("lost-%d", i), face)
	}
	for i := range 5 {
		add(fmt.Sprintf("never-%d", i), fmt.Sprintf("face-never-%d", i))
	}
	sigs, err := f.sim.AddSessions(sessions)
	require.NoError(t, err)
	withCallback, lost, never := sigs[:90], sigs[90:100], sigs[100:]

	// The vendor finishes the 90 (10 of them fail) and the 10 lost ones, before the first poll is
	// due, so each is found at its first poll.
	var completed []kafka.Message
	for i, sig := range withCallback {
		verdict := "PASS"
		if i >= 80 {
			verdict = "FAIL"
		}
		require.NoError(t, f.sim.Complete(sig, verdict))
		completed = append(completed, event(sig, "COMPLETED", ""))
	}
	for i, sig := range lost {
		verdict := "PASS"
		if i == 9 {
			verdict = "FAIL" // a final FAIL found by polling is recorded too
		}
		require.NoError(t, f.sim.Complete(sig, verdict))
	}

	// The callbacks of the 90 arrive and are handled first: on a loaded machine the main path could
	// otherwise take longer than AFTER, and polling would rightly find them before their callbacks
	// were handled. Those of the 10 never arrive.
	testinfra.Produce(t, f.cfg.TopicEvents, completed...)
	f.waitForChecks(t, 90, 2*time.Minute)

	// Every verification's start is announced; half of them carry startedAt. Two bad messages go
	// to the dead-letter topic with their reason.
	t0 := time.Now()
	var started []kafka.Message
	for i, sig := range sigs {
		var at *time.Time
		if i%2 == 0 {
			at = &t0
		}
		started = append(started, startedEvent(sig, sessions[i].UserID, at))
	}
	started = append(started, kafka.Message{Key: []byte("bad"), Value: []byte(`{"signatureId":`)},
		kafka.Message{Key: []byte("nosig"), Value: []byte(`{"userId":"u"}`)})
	testinfra.Produce(t, f.cfg.TopicStarted, started...)

	// How soon each was found is checked below from the stored times; the wait itself is generous
	// for a loaded machine.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st := f.statuses(t)
		recovered, completed := countOf(st, "recovered"), countOf(st, "completed")
		if recovered == 10 && completed == 90 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want 10 recovered by polling and 90 completed by their callback, have %d and %d", recovered, completed)
		}
	}

	st := f.statuses(t)
	require.Len(t, st, 105)
	for _, sig := range lost {
		require.Equal(t, "recovered", st[sig])
	}
	for _, sig := range never {
		require.Equal(t, "pending", st[sig])
	}
	// Each was found within AFTER + one INTERVAL: by a poll claimed no later than that after its
	// start, or after Doppel read the started event when it came later than its startedAt + AFTER
	// (a loaded machine's consumer can join its group late).
	var late time.Duration
	require.NoError(t, f.pool.QueryRow(context.Background(), `
SELECT coalesce(max(extract(epoch FROM last_polled_at - greatest(started_at, received_at - $1::interval))), 0) * interval '1 second'
FROM started_verifications WHERE status = 'recovered'`, after).Scan(&late))
	require.LessOrEqual(t, late, after+interval, "found by polling within AFTER + INTERVAL")

	// Processed exactly as a COMPLETED event: the rings' links and alerts, the check marked.
	outcomes := f.outcomes(t)
	rows, err := f.pool.Query(context.Background(), `SELECT signature_id, found_by FROM idv_checks`)
	require.NoError(t, err)
	foundBy := map[string]string{}
	var sig, by string
	_, err = pgx.ForEachRow(rows, []any{&sig, &by}, func() error { foundBy[sig] = by; return nil })
	require.NoError(t, err)
	for i, sig := range lost {
		require.Equal(t, "polling", foundBy[sig], sig)
		want := "no_duplicates"
		switch {
		case i < 2:
			want = "duplicates_found"
		case i == 9:
			want = "not_passed"
		}
		require.Equal(t, want, outcomes[sig], sig)
	}
	for i, sig := range withCallback {
		require.Equal(t, "event", foundBy[sig], sig)
		want := "no_duplicates"
		if i >= 80 {
			want = "not_passed"
		}
		require.Equal(t, want, outcomes[sig], sig)
	}
	require.Equal(t, []string{"cb-000~lost-0", "cb-001~lost-1"}, f.links(t))
	require.Equal(t, 1, f.alertCount(t, lost[0]))
	require.Equal(t, 1, f.alertCount(t, lost[1]))

	var verdicts []string
	rows, err = f.pool.Query(context.Background(),
		`SELECT verdict FROM started_verifications WHERE status = 'recovered' ORDER BY verdict`)
	require.NoError(t, err)
	verdicts, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, append([]string{"FAIL"}, slices.Repeat([]string{"PASS"}, 9)...), verdicts)

	// Billed once each: 80 passes with callbacks and the 9 passes found by polling.
	billed := f.sim.Stats().FaceSearchBySignature
	require.Len(t, billed, 89)
	for _, n := range billed {
		require.EqualValues(t, 1, n)
	}

	// 10 of 100 recovered by polling crosses 5%: callbacks_missing is published next to the two
	// duplicate_face alerts.
	msgs := testinfra.ReadAll(t, f.cfg.TopicAlerts, 3, 30*time.Second)
	byType := map[string][]kafka.Message{}
	for _, m := range msgs {
		byType[header(m, "alert-type")] = append(byType[header(m, "alert-type")], m)
	}
	require.Len(t, byType["duplicate_face"], 2)
	require.Len(t, byType["callbacks_missing"], 1)
	var cm map[string]any
	require.NoError(t, json.Unmarshal(byType["callbacks_missing"][0].Value, &cm))
	require.Equal(t, "callbacks_missing", cm["type"])
	// It is raised by the round in which the share first crossed 5%: on a loaded machine that can
	// be before every lost verification is found, so the figures are those of that round.
	recovered, settled := cm["recoveredByPolling"].(float64), cm["settled"].(float64)
	require.GreaterOrEqual(t, recovered, 1.0)
	require.LessOrEqual(t, recovered, 10.0)
	require.Greater(t, settled, 0.0)
	require.LessOrEqual(t, settled, 100.0)
	require.InDelta(t, recovered/settled, cm["ratio"], 1e-9)
	require.GreaterOrEqual(t, cm["ratio"], 0.05)
	require.NotEmpty(t, header(byType["callbacks_missing"][0], "alert-id"))

	// The API and the metrics say how many are pending, recovered and expired.
	status, body := call(t, http.MethodGet, base+"/v1/reconciliation", analystKey, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	require.JSONEq(t, `{"pending":5,"completed":90,"recovered":10,"expired":0,"recoveredLastHour":10,
		"settledLastHour":100,"recoveredRatio":0.1,"alertRatio":0.05}`, string(body))
	status, _ = call(t, http.MethodGet, base+"/v1/reconciliation", "", nil)
	require.Equal(t, http.StatusUnauthorized, status)
	status, body = call(t, http.MethodGet, base+"/v1/checks/"+lost[0], analystKey, nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"foundBy":"polling"`)
	resp, err := http.Get("http://" + f.cfg.AdminAddr + "/metrics")
	require.NoError(t, err)
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metricsText), `doppel_reconcile_settled_total{status="recovered"} 10`)

	// The bad started messages are dead letters with their reason and source topic.
	letters := testinfra.ReadAll(t, f.cfg.TopicDLQ, 2, 30*time.Second)
	require.Len(t, letters, 2)
	reasons := []string{header(letters[0], consumer.HeaderReason), header(letters[1], consumer.HeaderReason)}
	require.ElementsMatch(t, []string{duplicate.ReasonInvalidJSON, duplicate.ReasonMissingSignatureID}, reasons)
	require.Equal(t, f.cfg.TopicStarted, header(letters[0], consumer.HeaderSourceTopic))

	// A late callback after polling settled a verification: nothing billed again, no second alert.
	testinfra.Produce(t, f.cfg.TopicEvents, event(lost[0], "COMPLETED", ""), event(lost[2], "COMPLETED", ""))
	f.waitConsumed(t)
	require.Equal(t, billed, f.sim.Stats().FaceSearchBySignature, "a late callback bills nothing more")
	require.Equal(t, 1, f.alertCount(t, lost[0]), "and raises no second alert")
	st = f.statuses(t)
	require.Equal(t, "recovered", st[lost[0]])

	// The 5 never completed are expired after GIVE_UP, and polled no more.
	testinfra.Eventually(t, time.Until(t0.Add(giveUp+10*time.Second)), func() bool {
		return countOf(f.statuses(t), "expired") == 5
	}, "5 expired")
	for _, sig := range never {
		require.Equal(t, "expired", f.statuses(t)[sig])
	}
	var polls int
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT sum(polls) FROM started_verifications WHERE status = 'expired'`).Scan(&polls))
	require.LessOrEqual(t, polls, 5*int(1+(giveUp-after)/interval+1), "each polled at most once per interval")
	require.Positive(t, polls)
}

// enrolmentScenario: a fraudster fails verification with face X; later two accounts pass with the
// same face. It returns the signatureIds of the failed attempt and the two passes.
func enrolmentScenario(t *testing.T, f *fixture) (failed, faceless, first, second string) {
	t.Helper()
	ids, err := f.sim.AddSessions([]advancesim.Session{
		{UserID: "fraudster", Face: "X", OverallResult: "INCOMPLETE"},
		{UserID: "faceless", OverallResult: "INCOMPLETE"},
		{UserID: "mule-1", Face: "X", OverallResult: "INCOMPLETE"},
		{UserID: "mule-2", Face: "X", OverallResult: "INCOMPLETE"},
	})
	require.NoError(t, err)
	failed, faceless, first, second = ids[0], ids[1], ids[2], ids[3]
	require.NoError(t, f.sim.Complete(failed, "FAIL"))
	require.NoError(t, f.sim.Complete(faceless, "FAIL"))
	testinfra.Produce(t, f.cfg.TopicEvents, event(failed, "COMPLETED", ""), event(faceless, "COMPLETED", ""))
	f.waitForChecks(t, 2, 30*time.Second)
	return failed, faceless, first, second
}

func (f *fixture) pass(t *testing.T, sig string) {
	t.Helper()
	require.NoError(t, f.sim.Complete(sig, "PASS"))
	testinfra.Produce(t, f.cfg.TopicEvents, event(sig, "COMPLETED", ""))
	testinfra.Eventually(t, 30*time.Second, func() bool {
		o := f.outcomes(t)[sig]
		return o == "duplicates_found" || o == "no_duplicates"
	}, "%s searched", sig)
}

func TestWithEnrolmentAFailedAttemptIsEnrolledOnceAndALaterPassLinksToIt(t *testing.T) {
	t.Parallel()
	f, _ := reconcileFixture(t, time.Hour, 10*time.Minute, 168*time.Hour, true)
	failed, faceless, first, second := enrolmentScenario(t, f)

	var enrolledAt *time.Time
	testinfra.Eventually(t, 30*time.Second, func() bool {
		require.NoError(t, f.pool.QueryRow(context.Background(),
			`SELECT enrolled_at FROM idv_checks WHERE signature_id = $1`, failed).Scan(&enrolledAt))
		return enrolledAt != nil
	}, "the failed attempt enrolled")
	var refusal string
	testinfra.Eventually(t, 30*time.Second, func() bool {
		require.NoError(t, f.pool.QueryRow(context.Background(),
			`SELECT coalesce(enroll_error, '') FROM idv_checks WHERE signature_id = $1`, faceless).Scan(&refusal))
		return refusal != ""
	}, "the vendor's refusal recorded")
	require.Contains(t, refusal, "PARAMETER_ERROR")

	f.pass(t, first)
	f.pass(t, second)
	require.Equal(t, "duplicates_found", f.outcomes(t)[first], "face search finds the enrolled failed attempt")

	rows, err := f.pool.Query(context.Background(),
		`SELECT user_id_low || '~' || user_id_high, reaches_failed_attempt FROM duplicate_links ORDER BY 1`)
	require.NoError(t, err)
	links := map[string]bool{}
	var pair string
	var reaches bool
	_, err = pgx.ForEachRow(rows, []any{&pair, &reaches}, func() error { links[pair] = reaches; return nil })
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"fraudster~mule-1": true, "fraudster~mule-2": true, "mule-1~mule-2": false}, links)

	msgs := testinfra.ReadAll(t, f.cfg.TopicAlerts, 2, 30*time.Second)
	require.Len(t, msgs, 2)
	bySig := map[string]duplicate.Alert{}
	for _, m := range msgs {
		var a duplicate.Alert
		require.NoError(t, json.Unmarshal(m.Value, &a))
		bySig[a.SignatureID] = a
	}
	require.Equal(t, []string{"fraudster"}, bySig[first].MatchedFailedUserIDs)
	require.Equal(t, []string{"fraudster"}, bySig[second].MatchedFailedUserIDs, "mule-1 passed: only the failed attempt is named")
	require.ElementsMatch(t, []string{"fraudster", "mule-1"}, bySig[second].MatchedUserIDs)

	// Enrolled once, however many rounds pass; the refused one is not asked again.
	time.Sleep(time.Second)
	st := f.sim.Stats()
	require.Equal(t, map[string]int64{failed: 1}, st.EnrollBySignature)
	require.EqualValues(t, 2, st.Calls["face-search-enroll"])
}

func TestWithoutEnrolmentNothingIsEnrolled(t *testing.T) {
	t.Parallel()
	f, _ := reconcileFixture(t, time.Hour, 10*time.Minute, 168*time.Hour, false)
	failed, _, first, _ := enrolmentScenario(t, f)
	f.pass(t, first)
	require.Equal(t, "no_duplicates", f.outcomes(t)[first], "a failed face is not searchable unless enrolled")
	var enrolled int
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM idv_checks WHERE enrolled_at IS NOT NULL OR enroll_error IS NOT NULL`).Scan(&enrolled))
	require.Zero(t, enrolled)
	require.Zero(t, f.sim.Stats().Calls["face-search-enroll"])
	require.Equal(t, "not_passed", f.outcomes(t)[failed])
}

// A callback that arrives while polling finds the same verification (a consumer lagging by more
// than DOPPEL_RECONCILE_AFTER, or a callback just late) is searched and billed once: polling hands
// the verification to the events topic, where it waits behind the callback. Before, polling
// searched it itself, at the same moment as the main path, and the vendor billed both.
func TestACallbackRacingItsPollIsBilledOnce(t *testing.T) {
	t.Parallel()
	const latency = 1500 * time.Millisecond // each vendor call: the two paths overlap for seconds
	f := setup(t, advancesim.Config{Latency: latency})
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	f.cfg.ReconcileAfter, f.cfg.ReconcileInterval, f.cfg.ReconcileGiveUp = time.Second, 2*time.Second, time.Hour
	require.NoError(t, f.cfg.Validate())
	ids, err := f.sim.AddSessions([]advancesim.Session{
		{UserID: "first", Face: "F", OverallResult: "INCOMPLETE"},
		{UserID: "second", Face: "F", OverallResult: "INCOMPLETE"},
	})
	require.NoError(t, err)
	first, second := ids[0], ids[1]
	f.start(t)
	f.pass(t, first) // the consumer is running and has searched once
	require.NoError(t, f.sim.Complete(second, "PASS"))

	// second started a minute ago, so its first poll is due as soon as its started event is read,
	// and its callback is produced at the same moment.
	startedAt := time.Now().Add(-time.Minute)
	testinfra.Produce(t, f.cfg.TopicStarted, startedEvent(second, "second", &startedAt))
	testinfra.Produce(t, f.cfg.TopicEvents, event(second, "COMPLETED", ""))
	testinfra.Eventually(t, time.Minute, func() bool {
		st := f.statuses(t)[second]
		return st == "recovered" || st == "completed"
	}, "second settled")
	f.waitConsumed(t)

	var polled int
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT polls FROM started_verifications WHERE signature_id = $1`, second).Scan(&polled))
	require.Positive(t, polled, "polling found second while its callback was being handled")
	require.EqualValues(t, 1, f.sim.Stats().FaceSearchBySignature[second], "second billed once")
	require.Equal(t, "duplicates_found", f.outcomes(t)[second])
	require.Equal(t, 1, f.alertCount(t, second), "one alert")
}
