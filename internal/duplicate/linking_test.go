package duplicate

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func linkCheck(sig, user string, matched ...string) Check {
	return Check{SignatureID: sig, UserID: user, MatchedUserIDs: matched,
		CheckedAt: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
}

func TestPlanLinksIsTheAlertRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		checks    []Check
		pairs     map[PairKey]PairState
		new       [][]string
		alertable [][]string
		links     []PairKey
		seen      []int
	}{{
		name:      "first sighting links and alerts",
		checks:    []Check{linkCheck("s1", "carol", "alice", "bob")},
		new:       [][]string{{"alice", "bob"}},
		alertable: [][]string{{"alice", "bob"}},
		links:     []PairKey{{"alice", "carol"}, {"bob", "carol"}},
		seen:      []int{1, 1},
	}, {
		name:      "re-verification of a linked pair refreshes it and stays quiet",
		checks:    []Check{linkCheck("s2", "alice", "carol")},
		pairs:     map[PairKey]PairState{{"alice", "carol"}: {Linked: true}},
		new:       [][]string{nil},
		alertable: [][]string{nil},
		links:     []PairKey{{"alice", "carol"}},
		seen:      []int{1},
	}, {
		name:      "the user's own id is no link",
		checks:    []Check{linkCheck("s1", "carol", "carol", "alice")},
		new:       [][]string{{"alice"}},
		alertable: [][]string{{"alice"}},
		links:     []PairKey{{"alice", "carol"}},
		seen:      []int{1},
	}, {
		name:   "a pair cleared in advance is linked but raises nothing",
		checks: []Check{linkCheck("s1", "carol", "alice", "bob", "dave")},
		pairs: map[PairKey]PairState{
			{"alice", "carol"}: {Latest: DecisionFalsePositive},
			{"bob", "carol"}:   {Latest: DecisionSamePerson},
			{"carol", "dave"}:  {Latest: DecisionConfirmedFraud}},
		new:       [][]string{{"alice", "bob", "dave"}},
		alertable: [][]string{{"dave"}},
		links:     []PairKey{{"alice", "carol"}, {"bob", "carol"}, {"carol", "dave"}},
		seen:      []int{1, 1, 1},
	}, {
		name:      "repeated ids in one answer count once",
		checks:    []Check{linkCheck("s1", "carol", "alice", "alice", "", "alice")},
		new:       [][]string{{"alice"}},
		alertable: [][]string{{"alice"}},
		links:     []PairKey{{"alice", "carol"}},
		seen:      []int{1},
	}, {
		name: "a pair two checks of one batch link is new for the first only",
		checks: []Check{linkCheck("s1", "carol", "alice"), linkCheck("s2", "alice", "carol", "bob"),
			linkCheck("s3", "carol", "alice")},
		new:       [][]string{{"alice"}, {"bob"}, nil},
		alertable: [][]string{{"alice"}, {"bob"}, nil},
		links:     []PairKey{{"alice", "bob"}, {"alice", "carol"}},
		seen:      []int{1, 3},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := PlanLinks(tc.checks, tc.pairs)
			require.Len(t, plan.Checks, len(tc.checks))
			for i := range tc.checks {
				require.Equal(t, tc.new[i], plan.Checks[i].NewLinks, "new links of check %d", i)
				require.Equal(t, tc.alertable[i], plan.Checks[i].Alertable, "alertable links of check %d", i)
			}
			var keys []PairKey
			var seen []int
			for _, l := range plan.Links {
				keys = append(keys, l.PairKey)
				seen = append(seen, l.Seen)
			}
			require.Equal(t, tc.links, keys, "one write per pair, in canonical order")
			require.Equal(t, tc.seen, seen)
		})
	}
}

func TestPlanLinksKeepsTheFirstAndLastSighting(t *testing.T) {
	t.Parallel()
	early, late := linkCheck("s1", "carol", "alice"), linkCheck("s2", "alice", "carol")
	late.CheckedAt = early.CheckedAt.Add(time.Second)
	plan := PlanLinks([]Check{early, late}, nil)
	require.Equal(t, []LinkWrite{{PairKey: PairKey{"alice", "carol"}, New: true, Live: true, FirstSeenAt: early.CheckedAt,
		LastSeenAt: late.CheckedAt, Seen: 2, FirstSignatureID: "s1", LastSignatureID: "s2", Regions: []string{DefaultRegion}}}, plan.Links)
}

func TestPlanLinksListsEachRegionThatSawThePairOnce(t *testing.T) {
	t.Parallel()
	a, b, c := linkCheck("s1", "carol", "alice"), linkCheck("s2", "alice", "carol"), linkCheck("s3", "carol", "alice")
	a.Region, b.Region, c.Region = "th", "ph", "th"
	plan := PlanLinks([]Check{a, b, c}, nil)
	require.Len(t, plan.Links, 1)
	require.Equal(t, []string{"th", "ph"}, plan.Links[0].Regions)
}

func TestMergeRingsFollowsTheRingRule(t *testing.T) {
	t.Parallel()
	ring := func(key, smallest string, size int) RingState { return RingState{key, smallest, size} }
	for _, tc := range []struct {
		name    string
		current map[string]RingState
		checks  []Check
		pairs   map[PairKey]PairState
		rings   []Ring
		changes RingChanges
	}{{
		name:   "two accounts alone form a ring named for the smaller",
		checks: []Check{linkCheck("s1", "bob", "alice")},
		rings:  []Ring{ring("", "alice", 2).Ring()},
		changes: RingChanges{Joined: map[string]string{"alice": "alice", "bob": "alice"}, Moved: map[string]string{},
			Rings: []RingState{ring("alice", "alice", 2)}},
	}, {
		name:    "an account joining a ring takes its key; a smaller member renames the ring",
		current: map[string]RingState{"carol": ring("carol", "carol", 3)},
		checks:  []Check{linkCheck("s1", "aaron", "carol")},
		rings:   []Ring{ring("", "aaron", 4).Ring()},
		changes: RingChanges{Joined: map[string]string{"aaron": "carol"}, Moved: map[string]string{},
			Rings: []RingState{ring("carol", "aaron", 4)}},
	}, {
		name: "merging two rings keeps the larger's key and the smaller smallest member",
		current: map[string]RingState{
			"zed": ring("yan", "xia", 3), "bob": ring("bob", "alice", 2)},
		checks: []Check{linkCheck("s1", "zed", "bob")},
		rings:  []Ring{ring("", "alice", 5).Ring()},
		changes: RingChanges{Joined: map[string]string{}, Moved: map[string]string{"bob": "yan"},
			Rings: []RingState{ring("yan", "alice", 5)}, Retired: []string{"bob"}},
	}, {
		name:    "each alert sees the ring as of its own check",
		current: map[string]RingState{},
		checks:  []Check{linkCheck("s1", "b", "a"), linkCheck("s2", "c", "d"), linkCheck("s3", "d", "a")},
		rings:   []Ring{ring("", "a", 2).Ring(), ring("", "c", 2).Ring(), ring("", "a", 4).Ring()},
		changes: RingChanges{Joined: map[string]string{"a": "a", "b": "a", "c": "a", "d": "a"}, Moved: map[string]string{},
			Rings: []RingState{ring("a", "a", 4)}},
	}, {
		name:    "a link inside one ring changes nothing",
		current: map[string]RingState{"a": ring("a", "a", 3), "c": ring("a", "a", 3)},
		checks:  []Check{linkCheck("s1", "c", "a")},
		rings:   []Ring{ring("", "a", 3).Ring()},
		changes: RingChanges{Joined: map[string]string{}, Moved: map[string]string{}},
	}, {
		name:    "a cleared pair joins no ring",
		checks:  []Check{linkCheck("s1", "bob", "alice")},
		pairs:   map[PairKey]PairState{{"alice", "bob"}: {Latest: DecisionSamePerson}},
		rings:   []Ring{{}},
		changes: RingChanges{Joined: map[string]string{}, Moved: map[string]string{}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := PlanLinks(tc.checks, tc.pairs)
			changes, _, rings := MergeRings(tc.current, tc.checks, plan)
			require.Equal(t, tc.rings, rings)
			require.Equal(t, tc.changes, changes)
			require.Equal(t, tc.changes.Empty(), changes.Empty())
		})
	}
}

// A face farm's batch: 50 new members, each matching the 500 accounts before it.
func BenchmarkPlanLinksFaceFarmBatch(b *testing.B) {
	checks := make([]Check, 50)
	for i := range checks {
		matched := make([]string, 500)
		for j := range matched {
			matched[j] = fmt.Sprintf("farm-u%07d", j)
		}
		checks[i] = Check{SignatureID: fmt.Sprintf("sig-%d", i), UserID: fmt.Sprintf("farm-u%07d", 500+i),
			MatchedUserIDs: matched, CheckedAt: time.Unix(int64(i), 0)}
	}
	pairs := map[PairKey]PairState{}
	b.ReportAllocs()
	for b.Loop() {
		PlanLinks(checks, pairs)
	}
}

// farmIDs returns n distinct userIds of one face farm, from "farm-000".
func farmIDs(from, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("farm-%03d", from+i)
	}
	return ids
}

// A check naming more accounts than MaxPairsPerCheck links the first ones pair by pair, in the
// vendor's order, after its own id and repeats are left out; the rest is its overflow.
func TestACheckLinksItsFirstAccountsAndKeepsTheRestAsOverflow(t *testing.T) {
	t.Parallel()
	named := farmIDs(0, MaxPairsPerCheck+30)
	answer := append([]string{"farm-999", named[0]}, named...) // its own id and a repeat first
	c := linkCheck("s1", "farm-999", answer...)
	linked, overflow := SplitMatches(c)
	require.Equal(t, named[:MaxPairsPerCheck], linked)
	require.Equal(t, named[MaxPairsPerCheck:], overflow)

	plan := PlanLinks([]Check{c}, nil)
	require.Len(t, plan.Links, MaxPairsPerCheck, "one link row per linked account, none for the overflow")
	require.Len(t, Pairs([]Check{c}), MaxPairsPerCheck, "the store reads only the linked pairs")
	require.Equal(t, named[:MaxPairsPerCheck], plan.Checks[0].Alertable)
	require.Equal(t, named[MaxPairsPerCheck:], plan.Checks[0].Overflow)
	require.Equal(t, named[MaxPairsPerCheck:], OverflowUsers([]Check{c, c}), "each overflow account once")
	require.Len(t, RingUsers([]Check{c}, plan), len(named)+1, "the rings of every account it may join")

	short := linkCheck("s2", "bob", "alice")
	require.Empty(t, PlanLinks([]Check{short}, nil).Checks[0].Overflow)
	require.Equal(t, named[MaxPairsPerCheck:], OverflowOf(c))
	require.Nil(t, OverflowOf(short))
}

func TestOverflowAccountsJoinTheRingAndRaiseTheAlertOnlyWhenNewToIt(t *testing.T) {
	t.Parallel()
	farm := farmIDs(0, MaxPairsPerCheck+3)
	inRing := RingState{Key: "farm-000", Smallest: "farm-000", Size: len(farm) + 1}
	all := func(users []string) map[string]RingState {
		m := map[string]RingState{}
		for _, u := range users {
			m[u] = inRing
		}
		return m
	}
	linkedPairs := func(user string) map[PairKey]PairState {
		m := map[PairKey]PairState{}
		for _, u := range farm[:MaxPairsPerCheck] {
			m[PairOf(user, u)] = PairState{Linked: true}
		}
		return m
	}

	t.Run("a new member joins every account of the farm", func(t *testing.T) {
		t.Parallel()
		c := linkCheck("s1", "farm-new", farm...)
		plan := PlanLinks([]Check{c}, nil)
		changes, alertable, rings := MergeRings(all(farm), []Check{c}, plan)
		require.Equal(t, farm[:MaxPairsPerCheck], alertable[0], "its new links: the overflow was in the ring they joined")
		require.Equal(t, len(farm)+2, rings[0].Size)
		require.Equal(t, map[string]string{"farm-new": "farm-000"}, changes.Joined)
	})
	t.Run("re-verification of a member whose overflow is in its ring stays quiet", func(t *testing.T) {
		t.Parallel()
		c := linkCheck("s2", "farm-member", farm...)
		current := all(append([]string{"farm-member"}, farm...))
		plan := PlanLinks([]Check{c}, linkedPairs("farm-member"))
		changes, alertable, rings := MergeRings(current, []Check{c}, plan)
		require.Empty(t, alertable[0])
		require.Equal(t, Ring{}, rings[0])
		require.True(t, changes.Empty())
	})
	t.Run("an account new to the ring past the bound raises the alert on its own", func(t *testing.T) {
		t.Parallel()
		answer := append(append([]string{}, farm...), "stranger")
		c := linkCheck("s3", "farm-member", answer...)
		current := all(append([]string{"farm-member"}, farm...))
		plan := PlanLinks([]Check{c}, linkedPairs("farm-member"))
		require.Empty(t, plan.Checks[0].Alertable, "every linked pair existed")
		changes, alertable, rings := MergeRings(current, []Check{c}, plan)
		require.Equal(t, []string{"stranger"}, alertable[0])
		require.Equal(t, len(farm)+2, rings[0].Size)
		require.Equal(t, map[string]string{"stranger": "farm-000"}, changes.Joined)
	})
	t.Run("an overflow account whose pair is cleared joins nothing and raises nothing", func(t *testing.T) {
		t.Parallel()
		c := linkCheck("s6", "farm-member", append(append([]string{}, farm...), "cleared")...)
		pairs := linkedPairs("farm-member")
		pairs[PairOf("farm-member", "cleared")] = PairState{Latest: DecisionSamePerson}
		plan := PlanLinks([]Check{c}, pairs)
		require.NotContains(t, plan.Checks[0].Overflow, "cleared")
		changes, alertable, _ := MergeRings(all(append([]string{"farm-member"}, farm...)), []Check{c}, plan)
		require.Empty(t, alertable[0])
		require.True(t, changes.Empty())
	})
	t.Run("an overflow account joined earlier in the batch is not new again", func(t *testing.T) {
		t.Parallel()
		first := linkCheck("s4", "x1", append(append([]string{}, farm...), "stranger")...)
		second := linkCheck("s5", "x2", append(append([]string{}, farm...), "stranger")...)
		checks := []Check{first, second}
		plan := PlanLinks(checks, nil)
		_, alertable, _ := MergeRings(all(farm), checks, plan)
		require.Equal(t, append(append([]string{}, farm[:MaxPairsPerCheck]...), "stranger"), alertable[0])
		require.Equal(t, farm[:MaxPairsPerCheck], alertable[1], "the stranger joined the ring with x1's check")
	})
}
