package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// setupRegionPolling is setupRegions (ph the default, th) with short reconciliation settings.
func setupRegionPolling(t *testing.T, giveUp time.Duration, enroll bool) (*fixture, *regionSim, *regionSim) {
	t.Helper()
	f, ph, th := setupRegions(t)
	f.cfg.ReconcileAfter, f.cfg.ReconcileInterval, f.cfg.ReconcileGiveUp = time.Second, 2*time.Second, giveUp
	f.cfg.EnrollFailed = enroll
	require.NoError(t, f.cfg.Validate())
	return f, ph, th
}

func startedIn(sig, region string) kafka.Message {
	body := map[string]string{"signatureId": sig}
	if region != "" {
		body["region"] = region
	}
	b, _ := json.Marshal(body)
	return kafka.Message{Key: []byte(sig), Value: b}
}

func (f *fixture) startedRow(t *testing.T, sig string) (status, lastResult string, polls int) {
	t.Helper()
	require.NoError(t, f.pool.QueryRow(context.Background(), `
SELECT status, coalesce(last_poll_result, ''), polls FROM started_verifications WHERE signature_id = $1`, sig).
		Scan(&status, &lastResult, &polls))
	return status, lastResult, polls
}

// Verifications completed only at their region's vendor, whose callbacks never came, are found by
// polling that region: searched and billed there once, never at the other region, stored with
// their region; a FAIL is enrolled in its own region. A verification naming an unconfigured
// region calls no vendor and expires after the give-up time.
func TestLostCallbacksArePolledInTheVerificationsOwnRegion(t *testing.T) {
	t.Parallel()
	f, ph, th := setupRegionPolling(t, 12*time.Second, true)
	phEarlier := ph.pass(t, "ph-earlier", "ph-ring") // already in PH's face database
	thEarlier := th.pass(t, "th-earlier", "th-ring") // already in TH's face database
	phLost := ph.pass(t, "ph-lost", "ph-ring")
	thLost := th.pass(t, "th-lost", "th-ring")
	thFailed := testinfra.AddSession(t, th.sim, "th-failed", "th-failed-face", "FAIL")
	const unknown = "sig-of-an-unconfigured-region"
	f.start(t)
	testinfra.Produce(t, f.cfg.TopicEvents, regionEvent(phEarlier, "ph-earlier", "ph", ""), regionEvent(thEarlier, "th-earlier", "th", ""))
	testinfra.Eventually(t, 30*time.Second, func() bool { return countWhere(t, f, `true`) == 2 }, "the earlier accounts stored")
	// TH's started event names its region in upper case: normalised as on the main path. PH's names
	// none: the default region.
	testinfra.Produce(t, f.cfg.TopicStarted, startedIn(phLost, ""), startedIn(thLost, "TH"), startedIn(thFailed, "th"),
		startedIn(unknown, "zz"))

	testinfra.Eventually(t, 30*time.Second, func() bool {
		s := f.statuses(t)
		return s[phLost] == "recovered" && s[thLost] == "recovered" && s[thFailed] == "recovered"
	}, "the lost callbacks are found by polling")
	ctx := context.Background()
	store := postgres.NewStore(f.pool)
	for sig, want := range map[string]struct {
		region, outcome string
		matched         []string
	}{
		phLost:   {"ph", string(duplicate.OutcomeDuplicatesFound), []string{"ph-earlier"}},
		thLost:   {"th", string(duplicate.OutcomeDuplicatesFound), []string{"th-earlier"}},
		thFailed: {"th", string(duplicate.OutcomeNotPassed), nil},
	} {
		c, err := store.Check(ctx, sig)
		require.NoError(t, err)
		require.Equal(t, want.region, c.Region, "the check of %s carries its region", sig)
		require.Equal(t, want.outcome, string(c.Outcome), sig)
		require.ElementsMatch(t, want.matched, c.MatchedUserIDs, "%s searched in its own region's face database", sig)
		require.Equal(t, duplicate.FoundByPolling, c.FoundBy)
	}
	requireBilledOnce(t, ph, phEarlier, phLost)
	requireBilledOnce(t, th, thEarlier, thLost)
	testinfra.Eventually(t, 20*time.Second, func() bool { return th.sim.Stats().EnrollBySignature[thFailed] == 1 },
		"the FAIL is enrolled in its check's region")
	require.Empty(t, ph.sim.Stats().EnrollBySignature, "nothing enrolled at PH")

	testinfra.Eventually(t, 20*time.Second, func() bool {
		status, last, polls := f.startedRow(t, unknown)
		return status == "pending" && strings.HasPrefix(last, duplicate.ReasonUnknownRegion+": ") && polls > 0
	}, "the unknown region's poll is recorded as failed, naming why")
	_, _, polls := f.startedRow(t, unknown)
	require.LessOrEqual(t, polls, 10, "polled once per interval, not in a loop")
	testinfra.Eventually(t, 40*time.Second, func() bool { return f.statuses(t)[unknown] == "expired" },
		"the unknown region's verification expires after the give-up time")
	// A PASS's poll only (its event carries its user); a FAIL's poll, then the main path handling
	// the COMPLETED event the poll published (without a user, so it asks, and stores not_passed).
	require.EqualValues(t, 1, ph.sim.Stats().Calls["get-result"], "PH was asked about its own lost callback only")
	require.EqualValues(t, 3, th.sim.Stats().Calls["get-result"], "TH was asked about its own two only")
}

// With TH's account disabled (its circuit open), PH's lost callbacks are still recovered by polling
// while TH's wait unbilled; once TH's account works again, TH's are recovered too, each billed once.
func TestAnOpenCircuitInOneRegionPausesOnlyThatRegionsPolling(t *testing.T) {
	t.Parallel()
	f, ph, th := setupRegionPolling(t, time.Hour, false)
	require.NoError(t, th.sim.SetFaults(advancesim.Faults{ForceCode: "ACCOUNT_DISABLED"}))
	var phSigs, thSigs []string
	var started []kafka.Message
	for i := range 5 {
		pu, tu := fmt.Sprintf("ph-user-%d", i), fmt.Sprintf("th-user-%d", i)
		p, s := ph.pass(t, pu, pu), th.pass(t, tu, tu)
		phSigs, thSigs = append(phSigs, p), append(thSigs, s)
		started = append(started, startedIn(p, "ph"), startedIn(s, "th"))
	}
	f.start(t)
	testinfra.Produce(t, f.cfg.TopicStarted, started...)

	testinfra.Eventually(t, 30*time.Second, func() bool {
		s := f.statuses(t)
		for _, sig := range phSigs {
			if s[sig] != "recovered" {
				return false
			}
		}
		return true
	}, "PH's lost callbacks are recovered while TH's circuit is open")
	s := f.statuses(t)
	for _, sig := range thSigs {
		require.Equal(t, "pending", s[sig], "TH's wait")
	}
	require.Empty(t, th.sim.Stats().FaceSearchBySignature, "nothing billed at TH")
	requireBilledOnce(t, ph, phSigs...)

	require.NoError(t, th.sim.SetFaults(advancesim.Faults{}))
	testinfra.Eventually(t, 40*time.Second, func() bool {
		s := f.statuses(t)
		for _, sig := range thSigs {
			if s[sig] != "recovered" {
				return false
			}
		}
		return true
	}, "TH's are recovered once its account works again")
	requireBilledOnce(t, th, thSigs...)
	requireBilledOnce(t, ph, phSigs...)
	require.Equal(t, 5, countWhere(t, f, `region = 'th' AND found_by = 'polling'`))
}
