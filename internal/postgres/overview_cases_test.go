package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

func TestTheOverviewCountsOpenCasesByRegionOverdueAndHighSeverity(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	b := bundle{pool: pool, store: postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 3})), ctx: t.Context()}
	empty, err := b.store.OpenCases(b.ctx, time.Now(), time.Hour)
	require.NoError(t, err)
	require.Equal(t, duplicate.OpenCases{}, empty, "nothing open")

	save := func(sig, region, user string, matched ...string) {
		t.Helper()
		c := check(sig, user, matched...)
		c.Region = region
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	// Ring A, three accounts in ph (two alerts): high.
	save("a1", "ph", "a1")
	save("a2", "ph", "a2", "a1")
	save("a3", "ph", "a3", "a1", "a2")
	// Ring B, two accounts in th (one alert, two days old): normal, and overdue.
	save("b1", "th", "b1")
	save("b2", "th", "b2", "b1")
	twoDaysAgo := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Microsecond)
	_, err = pool.Exec(b.ctx, `UPDATE alerts SET detected_at = $1 WHERE signature_id = 'b2'`, twoDaysAgo)
	require.NoError(t, err)
	// Ring C, three accounts, alerts in th and ph: one case in both regions, high.
	save("c1", "ph", "c1")
	save("c2", "th", "c2", "c1")
	save("c3", "ph", "c3", "c1")
	// Ring D, decided: its alert is closed, no case.
	save("d1", "ph", "d1")
	save("d2", "ph", "d2", "d1")
	_, err = b.store.AddReview(b.ctx, duplicate.Review{UserID: "d1", DuplicateUserID: "d2", Decision: duplicate.DecisionConfirmedFraud, ReviewedBy: "rita"})
	require.NoError(t, err)

	cases, err := b.store.OpenCases(b.ctx, time.Now(), 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, duplicate.OpenCases{Total: 3, ByRegion: []duplicate.RegionCount{{Region: "ph", Count: 2}, {Region: "th", Count: 2}},
		Overdue: 1, HighSeverity: 2, OldestOpenAlertAt: twoDaysAgo, Read: 5}, cases)

	// A ring that grows past the high-severity size makes its case high, whatever its alerts said.
	save("b3", "th", "b3", "b1", "b2")
	cases, err = b.store.OpenCases(b.ctx, time.Now(), 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, 3, cases.HighSeverity)
	require.Equal(t, 3, cases.Total)
	// Under a tighter SLA every case is overdue; with no high-severity size none is high.
	cases, err = postgres.NewStore(pool).OpenCases(b.ctx, time.Now().Add(time.Hour), time.Minute)
	require.NoError(t, err)
	require.Equal(t, 3, cases.Overdue)
	require.Zero(t, cases.HighSeverity)
}
