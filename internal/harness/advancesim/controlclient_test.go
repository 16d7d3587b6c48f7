package advancesim

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestControlSeedsPatchesFaultsAndReadsStats(t *testing.T) {
	t.Parallel()
	sim := New(Config{AccessKey: "ak", SecretKey: "sk"})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	c := NewControl(srv.URL + "/")
	ctx := context.Background()

	ids, err := c.AddSessions(ctx, []Session{{UserID: "u1", Face: "f", OverallResult: ResultPass},
		{UserID: "u2", Face: "f", OverallResult: ResultPass}})
	require.NoError(t, err)
	require.Len(t, ids, 2)
	require.NotEqual(t, ids[0], ids[1])

	_, err = c.AddSessions(ctx, []Session{{UserID: "u3", Face: "f", OverallResult: "MAYBE"}})
	require.ErrorContains(t, err, "400", "the simulator's refusal is reported with its status")

	rate := 0.5
	require.NoError(t, c.PatchFaults(ctx, FaultsPatch{ErrorRate: &rate}))
	qps := 7.0
	require.NoError(t, c.PatchFaults(ctx, FaultsPatch{QPS: &qps}))
	require.Equal(t, Faults{ErrorRate: 0.5, QPS: 7}, sim.Faults(), "a patch leaves the other faults as they are")

	st, err := c.Stats(ctx)
	require.NoError(t, err)
	require.Zero(t, st.Calls["face-search"])
}
