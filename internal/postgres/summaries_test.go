package postgres_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// The ring summaries and the alerts' open state are kept by deltas in every transaction that
// changes links, rings, alerts or reviews. After each step of a long random run (batches that
// merge rings, a face farm's overflow, reviews that clear pairs and split rings, reviews that join
// them again, whole-ring decisions) they must equal a count from scratch.
func TestRingSummariesAgreeWithARecount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rng := rand.New(rand.NewPCG(23, 10))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	users := make([]string, 40)
	for i := range users {
		users[i] = fmt.Sprintf("u%02d", i)
	}
	farm := make([]string, duplicate.MaxPairsPerCheck+30)
	for i := range farm {
		farm[i] = fmt.Sprintf("f%03d", i)
	}
	decisions := []duplicate.Decision{duplicate.DecisionFalsePositive, duplicate.DecisionConfirmedFraud,
		duplicate.DecisionSamePerson, duplicate.DecisionConfirmedFraud}

	agree := func(step string) {
		t.Helper()
		rows, err := b.pool.Query(b.ctx, `
SELECT r.ring_key, r.ring_id = doppel_ring_id(r.smallest_user_id), r.link_count, s.link_count,
    r.first_seen_at IS NOT DISTINCT FROM s.first_seen_at, r.last_seen_at IS NOT DISTINCT FROM s.last_seen_at,
    r.open_alerts, s.open_alerts, coalesce(r.newest_user_id, ''), coalesce(s.newest_user_id, ''),
    r.newest_at IS NOT DISTINCT FROM s.newest_at
FROM rings r, doppel_ring_summary(r.ring_key) s`)
		require.NoError(t, err)
		type row struct {
			Key                   string
			IDRight               bool
			Links, RecountedLinks int
			FirstRight, LastRight bool
			Open, RecountedOpen   int
			Newest, RecountedNew  string
			NewestAtRight         bool
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		require.NoError(t, err)
		for _, r := range got {
			require.True(t, r.IDRight, "%s: ring %s has a stale ring_id", step, r.Key)
			require.Equal(t, r.RecountedLinks, r.Links, "%s: ring %s link_count", step, r.Key)
			require.True(t, r.FirstRight && r.LastRight, "%s: ring %s sightings", step, r.Key)
			require.Equal(t, r.RecountedOpen, r.Open, "%s: ring %s open_alerts", step, r.Key)
			require.Equal(t, r.RecountedNew, r.Newest, "%s: ring %s newest member", step, r.Key)
			require.True(t, r.NewestAtRight, "%s: ring %s newest member's time", step, r.Key)
		}
		var wrong int
		require.NoError(t, b.pool.QueryRow(b.ctx,
			`SELECT count(*) FROM alerts WHERE open <> doppel_alert_open(user_id, new_matched_user_ids)`).Scan(&wrong))
		require.Zero(t, wrong, "%s: alerts whose stored open state is wrong", step)
		var counted, kept int
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM alerts WHERE open),
    (SELECT value FROM counters WHERE name = 'open_alerts')`).Scan(&counted, &kept))
		require.Equal(t, counted, kept, "%s: the open-alert counter", step)
		caseInvariants(t, b, step)
	}

	// A chain a-b-c-d-e split by clearing its bridge c-d, each side keeping open alerts, then joined
	// again; and a triangle whose newest link is cleared without splitting it.
	at := func(c duplicate.Check, day int) duplicate.Check {
		c.CheckedAt = base.Add(time.Duration(day) * 24 * time.Hour)
		return c
	}
	_, err := b.store.SaveChecks(b.ctx, []duplicate.Check{at(check("c1", "a", "b"), 1), at(check("c2", "c", "b"), 5),
		at(check("c3", "d", "c"), 9), at(check("c4", "e", "d"), 2), at(check("t1", "x", "y"), 3), at(check("t2", "z", "x", "y"), 7)})
	require.NoError(t, err)
	agree("chain and triangle")
	_, err = b.store.AddReview(b.ctx, review("c", "d", duplicate.DecisionFalsePositive))
	require.NoError(t, err)
	agree("chain split at its bridge")
	var parts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM rings WHERE smallest_user_id IN ('a', 'd')`).Scan(&parts))
	require.Equal(t, 2, parts, "the bridge's review split the chain in two rings")
	_, err = b.store.AddReview(b.ctx, review("a", "b", duplicate.DecisionConfirmedFraud))
	require.NoError(t, err)
	agree("a reviewed pair closes its alert")
	_, err = b.store.AddReview(b.ctx, review("c", "d", duplicate.DecisionConfirmedFraud))
	require.NoError(t, err)
	agree("the chain joined again")
	_, err = b.store.AddReview(b.ctx, review("z", "y", duplicate.DecisionSamePerson))
	require.NoError(t, err)
	agree("the triangle's newest link cleared")

	// A larger ring absorbs a smaller one whose member is the smallest of both: the survivor takes
	// that member as its smallest (and the ring id with it) while the absorbed row still holds it.
	_, err = b.store.SaveChecks(b.ctx, []duplicate.Check{at(check("m1", "mb", "ma"), 1)})
	require.NoError(t, err)
	_, err = b.store.SaveChecks(b.ctx, []duplicate.Check{at(check("m2", "md", "mc"), 2), at(check("m3", "me", "md"), 3)})
	require.NoError(t, err)
	_, err = b.store.SaveChecks(b.ctx, []duplicate.Check{at(check("m4", "md", "mb"), 4)})
	require.NoError(t, err, "the merged ring takes the absorbed ring's id")
	agree("a ring absorbing the smallest member's ring")

	sig := 0
	for round := range 60 {
		var batch []duplicate.Check
		for range 1 + rng.IntN(4) {
			sig++
			user := users[rng.IntN(len(users))]
			var matched []string
			if rng.IntN(15) == 0 {
				matched = append(matched, farm[:len(farm)-rng.IntN(20)]...) // past MaxPairsPerCheck: overflow
			}
			for range rng.IntN(4) {
				if m := users[rng.IntN(len(users))]; m != user {
					matched = append(matched, m)
				}
			}
			c := check(fmt.Sprintf("s%03d", sig), user, matched...)
			c.CheckedAt = base.Add(time.Duration(rng.IntN(1_000_000)) * time.Second)
			batch = append(batch, c)
		}
		_, err := b.store.SaveChecks(b.ctx, batch)
		require.NoError(t, err)
		agree(fmt.Sprintf("round %d, batch", round))

		for range rng.IntN(3) {
			var low, high string
			err := b.pool.QueryRow(b.ctx, `SELECT user_id_low, user_id_high FROM duplicate_links ORDER BY random() LIMIT 1`).Scan(&low, &high)
			require.NoError(t, err)
			_, err = b.store.AddReview(b.ctx, review(low, high, decisions[rng.IntN(len(decisions))]))
			require.NoError(t, err)
			agree(fmt.Sprintf("round %d, review of %s-%s", round, low, high))
		}
		if round%20 == 19 {
			var ringID string
			err := b.pool.QueryRow(b.ctx, `SELECT ring_id FROM rings WHERE size <= 6 ORDER BY size DESC, ring_id LIMIT 1`).Scan(&ringID)
			if err == nil {
				_, err = b.store.DecideRing(b.ctx, ringID, decisions[rng.IntN(len(decisions))], "whole ring", "analyst", true)
				require.NoError(t, err)
				agree(fmt.Sprintf("round %d, ring decision", round))
			}
		}
	}
	var rings, open int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*), coalesce(sum(open_alerts), 0) FROM rings`).Scan(&rings, &open))
	require.Positive(t, rings, "the run built rings")
	require.Positive(t, open, "the run left open alerts")
}

// The overview's counts, each read from an index bounded by its day or month: checks and links
// of the day, open alerts, and face searches of the day and month in every region, a re-run
// counted on the day of its latest run.
func TestTheOverviewCountsTheDayAndTheMonth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	at := func(c duplicate.Check, region string, ago time.Duration) duplicate.Check {
		c.Region, c.CheckedAt = region, now.Add(-ago)
		return c
	}
	failed := at(check("s6", "frank"), "ph", time.Hour)
	failed.Outcome = duplicate.OutcomeFailed
	_, err := b.store.SaveChecks(b.ctx, []duplicate.Check{
		at(check("s1", "alice"), "ph", time.Hour),
		at(check("s2", "bob", "alice"), "ph", time.Minute),
		at(check("s3", "carol"), "ph", 5*24*time.Hour),
		at(check("s4", "dave"), "ph", 20*24*time.Hour), // last month
		at(check("s5", "erin"), "th", 2*time.Hour),
		failed,
	})
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE idv_checks SET replayed_at = $1 WHERE signature_id = 's4'`, now.Add(-30*time.Minute))
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE idv_checks SET replayed_at = $1 WHERE signature_id = 's3'`, now.Add(-3*24*time.Hour))
	require.NoError(t, err)

	o, err := b.store.Overview(b.ctx, now)
	require.NoError(t, err)
	require.Equal(t, 4, o.ChecksToday, "s1, s2, s5 and the failed s6")
	require.Equal(t, 1, o.LinksFoundToday)
	require.Equal(t, 1, o.OpenAlerts)
	require.Equal(t, 4, o.FaceSearchesToday, "s1, s2, s5 and s4's re-run, in both regions")
	require.Equal(t, 6, o.FaceSearchesMonth, "s1, s2, s3, s5 and the re-runs of s3 and s4")
}
