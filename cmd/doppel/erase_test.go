package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// doppel erase: a dry run changes nothing; a held person is refused without the override; the
// erasure asks advance-sim to clear the person's face (a later search no longer returns it),
// publishes subject_erased, and a second run answers the erasure already done.
func TestEraseRemovesThePersonAndHasTheVendorClearTheirFace(t *testing.T) {
	t.Parallel()
	dbURL, pool := testinfra.Database(t)
	sim, simURL := testinfra.Sim(t, advancesim.Config{})
	const secret = "0123456789abcdef0123456789abcdef"
	store := postgres.NewStore(pool, postgres.WithTombstones(pseudonym.NewKey([]byte(secret))))
	erasures := testinfra.Topics(t, 1, "erasures")[0]
	ctx := context.Background()

	m := testinfra.AddSession(t, sim, "mallory", "F1", "PASS")
	a := testinfra.AddSession(t, sim, "alice", "F1", "PASS")
	for _, c := range []duplicate.Check{
		{SignatureID: m, UserID: "mallory", EventType: "COMPLETED", Outcome: duplicate.OutcomeNoDuplicates, CheckedAt: time.Now()},
		{SignatureID: a, UserID: "alice", EventType: "COMPLETED", Outcome: duplicate.OutcomeDuplicatesFound,
			SimilarUserIDs: []string{"mallory"}, MatchedUserIDs: []string{"mallory"}, CheckedAt: time.Now()},
	} {
		_, err := store.SaveCheck(ctx, c)
		require.NoError(t, err)
	}
	vars := map[string]string{
		"DOPPEL_DATABASE_URL":            dbURL,
		"DOPPEL_KAFKA_BROKERS":           strings.Join(testinfra.Brokers(t), ","),
		"DOPPEL_ADVANCE_BASE_URL":        simURL,
		"DOPPEL_ADVANCE_ACCESS_KEY":      testinfra.SimAccessKey,
		"DOPPEL_ADVANCE_SECRET_KEY":      testinfra.SimSecretKey,
		"DOPPEL_ADVANCE_CLEAR_DATA_PATH": advancesim.ClearDataPath,
		"DOPPEL_PSEUDONYM_KEY":           secret,
		"DOPPEL_TOPIC_ERASURES":          erasures,
		"USER":                           "officer",
	}
	doppel := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, vars, strings.NewReader(""), &out, &errOut)
		return out.String() + errOut.String(), err
	}

	out, err := doppel("erase", "--user", "mallory", "--reason", "asked on 2026-12-06", "--dry-run")
	require.NoError(t, err, out)
	require.Contains(t, out, "on legal hold: ring "+duplicate.RingID("alice"))
	require.Contains(t, out, "would remove: alerts 0, check_overflow 0, duplicate_links 1, idv_checks 1, ring_members 1, started_verifications 0; nothing was changed")

	_, err = doppel("erase", "--user", "mallory", "--reason", "asked")
	require.ErrorContains(t, err, "the person is on legal hold: ring "+duplicate.RingID("alice"))
	_, err = doppel("erase", "--user", "mallory")
	require.ErrorContains(t, err, "--reason is required")

	out, err = doppel("erase", "--user", "mallory", "--reason", "court order", "--override-legal-hold")
	require.NoError(t, err, out)
	require.Contains(t, out, "done: removed alerts 0, check_overflow 0, duplicate_links 1, idv_checks 1, ring_members 1, started_verifications 0")
	require.Contains(t, out, "the vendor cleared 1 verifications")
	require.EqualValues(t, 1, sim.Stats().Calls["clear-data"])

	// advance-sim no longer has mallory's face: a later verification with it finds alice only.
	c := testinfra.AddSession(t, sim, "carol", "F1", "PASS")
	client, err := advance.New(advance.Config{BaseURL: simURL, AccessKey: testinfra.SimAccessKey, SecretKey: testinfra.SimSecretKey})
	require.NoError(t, err)
	res, err := client.FaceSearch(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, res.SimilarFaceUserIDs)

	msgs := testinfra.ReadAll(t, erasures, 1, 30*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, "mallory", string(msgs[0].Key))
	require.Contains(t, string(msgs[0].Value), `"type":"subject_erased"`)

	out, err = doppel("erase", "--user", "mallory", "--reason", "again")
	require.NoError(t, err)
	require.Contains(t, out, "already erased")
}
