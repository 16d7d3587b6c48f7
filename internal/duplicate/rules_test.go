package duplicate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSeverityFollowsTheRingSize(t *testing.T) {
	t.Parallel()
	require.Equal(t, SeverityNormal, SeverityOf(4, 5))
	require.Equal(t, SeverityHigh, SeverityOf(5, 5))
	require.Equal(t, SeverityNormal, SeverityOf(500, 0), "0 disables the rule")

	c := Check{SignatureID: "s", UserID: "u", MatchedUserIDs: []string{"a", "b"}, CheckedAt: time.Now()}
	a := NewAlert("id", c, []string{"a"}, Ring{ID: "ring_x", Size: 6}, AlertPolicy{HighSeverityRingSize: 5})
	require.Equal(t, "ring_x", a.RingID)
	require.Equal(t, 6, a.RingSize)
	require.Equal(t, SeverityHigh, a.Severity)
	require.Nil(t, NewAlert("id", c, nil, Ring{}, AlertPolicy{}))
}

func TestRingIDIsTheHashOfTheSmallestMember(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("alice"))
	require.Equal(t, "ring_"+hex.EncodeToString(sum[:])[:16], RingID("alice"))
	require.NotEqual(t, RingID("alice"), RingID("bob"))
}

func TestReviewsThatClearAPairSuppressItsAlert(t *testing.T) {
	t.Parallel()
	require.True(t, DecisionFalsePositive.SuppressesAlerts())
	require.True(t, DecisionSamePerson.SuppressesAlerts())
	require.False(t, DecisionConfirmedFraud.SuppressesAlerts())
	require.False(t, Decision("maybe").Valid())
	for _, d := range Decisions {
		require.True(t, d.Valid())
	}
	require.True(t, PairState{Latest: DecisionSamePerson}.Cleared())
	require.False(t, PairState{Linked: true}.Cleared(), "a pair never reviewed is not cleared")
}

// replayStore keeps checks in a map and records what a re-run stored.
type replayStore struct {
	checks map[string]Check
	links  map[[2]string]bool
	err    error
}

func (s *replayStore) Check(_ context.Context, sig string) (Check, error) {
	c, ok := s.checks[sig]
	if !ok {
		return Check{}, Errorf(ENOTFOUND, "no check %s", sig)
	}
	return c, nil
}

func (s *replayStore) ReplaceCheck(_ context.Context, c Check) (Saved, []string, error) {
	if s.err != nil {
		return Saved{}, nil, s.err
	}
	prev := s.checks[c.SignatureID].MatchedUserIDs
	s.checks[c.SignatureID] = c
	var fresh []string
	for _, m := range c.MatchedUserIDs {
		lo, hi := Pair(c.UserID, m)
		if !s.links[[2]string{lo, hi}] {
			fresh = append(fresh, m)
		}
		s.links[[2]string{lo, hi}] = true
	}
	return Saved{Stored: true, NewLinks: fresh, Alert: NewAlert("a-"+c.SignatureID, c, fresh, Ring{}, AlertPolicy{})}, prev, nil
}

type flakyVendor struct {
	*fakeVendor
	failures int
}

func (v *flakyVendor) FaceSearch(ctx context.Context, sig string) (SearchResult, error) {
	if v.failures > 0 {
		v.failures--
		v.searches[sig]++
		return SearchResult{}, errors.New("connection reset")
	}
	return v.fakeVendor.FaceSearch(ctx, sig)
}

func TestReplayerSearchesAgainAndReportsWhatChanged(t *testing.T) {
	t.Parallel()
	v := newFakeVendor()
	st := &replayStore{links: map[[2]string]bool{{"alice", "bob"}: true}, checks: map[string]Check{
		"s1": {SignatureID: "s1", UserID: "alice", Outcome: OutcomeDuplicatesFound, MatchedUserIDs: []string{"bob"}},
		"s2": {SignatureID: "s2", UserID: "carol", Outcome: OutcomeNotPassed},
		"s3": {SignatureID: "s3", UserID: "dave", Outcome: OutcomeNoDuplicates},
	}}
	r := NewReplayer(OneAccount{v}, st, nil)
	v.similar["s1"] = []string{"alice", "erin"}
	v.similar["s3"] = nil

	res, err := r.Replay(context.Background(), "s1")
	require.NoError(t, err)
	require.Equal(t, ReplayStatusReplayed, res.Status)
	require.Equal(t, []string{"erin"}, res.Added)
	require.Equal(t, []string{"bob"}, res.Removed)
	require.Equal(t, []string{"erin"}, res.NewLinks)
	require.NotNil(t, res.Alert)
	require.True(t, res.Changed())
	require.NotNil(t, st.checks["s1"].ReplayedAt)
	require.Equal(t, "tx-s1", st.checks["s1"].VendorTransactionID)

	res, err = r.Replay(context.Background(), "s2")
	require.NoError(t, err)
	require.Equal(t, ReplayStatusSkipped, res.Status, "a non-PASS verification has no search to re-run")
	require.Zero(t, v.searches["s2"])

	_, err = r.Replay(context.Background(), "nope")
	require.Equal(t, ENOTFOUND, ErrorCode(err))

	summary, results := r.ReplayAll(context.Background(), []string{"s1", "s2", "s3", "nope"}, 1, nil)
	require.Equal(t, ReplaySummary{Requested: 4, Replayed: 2, Skipped: 1, Failed: 1}, summary)
	require.Equal(t, ReplayStatusFailed, results[3].Status)
	require.Equal(t, 2, v.searches["s1"], "every re-run is a new, billed search")
}

func TestReplayerRetriesTransientFailuresAndLeavesTheCheckOnFailure(t *testing.T) {
	t.Parallel()
	v := &flakyVendor{fakeVendor: newFakeVendor(), failures: 1}
	st := &replayStore{links: map[[2]string]bool{}, checks: map[string]Check{
		"s1": {SignatureID: "s1", UserID: "alice", Outcome: OutcomeNoDuplicates}}}
	r := NewReplayer(OneAccount{v}, st, nil)
	v.similar["s1"] = []string{"bob"}
	summary, _ := r.ReplayAll(context.Background(), []string{"s1"}, 1, nil)
	require.Equal(t, 1, summary.Replayed)
	require.Equal(t, 1, summary.Changed)
	require.Equal(t, 2, v.searches["s1"])

	st.err = errors.New("database down")
	before := st.checks["s1"]
	_, err := r.Replay(context.Background(), "s1")
	require.Equal(t, FailureStore, KindOf(err))
	require.Equal(t, before, st.checks["s1"])
}

// A review changes the rings only when it changes whether its pair is cleared: clearing may split
// the ring, un-clearing joins the two accounts' rings again.
func TestAReviewChangesRingsOnlyWhenItChangesWhetherThePairIsCleared(t *testing.T) {
	t.Parallel()
	none := Decision("")
	for _, c := range []struct {
		before, after Decision
		want          ReviewEffect
	}{
		{none, DecisionConfirmedFraud, ReviewKeepsRings},
		{none, DecisionFalsePositive, ReviewMaySplitRing},
		{none, DecisionSamePerson, ReviewMaySplitRing},
		{DecisionFalsePositive, DecisionSamePerson, ReviewKeepsRings},
		{DecisionFalsePositive, DecisionConfirmedFraud, ReviewJoinsRings},
		{DecisionConfirmedFraud, DecisionConfirmedFraud, ReviewKeepsRings},
	} {
		require.Equal(t, c.want, EffectOfReview(c.before, c.after), "%q -> %q", c.before, c.after)
	}
}
