package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

func TestARingsNeighbourhoodIsBoundedByItsLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A star of 12 around hub, then spoke-11 linked to spoke-10 too; spoke-11 verified last.
	_, err := b.store.SaveCheck(b.ctx, check("s-hub", "hub"))
	require.NoError(t, err)
	for i := range 12 {
		matched := []string{"hub"}
		if i == 11 {
			matched = append(matched, "spoke-10")
		}
		c := check(fmt.Sprintf("s-%d", i), fmt.Sprintf("spoke-%02d", i), matched...)
		c.CheckedAt = time.Now().Add(time.Duration(i) * time.Second)
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	ringID := duplicate.RingID("hub")
	size, err := b.store.RingSize(b.ctx, ringID)
	require.NoError(t, err)
	require.Equal(t, 13, size)

	nb, err := b.store.RingNeighbourhood(b.ctx, ringID, "hub", 5)
	require.NoError(t, err)
	require.Equal(t, "hub", nb.Centre)
	require.Equal(t, 12, nb.CentreLinks)
	require.Len(t, nb.Members, 6, "the account and at most 5 neighbours")
	require.Equal(t, []string{"hub", "spoke-11", "spoke-10", "spoke-09", "spoke-08", "spoke-07"}, nb.Members, "most recently linked first")
	require.Len(t, nb.Pairs, 6, "five spokes and the link between spoke-10 and spoke-11")
	for _, p := range nb.Pairs {
		require.NotEmpty(t, p.SignatureIDs, "each pair with the verification that linked it")
	}

	newest, err := b.store.RingNeighbourhood(b.ctx, ringID, "", 5)
	require.NoError(t, err)
	require.Equal(t, "spoke-11", newest.Centre, "without an account asked for: the ring's newest")
	require.Equal(t, []string{"spoke-11", "hub", "spoke-10"}, newest.Members)
	outsider, err := b.store.RingNeighbourhood(b.ctx, ringID, "nobody", 5)
	require.NoError(t, err)
	require.Equal(t, "spoke-11", outsider.Centre, "an account outside the ring is not its centre")

	page, err := b.store.RingMembersPage(b.ctx, ringID, "", 5)
	require.NoError(t, err)
	require.Equal(t, []string{"hub", "spoke-00", "spoke-01", "spoke-02", "spoke-03"}, page)
	page, err = b.store.RingMembersPage(b.ctx, ringID, "spoke-09", 5)
	require.NoError(t, err)
	require.Equal(t, []string{"spoke-10", "spoke-11"}, page)

	_, err = b.store.RingSize(b.ctx, "ring_0000000000000000")
	require.Equal(t, duplicate.ENOTFOUND, duplicate.ErrorCode(err))
}

func TestLatestChecksPreferTheFaceSearch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	searched := check("s-searched", "ana")
	searched.CheckedAt = time.Now().Add(-time.Hour)
	_, err := b.store.SaveCheck(b.ctx, searched)
	require.NoError(t, err)
	later := check("s-later", "ana")
	later.Outcome, later.SimilarUserIDs, later.MatchedUserIDs = duplicate.OutcomeNotPassed, nil, nil
	_, err = b.store.SaveCheck(b.ctx, later)
	require.NoError(t, err)
	_, err = b.store.SaveCheck(b.ctx, check("s-bo", "bo"))
	require.NoError(t, err)

	got, err := b.store.LatestChecks(b.ctx, []string{"ana", "bo", "nobody"})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, "s-searched", got[0].SignatureID, "the verification whose face was searched, not a later failure")
	require.Equal(t, duplicate.DefaultRegion, got[0].Region)
	require.Equal(t, "s-bo", got[1].SignatureID)
}
