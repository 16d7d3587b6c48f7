package duplicate

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// PairKey is an unordered pair of userIds in canonical (Low < High) order, the key of a link.
type PairKey struct {
	Low, High string
}

// PairOf returns the canonical key of the pair {a, b}.
func PairOf(a, b string) PairKey {
	lo, hi := Pair(a, b)
	return PairKey{Low: lo, High: hi}
}

// Other returns the member of the pair that is not userID.
func (p PairKey) Other(userID string) string {
	if p.Low == userID {
		return p.High
	}
	return p.Low
}

// PairState is what the store holds about a pair before a batch of checks is written: whether it is
// linked and its latest review's decision ("" when never reviewed). A pair the store does not
// mention is neither.
type PairState struct {
	Linked bool
	Latest Decision
}

// Cleared reports whether a person has said the pair is not fraud: such a pair raises no alert and
// does not join two accounts into one ring.
func (p PairState) Cleared() bool { return p.Latest.SuppressesAlerts() }

// LinkWrite is one row of duplicate_links as a batch writes it: inserted when the pair is new,
// otherwise its last sighting and count are refreshed. Seen is how many checks of the batch saw it.
type LinkWrite struct {
	PairKey
	// New is true when the pair was not linked before the batch.
	New bool
	// Live is true when no review has cleared the pair: a live link holds its two accounts in one
	// ring, and the ring's summary counts it (a cleared one is kept as a record of the match).
	Live             bool
	FirstSeenAt      time.Time
	LastSeenAt       time.Time
	Seen             int
	FirstSignatureID string
	LastSignatureID  string
	// ReachesFailedAttempt is true when a check linking the pair matched its other account as
	// known only by an enrolled failed attempt (Check.MatchedFailedUserIDs).
	ReachesFailedAttempt bool
	// Regions are the regions whose face search found the pair in this batch, each once, in the
	// order of the batch; stored links add those they do not list yet.
	Regions []string
}

// Linking is what the alert rule decided for one check.
type Linking struct {
	// NewLinks are the matched userIds whose link did not exist before this check, in the check's order.
	NewLinks []string
	// Alertable are the new links no review has cleared: they raise the alert and join the user's
	// ring with theirs. Empty means no alert.
	Alertable []string
	// Overflow are the matched accounts past the first MaxPairsPerCheck (SplitMatches) whose pair
	// no review has cleared: no link row is written for them; MergeRings joins them to the user's
	// ring, and those that were not in it yet raise the alert as new links do. (The store keeps the
	// whole overflow, cleared pairs too, as the record of the answer.)
	Overflow []string
}

// MaxPairsPerCheck bounds the accounts one check links pair by pair: the first ones its vendor
// answer names, which are also the ones its stored list and its alert show (MaxListedUserIDs). A
// face farm's answer names every earlier member, so one row per pair made K(K-1)/2 rows for a farm
// of K accounts (499,500 for 1,000, about 5 µs of PostgreSQL each); past the bound each account
// still joins the user's ring (the ring index counts every member), and the whole answer is stored
// once with the check, so no match is lost.
const MaxPairsPerCheck = MaxListedUserIDs

// SplitMatches returns the accounts a check matched (MatchedUsers: its own id and repeats left
// out), split into those it links pair by pair, the first MaxPairsPerCheck in the vendor's order,
// and the rest, its overflow.
func SplitMatches(c Check) (linked, overflow []string) {
	matched := MatchedUsers(c.UserID, c.MatchedUserIDs)
	if len(matched) > MaxPairsPerCheck {
		return matched[:MaxPairsPerCheck:MaxPairsPerCheck], matched[MaxPairsPerCheck:]
	}
	return matched, nil
}

// OverflowOf returns a check's overflow (SplitMatches), without deduplicating the answer of a
// check that names too few accounts to have one: most checks of a batch name one to three.
func OverflowOf(c Check) []string {
	if len(c.MatchedUserIDs) <= MaxPairsPerCheck {
		return nil
	}
	_, overflow := SplitMatches(c)
	return overflow
}

// LinkPlan is what a batch of stored checks writes to duplicate_links, and what each check raises.
type LinkPlan struct {
	// Links holds one write per distinct pair, in canonical pair order, so a batch always writes
	// its rows in the same order.
	Links []LinkWrite
	// Checks is one Linking per check, in the batch's order.
	Checks []Linking
}

// Pairs returns every pair the checks link, deduplicated, for the store to look up before PlanLinks.
func Pairs(checks []Check) []PairKey {
	seen := map[PairKey]struct{}{}
	var out []PairKey
	for _, c := range checks {
		linked, _ := SplitMatches(c)
		for _, m := range linked {
			k := PairOf(c.UserID, m)
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				out = append(out, k)
			}
		}
	}
	return out
}

// PlanLinks is the alert rule. Given stored checks in the order they are written and the state of
// their pairs before the batch, it returns the links to write and, per check, the links that are
// new and the new ones that raise an alert.
//
// A pair is new for the first check of the batch that links it and for no later one, exactly as if
// the checks were written one at a time; the user's own id and repeated ids in a vendor answer are
// ignored; a new pair whose latest review is false_positive or same_person is written (it records
// that the faces matched) but raises nothing and joins no ring. Only a check's first
// MaxPairsPerCheck accounts are linked; the rest are its Overflow, which MergeRings decides.
func PlanLinks(checks []Check, pairs map[PairKey]PairState) LinkPlan {
	plan := LinkPlan{Checks: make([]Linking, len(checks))}
	n := 0
	for _, c := range checks {
		n += min(len(c.MatchedUserIDs), MaxPairsPerCheck)
	}
	// A face farm's batch plans hundreds of thousands of links: they are kept by value and found by
	// index (not one allocation each), and a check's links share its one-region list (len == cap,
	// so adding a second region copies it).
	links := make([]LinkWrite, 0, n)
	at := make(map[PairKey]int, n)
	for i, c := range checks {
		regions := []string{RegionOf(c)}
		linked, overflow := SplitMatches(c)
		for _, m := range overflow {
			if !pairs[PairOf(c.UserID, m)].Cleared() {
				plan.Checks[i].Overflow = append(plan.Checks[i].Overflow, m)
			}
		}
		for _, m := range linked {
			k := PairOf(c.UserID, m)
			failed := slices.Contains(c.MatchedFailedUserIDs, m)
			if j, ok := at[k]; ok {
				w := &links[j]
				w.ReachesFailedAttempt = w.ReachesFailedAttempt || failed
				w.Seen++
				w.LastSignatureID = c.SignatureID
				if !slices.Contains(w.Regions, regions[0]) {
					w.Regions = append(w.Regions, regions[0])
				}
				if c.CheckedAt.After(w.LastSeenAt) {
					w.LastSeenAt = c.CheckedAt
				}
				continue
			}
			st := pairs[k]
			at[k] = len(links)
			links = append(links, LinkWrite{PairKey: k, New: !st.Linked, Live: !st.Cleared(), FirstSeenAt: c.CheckedAt, LastSeenAt: c.CheckedAt, Seen: 1,
				FirstSignatureID: c.SignatureID, LastSignatureID: c.SignatureID, ReachesFailedAttempt: failed,
				Regions: regions})
			if st.Linked {
				continue
			}
			plan.Checks[i].NewLinks = append(plan.Checks[i].NewLinks, m)
			if !st.Cleared() {
				plan.Checks[i].Alertable = append(plan.Checks[i].Alertable, m)
			}
		}
	}
	// Written in pair order, so that concurrent transactions lock rows in one order. The order is
	// sorted as indexes: moving the structs themselves cost more than comparing them.
	order := make([]int32, len(links))
	for j := range order {
		order[j] = int32(j)
	}
	slices.SortFunc(order, func(a, b int32) int { return comparePairs(links[a].PairKey, links[b].PairKey) })
	plan.Links = make([]LinkWrite, len(links))
	for j, from := range order {
		plan.Links[j] = links[from]
	}
	return plan
}

func comparePairs(a, b PairKey) int {
	return cmp.Or(strings.Compare(a.Low, b.Low), strings.Compare(a.High, b.High))
}

// RingUsers returns the users whose rings the store must read before MergeRings: the users of the
// checks that raise an alert or have an overflow, and the accounts they may join.
func RingUsers(checks []Check, plan LinkPlan) []string {
	seen := map[string]struct{}{}
	var out []string
	add := func(u string) {
		if _, dup := seen[u]; !dup {
			seen[u] = struct{}{}
			out = append(out, u)
		}
	}
	for i, l := range plan.Checks {
		if len(l.Alertable) == 0 && len(l.Overflow) == 0 {
			continue
		}
		add(checks[i].UserID)
		for _, m := range l.Alertable {
			add(m)
		}
		for _, m := range l.Overflow {
			add(m)
		}
	}
	slices.Sort(out)
	return out
}

// OverflowUsers returns every account of the checks' overflows, once each: the accounts whose rings
// a batch reads besides its pairs' (see SplitMatches).
func OverflowUsers(checks []Check) []string {
	seen := map[string]struct{}{}
	var out []string
	for _, c := range checks {
		for _, m := range OverflowOf(c) {
			if _, dup := seen[m]; !dup {
				seen[m] = struct{}{}
				out = append(out, m)
			}
		}
	}
	return out
}

// LinkDecision is what a batch of stored checks changes, as DecideLinks decides it: the links to
// write, the ring index's changes, the alerts for the outbox and the overflows to keep. The store
// writes it as it is.
type LinkDecision struct {
	// Saved answers each check, in the batch's order.
	Saved   []Saved
	Plan    LinkPlan
	Changes RingChanges
	Alerts  []*Alert
	// Overflows are the checks whose answers name more than MaxPairsPerCheck accounts, with the
	// accounts past them (OverflowOf).
	Overflows []CheckOverflow
}

// CheckOverflow is one check's accounts past its first MaxPairsPerCheck, in the vendor's order.
type CheckOverflow struct {
	SignatureID string
	UserIDs     []string
}

// DecideLinks is the one place the linking rules run for stored checks: the alert rule (PlanLinks:
// which pairs are new, which a review cleared), the ring rule (MergeRings: which rings join and
// which accounts are new to a ring) and the alert each check raises (NewAlert). It is pure: states
// are the stored states of the checks' pairs, rings reads the rings of the accounts the rule may
// join (the store answers from what it read already, or reads them), newAlertID names each alert.
// The store reads what it needs before and writes the decision after, in one transaction.
func DecideLinks(checks []Check, states map[PairKey]PairState, rings func(users []string) (map[string]RingState, error),
	newAlertID func() string, policy AlertPolicy) (LinkDecision, error) {
	d := LinkDecision{Saved: make([]Saved, len(checks)), Plan: PlanLinks(checks, states)}
	current, err := rings(RingUsers(checks, d.Plan))
	if err != nil {
		return LinkDecision{}, err
	}
	changes, alertable, ringOf := MergeRings(current, checks, d.Plan)
	d.Changes = changes
	for i, c := range checks {
		d.Saved[i].Stored = true
		d.Saved[i].NewLinks = d.Plan.Checks[i].NewLinks
		if len(alertable[i]) > 0 {
			d.Saved[i].Alert = NewAlert(newAlertID(), c, alertable[i], ringOf[i], policy)
			d.Alerts = append(d.Alerts, d.Saved[i].Alert)
		}
		if overflow := OverflowOf(c); len(overflow) > 0 {
			d.Overflows = append(d.Overflows, CheckOverflow{SignatureID: c.SignatureID, UserIDs: overflow})
		}
	}
	return d, nil
}
