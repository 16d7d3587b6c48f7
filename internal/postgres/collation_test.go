package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// In en-US 'a' sorts before 'B'; by bytes (Go's order, duplicate.PairOf and duplicate.RingID) 'B'
// comes first. A database in such a locale (the postgres image's default is en_US.UTF-8) must agree
// with Go on every pair, ring id and review.
func TestUserIDsCompareByteByByteWhateverTheDatabasesCollation(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.DatabaseWithLocale(t, "en-US")
	b := bundle{pool: pool, store: postgres.NewStore(pool), ctx: context.Background()}
	var collationSortsBFirst bool
	require.NoError(t, pool.QueryRow(b.ctx, `SELECT 'B'::text < 'a'::text`).Scan(&collationSortsBFirst))
	require.False(t, collationSortsBFirst, "the test needs a default collation that disagrees with byte order")

	// Go's canonical pair is (B, a): the table must accept it.
	saved, err := b.store.SaveCheck(b.ctx, check("s1", "a", "B"))
	require.NoError(t, err)
	require.Equal(t, []string{"B"}, saved.NewLinks)
	_, err = b.store.SaveCheck(b.ctx, check("s2", "c", "a"))
	require.NoError(t, err)
	require.Equal(t, map[string]int{"B-a": 1, "a-c": 1}, linkRows(t, b))

	// The ring's id comes from its smallest member by bytes, in the index and in the view.
	ring, err := b.store.Ring(b.ctx, "c")
	require.NoError(t, err)
	require.Equal(t, duplicate.RingID("B"), ring.ID)
	require.Equal(t, []string{"B", "a", "c"}, ring.Members)
	var viewRingID string
	var viewMembers []string
	require.NoError(t, pool.QueryRow(b.ctx, `SELECT ring_id, members FROM fraud_rings`).Scan(&viewRingID, &viewMembers))
	require.Equal(t, duplicate.RingID("B"), viewRingID)
	require.Equal(t, []string{"B", "a", "c"}, viewMembers)

	// A review names the stored link, clears it from the ring, and takes the alert off the open queue.
	review, err := b.store.AddReview(b.ctx, duplicate.Review{UserID: "a", DuplicateUserID: "B",
		Decision: duplicate.DecisionFalsePositive, ReviewedBy: "analyst"})
	require.NoError(t, err)
	require.True(t, review.Linked, "the review must find the link (B, a)")
	ring, err = b.store.Ring(b.ctx, "c")
	require.NoError(t, err)
	require.Equal(t, duplicate.RingID("a"), ring.ID)
	require.Equal(t, []string{"a", "c"}, ring.Members)

	rows, err := pool.Query(b.ctx, `SELECT signature_id FROM open_alerts ORDER BY 1`)
	require.NoError(t, err)
	open, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"s2"}, open, "s1's only new pair is reviewed")
}
