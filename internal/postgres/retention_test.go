package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// sweepCheck is a completed check in region ph at time at.
func sweepCheck(sig, user string, at time.Time, matched ...string) duplicate.Check {
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	return duplicate.Check{SignatureID: sig, UserID: user, EventType: duplicate.EventTypeCompleted, Region: "ph",
		Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched, CheckedAt: at, OccurredAt: &at}
}

// The sweep reads the links without the ring index's lock, which the hot path's batches need, and
// takes it only to delete. A link a batch sees again after the sweep read it (last_seen_at moves
// on) is no longer expired: the sweep must not delete it. Here the test holds the lock, as a batch
// would, while the sweep waits for it, and sees the link again before letting the sweep go on.
func TestALinkSeenAgainWhileTheSweepWaitsForTheLockIsKept(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithTombstones(pseudonym.NewKey([]byte("retention-test-pseudonym-key-0123456789abcdef"))))
	ctx := context.Background()
	old := time.Now().Add(-72 * time.Hour)
	for _, c := range []duplicate.Check{sweepCheck("s-ann", "ann", old), sweepCheck("s-ben", "ben", old, "ann"),
		sweepCheck("s-cat", "cat", old), sweepCheck("s-dan", "dan", old, "cat")} {
		_, err := store.SaveCheck(ctx, c)
		require.NoError(t, err)
	}
	// No open alert: nobody is held, both links are the sweep's.
	for _, sql := range []string{`DELETE FROM alerts`, `SELECT doppel_refresh_ring_summaries(ARRAY(SELECT ring_key FROM rings))`} {
		_, err := pool.Exec(ctx, sql)
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `UPDATE duplicate_links SET last_seen_at = $1`, old)
	require.NoError(t, err)

	batch, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer batch.Rollback(ctx)
	_, err = batch.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(postgres.RingIndexLock))
	require.NoError(t, err)
	swept := make(chan error, 1)
	var deleted int64
	go func() {
		var err error
		deleted, _, _, err = store.SweepLinks(ctx, map[string]time.Time{"ph": time.Now().Add(-24 * time.Hour)}, postgres.SweepCursor{}, 0)
		swept <- err
	}()
	// The sweep has read the links and waits for the lock.
	require.Eventually(t, func() bool {
		var waiting bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory')`).Scan(&waiting))
		return waiting
	}, 10*time.Second, 10*time.Millisecond)
	_, err = batch.Exec(ctx, `UPDATE duplicate_links SET last_seen_at = now() WHERE user_id_low = 'ann'`)
	require.NoError(t, err)
	require.NoError(t, batch.Commit(ctx))
	require.NoError(t, <-swept)

	require.Equal(t, int64(1), deleted)
	rows, err := pool.Query(ctx, `SELECT user_id_low || '-' || user_id_high FROM duplicate_links`)
	require.NoError(t, err)
	links, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"ann-ben"}, links, "the link seen again stays; the other expired one goes")
}
