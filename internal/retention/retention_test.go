package retention_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
	"github.com/doppelhq/doppel/internal/retention"
)

func check(sig, user string, at time.Time, matched ...string) duplicate.Check {
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	return duplicate.Check{SignatureID: sig, UserID: user, EventType: duplicate.EventTypeCompleted, Region: "ph",
		Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched, CheckedAt: at, OccurredAt: &at}
}

// A sweep deletes the checks and links older than the region's retention, except those of people
// on legal hold (a confirmed_fraud pair, an open alert in their ring), recomputes the rings whose
// links it deleted, counts what it deleted by table, and leaves another region without retention
// alone. The reviews of a person it left nothing of keep their decision and note, with the
// person's id pseudonymised as an erasure leaves it.
func TestASweepDeletesWhatExpiredExceptWhatIsHeld(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithTombstones(pseudonym.NewKey([]byte("retention-test-pseudonym-key-0123456789abcdef"))))
	ctx := context.Background()
	old, recent := time.Now().Add(-72*time.Hour), time.Now().Add(-time.Hour)
	save := func(c duplicate.Check) {
		_, err := store.SaveCheck(ctx, c)
		require.NoError(t, err)
	}
	// alice-bob: cleared by a review, nobody held. carol-dave: confirmed_fraud, held.
	// erin-frank: an open alert, held. pat-quin-rose: a ring whose alerts are gone (closed).
	// sam: recent. tom: another region, without retention.
	save(check("s-alice", "alice", old))
	save(check("s-bob", "bob", old, "alice"))
	save(check("s-carol", "carol", old))
	save(check("s-dave", "dave", old, "carol"))
	save(check("s-erin", "erin", old))
	save(check("s-frank", "frank", old, "erin"))
	save(check("s-pat", "pat", old))
	save(check("s-quin", "quin", old, "pat"))
	save(check("s-rose", "rose", old, "quin"))
	save(check("s-sam", "sam", recent))
	tom := check("s-tom", "tom", old)
	tom.Region = "th"
	save(tom)
	for _, r := range []duplicate.Review{
		{UserID: "alice", DuplicateUserID: "bob", Decision: duplicate.DecisionFalsePositive, Note: "bob is alice on a new phone"},
		{UserID: "carol", DuplicateUserID: "dave", Decision: duplicate.DecisionConfirmedFraud},
	} {
		r.ReviewedBy = "analyst"
		_, err := store.AddReview(ctx, r)
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `DELETE FROM alerts WHERE user_id IN ('quin', 'rose');
SELECT doppel_refresh_ring_summaries(ARRAY(SELECT ring_key FROM rings))`) // the rings' open counts, as the store keeps them
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE duplicate_links SET last_seen_at = $1`, old)
	require.NoError(t, err)
	ring, err := store.Ring(ctx, "pat")
	require.NoError(t, err)
	require.Equal(t, 3, ring.Size)

	var mu sync.Mutex
	counted := map[string]int64{}
	sweeps := 0
	sweeper := retention.New(retention.Config{Store: store, Retentions: map[string]time.Duration{"ph": 24 * time.Hour, "th": 0},
		Pause: time.Millisecond, Batch: 2 /* several statements, each going on from the last one's cursor */, OnDeleted: func(table string, n int64) {
			mu.Lock()
			defer mu.Unlock()
			counted[table] += n
		}, OnSwept: func(time.Duration) { sweeps++ }})
	require.NoError(t, sweeper.Sweep(ctx))
	require.Equal(t, 1, sweeps, "a finished sweep is counted")

	rows, err := pool.Query(ctx, `SELECT user_id FROM idv_checks ORDER BY 1`)
	require.NoError(t, err)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"carol", "dave", "erin", "frank", "sam", "tom"}, left)
	rows, err = pool.Query(ctx, `SELECT user_id_low || '-' || user_id_high FROM duplicate_links ORDER BY 1`)
	require.NoError(t, err)
	links, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"carol-dave", "erin-frank"}, links)
	for _, u := range []string{"pat", "quin", "rose"} {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ring_members WHERE user_id = $1`, u).Scan(&n))
		require.Zero(t, n, "%s's ring lost its links: no ring", u)
	}
	require.Equal(t, map[string]int64{"idv_checks": 5, "alerts": 1, "duplicate_links": 3}, counted)

	var low, high, note, decision string
	require.NoError(t, pool.QueryRow(ctx, `SELECT user_id_low, user_id_high, note, decision FROM link_reviews
WHERE decision = 'false_positive'`).Scan(&low, &high, &note, &decision))
	require.True(t, strings.HasPrefix(low, "erased:") && strings.HasPrefix(high, "erased:"), "%s-%s", low, high)
	require.NotContains(t, note, "alice")
	require.NotContains(t, note, "bob")
	require.Contains(t, note, "on a new phone", "the note stays, the ids pseudonymised")
	var held int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM link_reviews WHERE user_id_low = 'carol' AND user_id_high = 'dave'`).Scan(&held))
	require.Equal(t, 1, held, "a held person's review is left as it is")

	// A second sweep finds nothing more.
	require.NoError(t, sweeper.Sweep(ctx))
	require.Equal(t, int64(5), counted["idv_checks"])
	require.Equal(t, 2, sweeps)
}

// The sweep rests after each statement so that it works Share of the time, and never less than
// Pause.
func TestTheSweepRestsInProportionToItsWork(t *testing.T) {
	require.Equal(t, 400*time.Millisecond, retention.RestAfter(100*time.Millisecond, 0.2, 100*time.Millisecond))
	require.Equal(t, 100*time.Millisecond, retention.RestAfter(10*time.Millisecond, 0.2, 100*time.Millisecond), "at least Pause")
	require.Equal(t, 50*time.Millisecond, retention.RestAfter(50*time.Millisecond, 0.5, 0))
}
