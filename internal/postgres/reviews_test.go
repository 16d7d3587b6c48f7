package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

func review(user, other string, d duplicate.Decision) duplicate.Review {
	return duplicate.Review{UserID: user, DuplicateUserID: other, Decision: d, ReviewedBy: "analyst"}
}

func TestAlertsCarryTheRingAndItsSeverity(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 3}))
	ctx := context.Background()

	saved, err := store.SaveCheck(ctx, check("s1", "bob", "carol"))
	require.NoError(t, err)
	require.Equal(t, duplicate.RingID("bob"), saved.Alert.RingID)
	require.Equal(t, 2, saved.Alert.RingSize)
	require.Equal(t, duplicate.SeverityNormal, saved.Alert.Severity)

	// alice joins through carol: the ring is three, named after its new smallest member.
	saved, err = store.SaveCheck(ctx, check("s2", "alice", "carol"))
	require.NoError(t, err)
	require.Equal(t, duplicate.RingID("alice"), saved.Alert.RingID)
	require.Equal(t, 3, saved.Alert.RingSize)
	require.Equal(t, duplicate.SeverityHigh, saved.Alert.Severity)

	// The relay publishes the ring with the alert.
	var published []duplicate.Alert
	_, err = store.PublishAlerts(ctx, 10, func(_ context.Context, a []duplicate.Alert) error { published = a; return nil })
	require.NoError(t, err)
	require.Len(t, published, 2)
	require.Equal(t, duplicate.SeverityHigh, published[1].Severity)
	require.Equal(t, 3, published[1].RingSize)
	require.Equal(t, duplicate.RingID("alice"), published[1].RingID)

	// Two rings merge: the merged ring keeps the smaller id.
	_, err = store.SaveCheck(ctx, check("s3", "xavier", "zoe"))
	require.NoError(t, err)
	saved, err = store.SaveCheck(ctx, check("s4", "zoe", "bob"))
	require.NoError(t, err)
	require.Equal(t, duplicate.RingID("alice"), saved.Alert.RingID)
	require.Equal(t, 5, saved.Alert.RingSize)
}

func TestReviewedPairsRaiseNoNewAlert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := b.ctx
	for _, c := range []duplicate.Check{check("s1", "u1"), check("s2", "u2"), check("s3", "u3"), check("s4", "u4")} {
		_, err := b.store.SaveCheck(ctx, c)
		require.NoError(t, err)
	}
	// u1-u2 cleared as the same person, u1-u3 first cleared then confirmed (the latest wins),
	// u1-u4 confirmed.
	for _, r := range []duplicate.Review{review("u2", "u1", duplicate.DecisionSamePerson),
		review("u1", "u3", duplicate.DecisionFalsePositive), review("u1", "u3", duplicate.DecisionConfirmedFraud),
		review("u1", "u4", duplicate.DecisionConfirmedFraud)} {
		stored, err := b.store.AddReview(ctx, r)
		require.NoError(t, err)
		require.False(t, stored.Linked)
		require.NotZero(t, stored.ID)
		require.Equal(t, "analyst", stored.ReviewedBy)
	}
	saved, err := b.store.SaveCheck(ctx, check("s5", "u1", "u2", "u3", "u4"))
	require.NoError(t, err)
	require.Equal(t, []string{"u2", "u3", "u4"}, saved.NewLinks, "the links are stored all the same")
	require.Equal(t, []string{"u3", "u4"}, saved.Alert.NewMatchedUserIDs, "u2 was cleared")

	// Only cleared pairs: no alert at all.
	_, err = b.store.AddReview(ctx, review("u5x", "u1", duplicate.DecisionFalsePositive))
	require.Error(t, err, "unknown users cannot be reviewed")
	require.Equal(t, duplicate.ENOTFOUND, duplicate.ErrorCode(err))
	_, err = b.store.SaveCheck(ctx, check("s6", "u6"))
	require.NoError(t, err)
	_, err = b.store.AddReview(ctx, review("u6", "u2", duplicate.DecisionFalsePositive))
	require.NoError(t, err)
	saved, err = b.store.SaveCheck(ctx, check("s7", "u2", "u6"))
	require.NoError(t, err)
	require.Equal(t, []string{"u6"}, saved.NewLinks)
	require.Nil(t, saved.Alert)
}

func TestReviewsAreAppendOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.SaveCheck(b.ctx, check("s1", "a", "b"))
	require.NoError(t, err)
	stored, err := b.store.AddReview(b.ctx, review("b", "a", duplicate.DecisionConfirmedFraud))
	require.NoError(t, err)
	require.True(t, stored.Linked)
	require.Equal(t, "b", stored.UserID, "answered as asked, stored in pair order")
	_, err = b.pool.Exec(b.ctx, `UPDATE link_reviews SET decision = 'false_positive'`)
	require.ErrorContains(t, err, "append-only")
	_, err = b.pool.Exec(b.ctx, `DELETE FROM link_reviews`)
	require.ErrorContains(t, err, "append-only")
	_, err = b.store.AddReview(b.ctx, review("a", "a", duplicate.DecisionConfirmedFraud))
	require.Equal(t, duplicate.EINVALID, duplicate.ErrorCode(err))
	_, err = b.store.AddReview(b.ctx, review("a", "b", "maybe"))
	require.Equal(t, duplicate.EINVALID, duplicate.ErrorCode(err))
}

func TestRingLookUpIsBoundedAndAFaceFarmLosesNoLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// One face behind 1,051 accounts: the vendor lists 1,050 others.
	others := make([]string, 1050)
	for i := range others {
		others[i] = fmt.Sprintf("u%04d", i+1)
	}
	saved, err := b.store.SaveCheck(b.ctx, check("s", "u0000", others...))
	require.NoError(t, err)
	require.Len(t, saved.NewLinks, duplicate.MaxPairsPerCheck, "the first accounts are linked pair by pair")
	require.Len(t, saved.Alert.NewMatchedUserIDs, duplicate.MaxListedUserIDs, "the alert lists the first ids")
	require.Equal(t, 1050, saved.Alert.NewMatchedCount, "and counts them all")
	require.Equal(t, 1051, saved.Alert.RingSize)
	require.Len(t, linkRows(t, b), duplicate.MaxPairsPerCheck)
	require.Equal(t, others[duplicate.MaxPairsPerCheck:], overflowOf(t, b, "s"), "the rest is stored once, in order")

	stored, err := b.store.Check(b.ctx, "s")
	require.NoError(t, err)
	require.Equal(t, others[:duplicate.MaxListedUserIDs], stored.MatchedUserIDs)

	ring, err := b.store.Ring(b.ctx, "u0000")
	require.NoError(t, err)
	require.True(t, ring.Truncated)
	require.Equal(t, 1051, ring.Size, "the index knows the true size")
	require.Equal(t, duplicate.RingID("u0000"), ring.ID)
	require.Len(t, ring.Members, duplicate.MaxRingMembers)

	_, err = b.store.Ring(b.ctx, "nobody")
	require.Equal(t, duplicate.ENOTFOUND, duplicate.ErrorCode(err))
}

func TestAnalystViews(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []duplicate.Check{check("s1", "carol", "bob"), check("s2", "bob", "alice"),
		check("s3", "erin", "dave"), check("s4", "frank")} {
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	type ring struct {
		ID      string
		Size    int
		Members []string
		Links   int
	}
	rows, err := b.pool.Query(b.ctx, `SELECT ring_id, size, members, link_count FROM fraud_rings ORDER BY size DESC`)
	require.NoError(t, err)
	rings, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ring, error) {
		var x ring
		return x, r.Scan(&x.ID, &x.Size, &x.Members, &x.Links)
	})
	require.NoError(t, err)
	require.Equal(t, []ring{
		{duplicate.RingID("alice"), 3, []string{"alice", "bob", "carol"}, 2},
		{duplicate.RingID("dave"), 2, []string{"dave", "erin"}, 1},
	}, rings, "the view and the API name rings alike")

	open := func() map[string][]string {
		rows, err := b.pool.Query(b.ctx, `SELECT signature_id, unreviewed_user_ids FROM open_alerts`)
		require.NoError(t, err)
		out := map[string][]string{}
		var sig string
		var users []string
		_, err = pgx.ForEachRow(rows, []any{&sig, &users}, func() error { out[sig] = users; return nil })
		require.NoError(t, err)
		return out
	}
	require.Equal(t, map[string][]string{"s1": {"bob"}, "s2": {"alice"}, "s3": {"dave"}}, open())
	_, err = b.store.AddReview(b.ctx, review("carol", "bob", duplicate.DecisionConfirmedFraud))
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"s2": {"alice"}, "s3": {"dave"}}, open(), "a reviewed alert is no longer open")

	var latest string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT decision FROM latest_link_reviews WHERE user_id_low = 'bob'`).Scan(&latest))
	require.Equal(t, "confirmed_fraud", latest)
}

func TestReplaceCheckReplacesAFinalCheckAndLinksWhatIsNew(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := check("s1", "alice", "bob")
	_, err := b.store.SaveCheck(b.ctx, first)
	require.NoError(t, err)

	again := first
	again.MatchedUserIDs = []string{"carol"}
	again.SimilarUserIDs = []string{"carol", "alice"}
	at := time.Now().Add(time.Minute)
	again.ReplayedAt = &at
	saved, previous, err := b.store.ReplaceCheck(b.ctx, again)
	require.NoError(t, err)
	require.Equal(t, []string{"bob"}, previous)
	require.Equal(t, []string{"carol"}, saved.NewLinks)
	require.NotNil(t, saved.Alert)
	require.WithinDuration(t, at, saved.Alert.DetectedAt, time.Millisecond, "the alert is dated by the re-run")

	stored, err := b.store.Check(b.ctx, "s1")
	require.NoError(t, err)
	require.Equal(t, []string{"carol"}, stored.MatchedUserIDs)
	require.Equal(t, 1, stored.ReplayCount)
	require.WithinDuration(t, first.CheckedAt, stored.CheckedAt, time.Millisecond, "checked_at stays the first time")
	require.Equal(t, map[string]int{"alice-bob": 1, "alice-carol": 1}, linkRows(t, b), "the old link is kept")

	// Seen again by another re-run: counted, no alert.
	saved, _, err = b.store.ReplaceCheck(b.ctx, again)
	require.NoError(t, err)
	require.Empty(t, saved.NewLinks)
	require.Nil(t, saved.Alert)
	require.Equal(t, 2, linkRows(t, b)["alice-carol"])

	_, _, err = b.store.ReplaceCheck(b.ctx, check("nope", "x"))
	require.Equal(t, duplicate.ENOTFOUND, duplicate.ErrorCode(err))
}

func TestUserDuplicatesListsEveryLinkingSignature(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, c := range []duplicate.Check{check("s1", "alice", "bob"), check("s2", "bob", "alice", "carol"),
		check("s3", "alice", "bob")} {
		c.CheckedAt = time.Now().Add(time.Duration(i) * time.Second)
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	linked, err := b.store.UserDuplicates(b.ctx, "alice", "")
	require.NoError(t, err)
	require.Len(t, linked, 1)
	require.Equal(t, "bob", linked[0].UserID)
	require.Equal(t, 3, linked[0].SeenCount)
	require.ElementsMatch(t, []string{"s1", "s2", "s3"}, linked[0].SignatureIDs)

	linked, err = b.store.UserDuplicates(b.ctx, "carol", "")
	require.NoError(t, err)
	require.Equal(t, []string{"s2"}, linked[0].SignatureIDs)

	_, err = b.store.UserDuplicates(b.ctx, "dave", "")
	require.Equal(t, duplicate.ENOTFOUND, duplicate.ErrorCode(err))
	missing, err := b.store.MissingChecks(b.ctx, []string{"s1", "x", "s2", "y"})
	require.NoError(t, err)
	require.Equal(t, []string{"x", "y"}, missing)
	sigs, err := b.store.ReplayCandidates(b.ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), 2)
	require.NoError(t, err)
	require.Equal(t, []string{"s1", "s2"}, sigs)
}

// The cleared-pair rule exists once in each language: duplicate.Decision.SuppressesAlerts in Go,
// doppel_review_clears in SQL (the ring split and region_fraud_rings call it). They agree on every
// decision, on no review at all, and on a decision neither knows.
func TestTheSQLClearedPairRuleIsTheDomains(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	for _, d := range append(slices.Clone(duplicate.Decisions), "", "unknown") {
		var clears bool
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT doppel_review_clears(NULLIF($1, ''))`, string(d)).Scan(&clears))
		require.Equal(t, d.SuppressesAlerts(), clears, "decision %q", d)
	}
}
