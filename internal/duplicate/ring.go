package duplicate

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"
)

// MaxRingMembers bounds how many accounts a ring look-up lists. Real fraud rings are far smaller;
// the bound keeps one giant component (a face shared by thousands, or a vendor glitch) from turning
// every look-up into a page of thousands of ids. A ring cut at the bound says so (Truncated).
const MaxRingMembers = 1000

// MaxRingPageMembers is the largest ring whose page (GET /v1/rings/{ringId}, /cluster, the
// console) shows all of its links. A larger one, a face farm of thousands, shows its totals and the
// neighbourhood of one account (its own links in the ring, MaxNeighbourLinks of them, newest first):
// all the links of a farm of 5,000 are hundreds of thousands, which no page can show or read in time.
const MaxRingPageMembers = 50

// MaxNeighbourLinks bounds the links of one account that a large ring's page shows.
const MaxNeighbourLinks = 100

// Ring is a fraud ring: the connected component of the duplicate-link graph that holds a user, that
// is every account transitively linked to it, over links whose latest review is not
// false_positive or same_person (a person said those pairs are not fraud, so they join no ring).
//
// Its ID is derived from the smallest userId of the component (RingID), so it is stable while the
// ring grows from any side. When two rings merge, the merged ring keeps the ID of the one with the
// smaller smallest member and the other ID is retired: subscribers that group alerts by ring should
// treat an ID as "the ring as of this alert". The ring index (RingState, MergeRings) keeps every
// account's ring as links are written, so no look-up walks the graph.
type Ring struct {
	ID      string
	Size    int
	Members []string
	Links   []Link
	// Truncated is true when the ring has more than MaxRingMembers accounts (Members holds the
	// first by userId; Size is still the whole ring's) or more links than a look-up returns.
	Truncated bool
	// Focus is the account whose neighbourhood Links holds, in a ring larger than
	// MaxRingPageMembers; "" when Links holds every link of the ring.
	Focus string
	// The ring's totals, from its stored summary: live links, their first and last sightings, and
	// the members' open alerts (zero values for a ring of one).
	LinkCount   int
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	OpenAlerts  int
}

// RingID returns the ID of the ring whose smallest userId is smallest: "ring_" and the first 16 hex
// digits of the SHA-256 of that userId. Hashing gives a fixed-size ID that does not repeat a userId
// in places (dashboards, alert topics) that treat it as an opaque label. The SQL function
// doppel_ring_id computes the same value for the fraud_rings view.
func RingID(smallestUserID string) string {
	sum := sha256.Sum256([]byte(smallestUserID))
	return "ring_" + hex.EncodeToString(sum[:8])
}

// Link is a stored duplicate-account link between two users, in canonical (low, high) order.
type Link struct {
	UserIDLow        string
	UserIDHigh       string
	FirstSeenAt      time.Time
	LastSeenAt       time.Time
	SeenCount        int
	FirstSignatureID string
	LastSignatureID  string
	// Regions are the vendor regions whose face search found the pair, in the order they first did.
	Regions []string
	// LatestReview is the most recent review of the pair, nil when none.
	LatestReview *Review
}

// RegionRing returns the part of ring that one region's face search found: the accounts reached
// from userID over the ring's links that region found and no review cleared, as the
// region_fraud_rings view computes it, with the ring's links among them. Like every ring its ID
// follows its smallest member. The ring index holds rings of every region, so a region's ring is
// cut from the whole one: it is only as complete as ring's links, and Truncated when ring is.
// Accounts that joined the ring with no link of their own (a face farm's overflow) are in no
// region's ring.
func RegionRing(ring Ring, userID, region string) Ring {
	neighbours := map[string][]string{}
	for _, l := range ring.Links {
		if slices.Contains(l.Regions, region) && (l.LatestReview == nil || !l.LatestReview.Decision.SuppressesAlerts()) {
			neighbours[l.UserIDLow] = append(neighbours[l.UserIDLow], l.UserIDHigh)
			neighbours[l.UserIDHigh] = append(neighbours[l.UserIDHigh], l.UserIDLow)
		}
	}
	reached := map[string]bool{userID: true}
	members := []string{userID}
	for next := 0; next < len(members); next++ {
		for _, other := range neighbours[members[next]] {
			if !reached[other] {
				reached[other] = true
				members = append(members, other)
			}
		}
	}
	slices.Sort(members)
	out := Ring{ID: RingID(members[0]), Size: len(members), Members: members, Truncated: ring.Truncated}
	for _, l := range ring.Links {
		if slices.Contains(l.Regions, region) && reached[l.UserIDLow] && reached[l.UserIDHigh] {
			out.Links = append(out.Links, l)
		}
	}
	return out
}

// RingState is a ring as the ring index stores it. Key is the userId of one of its members: it names
// the ring in storage and stays while that member does (a merge keeps the larger ring's key, so a
// merge rewrites only the smaller ring's members). Smallest is the smallest member, whose hash is the
// ring's public ID.
type RingState struct {
	Key      string
	Smallest string
	Size     int
}

// Alone is the ring of a user the index does not hold: the user alone. Such rings are not stored.
func Alone(userID string) RingState {
	return RingState{Key: userID, Smallest: userID, Size: 1}
}

// Ring returns the ring's public ID and size.
func (r RingState) Ring() Ring { return Ring{ID: RingID(r.Smallest), Size: r.Size} }

// RingChanges is what a batch's links change in the ring index.
type RingChanges struct {
	// Joined maps each user that was in no stored ring to the key of the ring it is in now.
	Joined map[string]string
	// Moved maps the key of each stored ring merged into another to the surviving ring's key: all of
	// its members move.
	Moved map[string]string
	// Rings are the rings created or grown, as they stand after the batch.
	Rings []RingState
	// Retired are the keys of stored rings that no longer exist (they are in Moved).
	Retired []string
}

// Empty reports whether the batch changed no ring.
func (c RingChanges) Empty() bool { return len(c.Rings) == 0 }

// MergeRings applies the links that join rings (each check's Alertable links, in the batch's order)
// to the rings the users were in before the batch (current, keyed by userId; a user missing from it
// is Alone), and joins each check's Overflow accounts to its user's ring. It returns the changes to
// store; per check, the accounts that raise its alert: its Alertable links, then the overflow
// accounts that were not in the user's ring yet at that point of the batch (empty: no alert); and
// per check, the user's ring right after its own accounts were joined (what its alert says; zero
// for a check that raises no alert).
//
// Rings are merged union-by-size: the larger ring keeps its key and the smaller one's members move,
// so a user moves O(log n) times however a ring of n grows. Only the public ID follows the smallest
// member, as docs/performance.md's ring rule says.
func MergeRings(current map[string]RingState, checks []Check, plan LinkPlan) (RingChanges, [][]string, []Ring) {
	parent := map[string]string{}
	state := map[string]*RingState{}
	stored := map[string]RingState{} // rings the index held, by key
	joined := map[string]bool{}
	userKey := func(u string) string {
		if r, ok := current[u]; ok && r.Size > 1 {
			if _, seen := state[r.Key]; !seen && parent[r.Key] == "" {
				st := r
				state[r.Key] = &st
				stored[r.Key] = r
			}
			return r.Key
		}
		if _, seen := state[u]; !seen && parent[u] == "" {
			st := Alone(u)
			state[u] = &st
			joined[u] = true
		}
		return u
	}
	var find func(string) string
	find = func(k string) string {
		p := parent[k]
		if p == "" {
			return k
		}
		root := find(p)
		parent[k] = root
		return root
	}
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra == rb {
			return
		}
		sa, sb := state[ra], state[rb]
		if sb.Size > sa.Size || (sb.Size == sa.Size && rb < ra) {
			ra, rb, sa, sb = rb, ra, sb, sa
		}
		sa.Size += sb.Size
		sa.Smallest = min(sa.Smallest, sb.Smallest)
		parent[rb] = ra
		delete(state, rb)
	}

	rings := make([]Ring, len(checks))
	alertable := make([][]string, len(checks))
	for i, l := range plan.Checks {
		if len(l.Alertable) == 0 && len(l.Overflow) == 0 {
			continue
		}
		u := userKey(checks[i].UserID)
		alertable[i] = slices.Clip(l.Alertable)
		for _, m := range l.Alertable {
			union(u, userKey(m))
		}
		for _, m := range l.Overflow {
			if k := userKey(m); find(k) != find(u) {
				alertable[i] = append(alertable[i], m)
				union(u, k)
			}
		}
		if len(alertable[i]) > 0 {
			rings[i] = state[find(u)].Ring()
		}
	}

	changes := RingChanges{Joined: map[string]string{}, Moved: map[string]string{}}
	for u := range joined {
		// A ring of one is never stored.
		if root := find(u); state[root].Size > 1 {
			changes.Joined[u] = root
		}
	}
	for k := range stored {
		if root := find(k); root != k {
			changes.Moved[k] = root
			changes.Retired = append(changes.Retired, k)
		}
	}
	for k, st := range state {
		if before, ok := stored[k]; (!ok || *st != before) && st.Size > 1 {
			changes.Rings = append(changes.Rings, *st)
		}
	}
	slices.SortFunc(changes.Rings, func(a, b RingState) int { return strings.Compare(a.Key, b.Key) })
	slices.Sort(changes.Retired)
	return changes, alertable, rings
}

// ReviewEffect is what a new review of a linked pair does to the ring index.
type ReviewEffect int

const (
	// ReviewKeepsRings: the review did not change whether the pair is cleared.
	ReviewKeepsRings ReviewEffect = iota
	// ReviewJoinsRings: the pair is no longer cleared (confirmed_fraud after false_positive), so its
	// two accounts' rings join (JoinPair).
	ReviewJoinsRings
	// ReviewMaySplitRing: the pair is now cleared, so its ring may fall in two; whether it does
	// depends on the ring's other links, which the store searches.
	ReviewMaySplitRing
)

// EffectOfReview says what a pair's latest review going from before to after does to the rings:
// the cleared-pair rule (Decision.SuppressesAlerts) applied to a review.
func EffectOfReview(before, after Decision) ReviewEffect {
	switch wasCleared, cleared := before.SuppressesAlerts(), after.SuppressesAlerts(); {
	case wasCleared == cleared:
		return ReviewKeepsRings
	case cleared:
		return ReviewMaySplitRing
	default:
		return ReviewJoinsRings
	}
}

// JoinPair returns the ring index's changes when pair links again: the ring rule (MergeRings) for
// one link between the pair's accounts, whose rings are current.
func JoinPair(current map[string]RingState, pair PairKey) RingChanges {
	checks := []Check{{UserID: pair.Low}}
	plan := LinkPlan{Checks: []Linking{{Alertable: []string{pair.High}}}}
	changes, _, _ := MergeRings(current, checks, plan)
	return changes
}
