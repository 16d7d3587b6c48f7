package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

func readyz(t *testing.T, addr string) (int, map[string]any) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out
}

// ring registers n verifications sharing a face, each completing at registration, and returns
// their signatureIds and COMPLETED events in completion order. Only the first finds nobody.
func ring(t *testing.T, f *fixture, n int, face string) ([]string, []kafka.Message) {
	var sigs []string
	var msgs []kafka.Message
	for i := range n {
		user := fmt.Sprintf("%s-user-%d", face, i)
		sig := testinfra.AddSession(t, f.sim, user, face, "PASS")
		sigs = append(sigs, sig)
		msgs = append(msgs, event(sig, "COMPLETED", user))
	}
	return sigs, msgs
}

func (f *fixture) deadLetters(t *testing.T, want int) map[string]int {
	msgs := testinfra.ReadAll(t, f.cfg.TopicDLQ, want, 20*time.Second)
	out := map[string]int{}
	for _, m := range msgs {
		out[header(m, consumer.HeaderReason)]++
	}
	return out
}

func TestTransientVendorErrorsAreRetriedUntilStored(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{Seed: 7})
	require.NoError(t, f.sim.SetFaults(advancesim.Faults{ErrorRate: 0.3, HTTP5xxRate: 0.1}))
	f.cfg.BreakerFailures = 1000 // this test is about retries, not the breaker
	sigs, msgs := ring(t, f, 40, "flaky")
	stop := f.start(t)
	defer stop()
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)
	f.waitForChecks(t, len(sigs), 60*time.Second)

	stats := f.sim.Stats()
	require.Positive(t, stats.Answers["ERROR"]+stats.Answers["HTTP_503"], "faults were injected")
	for _, sig := range sigs {
		require.EqualValues(t, 1, stats.FaceSearchBySignature[sig], "billed once despite retries")
	}
	require.Len(t, f.links(t), 40*39/2)
	require.Equal(t, map[string]string{sigs[0]: "no_duplicates"}, filterNot(f.outcomes(t), "duplicates_found"))
}

func filterNot(m map[string]string, outcome string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v != outcome {
			out[k] = v
		}
	}
	return out
}

func TestServiceBusySlowsDownButLosesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	require.NoError(t, f.sim.SetFaults(advancesim.Faults{QPS: 10, BusyAsHTTP429: true}))
	sigs, msgs := ring(t, f, 60, "busy")
	stop := f.start(t)
	defer stop()
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)
	f.waitForChecks(t, len(sigs), 60*time.Second)
	require.Positive(t, f.sim.Stats().Answers["SERVICE_BUSY"], "the vendor pushed back")
	require.Equal(t, map[string]string{sigs[0]: "no_duplicates"}, filterNot(f.outcomes(t), "duplicates_found"))
}

func TestPermanentVendorRejectionsAndExhaustedRetriesAreDeadLettered(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	f.cfg.RetryMaxAttempts = 3
	f.cfg.BreakerFailures = 1000
	good := testinfra.AddSession(t, f.sim, "ok-user", "ok-face", "PASS")
	notPass := testinfra.AddSession(t, f.sim, "incomplete-user", "x", "INCOMPLETE")
	stop := f.start(t)
	defer stop()
	testinfra.Produce(t, f.cfg.TopicEvents,
		event("unknown-signature", "COMPLETED", "someone"), // PARAMETER_ERROR: permanent
		event(notPass, "COMPLETED", "incomplete-user"),     // "Transaction is not pass": permanent
		event(good, "COMPLETED", "ok-user"),
	)
	f.waitForChecks(t, 3, 60*time.Second)
	require.Equal(t, map[string]string{"unknown-signature": "failed", notPass: "failed", good: "no_duplicates"}, f.outcomes(t))
	require.Equal(t, map[string]int{"vendor_rejected": 2}, f.deadLetters(t, 2))

	// Now the vendor fails every call: after three tries the event is dead-lettered, not dropped.
	require.NoError(t, f.sim.SetFaults(advancesim.Faults{ErrorRate: 1}))
	late := testinfra.AddSession(t, f.sim, "late-user", "late", "PASS")
	testinfra.Produce(t, f.cfg.TopicEvents, event(late, "COMPLETED", "late-user"))
	dead := f.deadLetters(t, 3)
	require.Equal(t, 1, dead[consumer.ReasonRetriesExhausted])
}

func TestAnAccountLevelFailurePausesEverythingUntilItClears(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	f.cfg.BreakerOpenFor = 300 * time.Millisecond
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	require.NoError(t, f.sim.SetFaults(advancesim.Faults{ForceCode: "INSUFFICIENT_BALANCE"}))
	sigs, msgs := ring(t, f, 10, "broke")
	stop := f.start(t)
	defer stop()
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)

	testinfra.Eventually(t, 20*time.Second, func() bool {
		status, body := readyz(t, f.cfg.AdminAddr)
		checks, _ := body["checks"].(map[string]any)
		reason, _ := checks["vendor"].(string)
		return status == http.StatusServiceUnavailable && len(reason) > 0 && strings.Contains(reason, "INSUFFICIENT_BALANCE")
	}, "the admin listener's readyz explains the open circuit")
	// The public one stays ready: the API and the callback endpoint can serve while the vendor
	// account cannot be used (a load balancer dropping them would stop callbacks too), and vendor
	// codes are for operators anyway.
	status, body := readyz(t, f.cfg.HTTPAddr)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]any{"status": "ready"}, body)
	time.Sleep(time.Second) // several probe periods pass while the account is unusable
	require.Zero(t, f.countChecks(t), "nothing is stored while the vendor account is unusable")
	require.Empty(t, testinfra.ReadAll(t, f.cfg.TopicDLQ, 1, 500*time.Millisecond), "and nothing is dead-lettered")

	require.NoError(t, f.sim.SetFaults(advancesim.Faults{}))
	f.waitForChecks(t, len(sigs), 60*time.Second)
	testinfra.Eventually(t, 10*time.Second, func() bool {
		status, _ := readyz(t, f.cfg.AdminAddr)
		return status == http.StatusOK
	}, "ready again at the next readiness round")
}

// A signatureId that is not UTF-8 would be stored with U+FFFD in its place, an id nobody sent: it
// is dead-lettered as invalid_utf8 with its original bytes, and the events behind it go on.
func TestInvalidUTF8IsDeadLetteredNotStoredMangled(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	good := testinfra.AddSession(t, f.sim, "utf8-user", "utf8-face", "PASS")
	bad := []byte("{\"signatureId\":\"ab\xffcd\",\"type\":\"COMPLETED\",\"userId\":\"u1\"}")
	stop := f.start(t)
	defer stop()
	testinfra.Produce(t, f.cfg.TopicEvents,
		kafka.Message{Key: []byte("ab-cd"), Value: bad}, event(good, "COMPLETED", "utf8-user"))
	f.waitForChecks(t, 1, 60*time.Second)

	letters := testinfra.ReadAll(t, f.cfg.TopicDLQ, 1, 20*time.Second)
	require.Len(t, letters, 1)
	require.Equal(t, duplicate.ReasonInvalidUTF8, header(letters[0], consumer.HeaderReason))
	require.Equal(t, bad, letters[0].Value, "the original bytes, unchanged")
	var mangled int
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM idv_checks WHERE signature_id LIKE '%' || chr(65533) || '%'`).Scan(&mangled))
	require.Zero(t, mangled)
	require.Equal(t, map[string]string{good: "no_duplicates"}, f.outcomes(t))
}
