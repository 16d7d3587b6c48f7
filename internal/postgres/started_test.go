package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/reconcile"
)

// benchmarkBacklog makes a schema with pending started verifications, half of which have a check
// that does not settle them (a SUBMIT_COMPLETED notice), plus settled history of which 10,000 rows
// settled within the last hour.
func benchmarkBacklog(b *testing.B, pending, settled int) *postgres.Store {
	b.Helper()
	_, pool := testinfra.Database(b)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
INSERT INTO started_verifications (signature_id, started_at, next_poll_at, status, settled_at)
SELECT 's' || i, now() - interval '1 hour', now() - interval '1 minute',
       CASE WHEN i <= $2::int THEN 'completed' ELSE 'pending' END,
       CASE WHEN i <= 10000 THEN now() - interval '10 minutes' WHEN i <= $2::int THEN now() - interval '2 days' END
FROM generate_series(1, $1::int + $2::int) AS i`, pending, settled)
	require.NoError(b, err)
	_, err = pool.Exec(ctx, `
INSERT INTO idv_checks (signature_id, event_type, outcome)
SELECT 's' || i, 'SUBMIT_COMPLETED', 'skipped' FROM generate_series($1::int + 1, $1::int + $2::int, 2) AS i`, settled, pending)
	require.NoError(b, err)
	_, err = pool.Exec(ctx, `ANALYZE started_verifications; ANALYZE idv_checks`)
	require.NoError(b, err)
	return postgres.NewStore(pool)
}

// BenchmarkPollerRound measures the store's part of one poller round on a backlog of 100,000
// pending verifications and 1,000,000 settled ones: the settle sweep, one claim of 32, and the
// counts (read at most every 10 s).
func BenchmarkPollerRound(b *testing.B) {
	store := benchmarkBacklog(b, 100_000, 1_000_000)
	ctx := context.Background()
	b.Run("settle", func(b *testing.B) {
		for b.Loop() {
			_, _, err := store.SettleFinished(ctx, reconcile.SettlingOutcomes())
			require.NoError(b, err)
		}
	})
	b.Run("claim32", func(b *testing.B) {
		for b.Loop() {
			due, err := store.ClaimDue(ctx, "bench", 32, time.Hour, nil)
			require.NoError(b, err)
			require.Len(b, due, 32)
		}
	})
	b.Run("recent-counts", func(b *testing.B) {
		for b.Loop() {
			_, err := store.RecentCounts(ctx, time.Now().Add(-time.Hour))
			require.NoError(b, err)
		}
	})
	b.Run("all-time-counts", func(b *testing.B) {
		for b.Loop() {
			_, err := store.Counts(ctx, time.Now().Add(-time.Hour))
			require.NoError(b, err)
		}
	})
}

// Pruning deletes what settled before the cutoff, in batches, and never a pending verification.
func TestPruneDeletesOnlyWhatSettledBeforeTheCutoff(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
INSERT INTO started_verifications (signature_id, started_at, next_poll_at, status, settled_at)
SELECT 's' || i, now() - interval '40 days', now(),
       (ARRAY['completed', 'recovered', 'expired', 'pending'])[1 + i % 4],
       CASE WHEN i % 4 = 3 THEN NULL WHEN i <= 20000 THEN now() - interval '31 days' ELSE now() - interval '1 day' END
FROM generate_series(1, 24000) AS i`)
	require.NoError(t, err)
	store := postgres.NewStore(pool)

	n, err := store.PruneSettledBefore(ctx, time.Now().Add(-30*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 15000, n, "the settled three quarters of the first 20,000")
	var pending, settled int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'pending'),
    count(*) FILTER (WHERE status <> 'pending') FROM started_verifications`).Scan(&pending, &settled))
	require.Equal(t, 6000, pending, "pending verifications are kept however old")
	require.Equal(t, 3000, settled, "those settled within the retention are kept")
}
