package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

func TestReplayReRunsStoredChecksAndCountsWhatChanged(t *testing.T) {
	t.Parallel()
	dbURL, pool := testinfra.Database(t)
	sim, simURL := testinfra.Sim(t, advancesim.Config{})
	store := postgres.NewStore(pool)
	ctx := context.Background()

	// mallory shares alice's face and completed before her, but alice's stored check does not have
	// her (as after a change of the vendor's face index): a re-run finds her.
	testinfra.AddSession(t, sim, "mallory", "F1", "PASS")
	a := testinfra.AddSession(t, sim, "alice", "F1", "PASS")
	b := testinfra.AddSession(t, sim, "bob", "F2", "PASS")
	for _, c := range []duplicate.Check{
		{SignatureID: a, UserID: "alice", EventType: "COMPLETED", Outcome: duplicate.OutcomeNoDuplicates, CheckedAt: time.Now()},
		{SignatureID: b, UserID: "bob", EventType: "COMPLETED", Outcome: duplicate.OutcomeNoDuplicates, CheckedAt: time.Now()},
	} {
		_, err := store.SaveCheck(ctx, c)
		require.NoError(t, err)
	}

	vars := map[string]string{
		"DOPPEL_DATABASE_URL":       dbURL,
		"DOPPEL_KAFKA_BROKERS":      strings.Join(testinfra.Brokers(t), ","),
		"DOPPEL_ADVANCE_BASE_URL":   simURL,
		"DOPPEL_ADVANCE_ACCESS_KEY": testinfra.SimAccessKey,
		"DOPPEL_ADVANCE_SECRET_KEY": testinfra.SimSecretKey,
	}
	doppel := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, vars, strings.NewReader(""), &out, &errOut)
		return out.String(), errOut.String(), err
	}

	// Without --yes nothing is billed.
	out, _, err := doppel("replay", a, b)
	require.NoError(t, err)
	require.Contains(t, out, "would re-run face search for 2 checks")
	require.Zero(t, sim.Stats().FaceSearchBySignature[a])

	out, errOut, err := doppel("replay", "--yes", a, b)
	require.NoError(t, err, errOut)
	require.NotContains(t, errOut, "re-running face search", "no progress frames when stderr is not a terminal")
	require.Contains(t, out, "re-ran 2 of 2 checks: 1 with changed matches, 1 new links, 1 alerts; 0 skipped, 0 failed")
	require.Contains(t, out, a+": no_duplicates -> duplicates_found, added [mallory]")
	require.EqualValues(t, 1, sim.Stats().FaceSearchBySignature[a])

	// By window, everything first stored in the last hour, without the bar.
	out, _, err = doppel("replay", "--yes", "--no-progress", "--from", time.Now().Add(-time.Hour).Format(time.RFC3339))
	require.NoError(t, err)
	require.Contains(t, out, "re-ran 2 of 2 checks: 0 with changed matches, 0 new links, 0 alerts")
	require.EqualValues(t, 2, sim.Stats().FaceSearchBySignature[a])

	// Unknown signatureIds stop the run before anything is billed.
	_, _, err = doppel("replay", "--yes", a, "no-such-signature")
	require.ErrorContains(t, err, "no-such-signature")
	require.EqualValues(t, 2, sim.Stats().FaceSearchBySignature[a])

	// DOPPEL_REPLAY_MAX_CHECKS bounds the command as it bounds the HTTP replay.
	vars["DOPPEL_REPLAY_MAX_CHECKS"] = "1"
	_, _, err = doppel("replay", "--yes", a, b)
	require.ErrorContains(t, err, "2 checks is above DOPPEL_REPLAY_MAX_CHECKS (1)")
	_, _, err = doppel("replay", "--yes", "--limit", "5", "--from", time.Now().Add(-time.Hour).Format(time.RFC3339))
	require.ErrorContains(t, err, "5 checks is above DOPPEL_REPLAY_MAX_CHECKS (1)")
	require.EqualValues(t, 2, sim.Stats().FaceSearchBySignature[a], "nothing re-run")
	out, _, err = doppel("replay", "--yes", "--from", time.Now().Add(-time.Hour).Format(time.RFC3339))
	require.NoError(t, err)
	require.Contains(t, out, "re-ran 1 of 1 checks", "a window takes at most the bound")
	delete(vars, "DOPPEL_REPLAY_MAX_CHECKS")

	_, _, err = doppel("replay", "--from", "yesterday")
	require.ErrorContains(t, err, "--from must be an RFC 3339 time")
	_, _, err = doppel("replay", "--from", time.Now().Format(time.RFC3339), a)
	require.ErrorContains(t, err, "not both")
	_, _, err = doppel("replay")
	require.ErrorIs(t, err, errUsage)
}
