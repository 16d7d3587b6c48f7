package postgres_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// ringOf returns the size and members of userID's ring as the API and the fraud_rings view see it.
func ringOf(t *testing.T, b bundle, userID string) (int, []string) {
	t.Helper()
	ring, err := b.store.Ring(b.ctx, userID)
	require.NoError(t, err)
	require.Equal(t, duplicate.RingID(ring.Members[0]), ring.ID, "named for the smallest member")
	var viewMembers []string
	err = b.pool.QueryRow(b.ctx, `SELECT members FROM fraud_rings WHERE $1 = ANY (members)`, userID).Scan(&viewMembers)
	if ring.Size == 1 {
		require.ErrorIs(t, err, pgx.ErrNoRows, "a ring of one is no fraud ring")
	} else {
		require.NoError(t, err)
		require.Equal(t, ring.Members, viewMembers, "the view and the API agree")
	}
	return ring.Size, ring.Members
}

func TestAClearedPairNoLongerJoinsARing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []duplicate.Check{check("s1", "bob", "alice"), check("s2", "carol", "bob"), check("s3", "dave", "carol")} {
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	size, _ := ringOf(t, b, "alice")
	require.Equal(t, 4, size)

	// Clearing bob-carol cuts the chain alice-bob-carol-dave in two.
	_, err := b.store.AddReview(b.ctx, review("carol", "bob", duplicate.DecisionFalsePositive))
	require.NoError(t, err)
	_, members := ringOf(t, b, "alice")
	require.Equal(t, []string{"alice", "bob"}, members)
	_, members = ringOf(t, b, "dave")
	require.Equal(t, []string{"carol", "dave"}, members)

	// A later confirmed_fraud is the latest decision: the pair joins the rings again.
	_, err = b.store.AddReview(b.ctx, review("bob", "carol", duplicate.DecisionConfirmedFraud))
	require.NoError(t, err)
	_, members = ringOf(t, b, "dave")
	require.Equal(t, []string{"alice", "bob", "carol", "dave"}, members)

	// With a second path (alice-carol), clearing bob-carol splits nothing.
	_, err = b.store.SaveCheck(b.ctx, check("s4", "alice", "carol"))
	require.NoError(t, err)
	_, err = b.store.AddReview(b.ctx, review("bob", "carol", duplicate.DecisionSamePerson))
	require.NoError(t, err)
	size, _ = ringOf(t, b, "bob")
	require.Equal(t, 4, size)

	// Clearing dave's only link leaves dave alone.
	_, err = b.store.AddReview(b.ctx, review("dave", "carol", duplicate.DecisionSamePerson))
	require.NoError(t, err)
	size, members = ringOf(t, b, "dave")
	require.Equal(t, 1, size)
	require.Equal(t, []string{"dave"}, members)
	_, members = ringOf(t, b, "carol")
	require.Equal(t, []string{"alice", "bob", "carol"}, members)
}

func TestAnAlertsRingLeavesOutPairsClearedInAdvance(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []duplicate.Check{check("s1", "u1"), check("s2", "u2", "u9")} {
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	_, err := b.store.AddReview(b.ctx, review("u1", "u2", duplicate.DecisionSamePerson))
	require.NoError(t, err)
	saved, err := b.store.SaveCheck(b.ctx, check("s3", "u1", "u2", "u3"))
	require.NoError(t, err)
	require.Equal(t, []string{"u3"}, saved.Alert.NewMatchedUserIDs)
	require.Equal(t, 2, saved.Alert.RingSize, "u1 and u3: the cleared pair does not bring in u2's ring")
	require.Equal(t, duplicate.RingID("u1"), saved.Alert.RingID)
	size, _ := ringOf(t, b, "u9")
	require.Equal(t, 2, size)
}

func TestABatchMergesRingsAsOneByOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batcher := postgres.NewBatcher(b.store, 64, 1, 0)
	// Two rings built apart, then joined, all in whatever batches the Batcher makes.
	checks := []duplicate.Check{check("s1", "m", "n"), check("s2", "o", "n"), check("s3", "b", "c"),
		check("s4", "c", "d"), check("s5", "n", "d")}
	for _, c := range checks {
		_, err := batcher.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	size, members := ringOf(t, b, "m")
	require.Equal(t, 6, size)
	require.Equal(t, []string{"b", "c", "d", "m", "n", "o"}, members)
	var rings, rows int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT count(*) FROM rings), (SELECT count(*) FROM ring_members)`).Scan(&rings, &rows))
	require.Equal(t, 1, rings, "merged rings are retired")
	require.Equal(t, 6, rows)
}

func TestTheRingIndexIsFilledFromStoredLinks(t *testing.T) {
	t.Parallel()
	dbURL, pool := testinfra.Database(t)
	m, err := postgres.NewMigrator(dbURL)
	require.NoError(t, err)
	defer m.Close()
	// Back to the schema before the index, with links and a review stored there.
	for v, _, _, _ := m.Version(); v >= 5; v, _, _, _ = m.Version() {
		require.NoError(t, m.Down())
	}
	ctx := t.Context()
	_, err = pool.Exec(ctx, `
INSERT INTO duplicate_links VALUES ('a', 'b', now(), now(), 1, 's1', 's1'), ('b', 'c', now(), now(), 1, 's2', 's2'),
    ('c', 'd', now(), now(), 1, 's3', 's3'), ('x', 'y', now(), now(), 1, 's4', 's4');
INSERT INTO link_reviews (user_id_low, user_id_high, decision, reviewed_by) VALUES ('b', 'c', 'false_positive', 'analyst')`)
	require.NoError(t, err)
	require.NoError(t, m.Up())
	rows, err := pool.Query(ctx, `SELECT members FROM fraud_rings ORDER BY smallest_user_id`)
	require.NoError(t, err)
	rings, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	require.NoError(t, err)
	require.Equal(t, [][]string{{"a", "b"}, {"c", "d"}, {"x", "y"}}, rings)
}
