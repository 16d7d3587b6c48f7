// Package scale fills a database with a year of production-shaped data and measures Doppel's read
// routes and console pages on it (`make bench-scale`, issue 23). The data goes in through the
// pipeline's own write path (postgres.Store.SaveChecks, the group commit's batch, and
// Store.AddReview), not through a copy of its rules in SQL: a generator that re-implemented the
// linking, ring and alert rules would drift from them the day a rule changed, and the measurement
// would then time a database the service never writes. What it skips is only what does not change
// the rows: Kafka, the vendor and the per-event round trips.
package scale

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/faces"
)

// Shape is the shape of the generated data, the one issue 23 measured at 2,000,000 checks.
type Shape struct {
	// Checks is how many checks (verifications) to store.
	Checks int
	// RingFraction of the users are in rings of 2 to 4 accounts sharing one face.
	RingFraction float64
	// Farms are face farms: each is that many accounts behind one face. A farm larger than a
	// tenth of the users is cut to a tenth, so small sizes keep the proportions sane.
	Farms []int
	// Reverify is the fraction of users who verify twice (the second time later in the year).
	Reverify float64
	// Reviews is how many reviews analysts recorded (scaled with Checks by DefaultShape).
	Reviews int
	// Start is when the year of checks begins; Span is how long it lasts.
	Start time.Time
	Span  time.Duration
	Seed  uint64
}

// DefaultShape is issue 23's shape at n checks: 10 % of users in rings of 2-4, face farms of 1,000
// and 5,000, 25,000 reviews per 2,000,000 checks, 3 % of users verifying twice, a year of checks
// ending at end.
func DefaultShape(n int, end time.Time) Shape {
	year := 365 * 24 * time.Hour
	return Shape{Checks: n, RingFraction: 0.10, Farms: []int{1000, 5000}, Reverify: 0.03,
		Reviews: max(10, int(int64(n)*25_000/2_000_000)), Start: end.Add(-year), Span: year, Seed: 23}
}

// Population is the generated people and the order in which they verify. It holds a few bytes per
// check; the checks themselves are built on the fly (Checks), so ten million of them never sit in
// memory at once.
type Population struct {
	shape Shape
	// faceOf is each user's face; users are numbered 0..len(faceOf)-1.
	faceOf []int32
	// order is the user of each check, in check order; a user who verifies twice appears twice.
	order []int32
	// ringFaces are the faces of two to four users (not the farms), for reviews.
	ringFaces []int32
	// farmFaces are the farms' faces, largest last.
	farmFaces []int32
	// FarmSizes are the farms as generated (cut to the population).
	FarmSizes []int
}

// NewPopulation draws the population of s. One seed gives one population.
func NewPopulation(s Shape) *Population {
	rng := rand.New(rand.NewPCG(s.Seed, 0x5ca1e))
	users := max(1, int(float64(s.Checks)/(1+s.Reverify)))
	p := &Population{shape: s, faceOf: make([]int32, 0, users)}
	face := int32(0)
	farmUsers := 0
	for _, k := range s.Farms {
		k = min(k, users/10)
		if k < 2 {
			continue
		}
		p.FarmSizes = append(p.FarmSizes, k)
		p.farmFaces = append(p.farmFaces, face)
		for range k {
			p.faceOf = append(p.faceOf, face)
		}
		farmUsers += k
		face++
	}
	for _, size := range faces.GroupSizes(rng, users-farmUsers, s.RingFraction) {
		if size > 1 {
			p.ringFaces = append(p.ringFaces, face)
		}
		for range size {
			p.faceOf = append(p.faceOf, face)
		}
		face++
	}
	p.order = make([]int32, 0, s.Checks)
	for u := range p.faceOf {
		p.order = append(p.order, int32(u))
	}
	for len(p.order) < s.Checks {
		p.order = append(p.order, int32(rng.IntN(len(p.faceOf))))
	}
	p.order = p.order[:s.Checks]
	rng.Shuffle(len(p.order), func(i, j int) { p.order[i], p.order[j] = p.order[j], p.order[i] })
	return p
}

// Users is how many users the population has.
func (p *Population) Users() int { return len(p.faceOf) }

// UserID names user u.
func UserID(u int32) string { return fmt.Sprintf("scale-u%08d", u) }

// SignatureID names check i.
func SignatureID(i int) string { return fmt.Sprintf("scale-s%09d", i) }

// Checks calls fn with the checks in order, in slices of at most batch checks whose matched
// accounts add up to at most maxLinks (a check larger than that goes alone), as the group commit
// would batch them under load. Each check is what the detector stores for a COMPLETED event
// enriched with the userId: face search answers the users who verified this face before, in the
// order they first did (the user's own id among them when verifying again).
func (p *Population) Checks(batch, maxLinks int, fn func([]duplicate.Check) error) error {
	seen := make([]bool, len(p.faceOf))
	enrolled := map[int32][]string{} // face -> users enrolled with it, in order (faces of two or more only)
	shared := p.sharedFaces()
	step := p.shape.Span / time.Duration(max(1, len(p.order)))
	var out []duplicate.Check
	links := 0
	for i, u := range p.order {
		uid, f := UserID(u), p.faceOf[u]
		var similar []string
		if shared[f] {
			similar = enrolled[f]
			if !seen[u] {
				enrolled[f] = append(enrolled[f], uid)
			}
		} else if seen[u] {
			similar = []string{uid} // face search finds the user's own earlier face
		}
		seen[u] = true
		c := duplicate.Check{
			SignatureID:         SignatureID(i),
			UserID:              uid,
			EventType:           duplicate.EventTypeCompleted,
			Outcome:             duplicate.OutcomeNoDuplicates,
			SimilarUserIDs:      similar[:len(similar):len(similar)],
			VendorTransactionID: fmt.Sprintf("scale-t%09d", i),
			EventID:             fmt.Sprintf("scale-e%09d", i),
			Source:              duplicate.Source{Topic: "idv.events", Partition: i % 12, Offset: int64(i / 12)},
			CheckedAt:           p.shape.Start.Add(time.Duration(i) * step).UTC().Truncate(time.Microsecond),
		}
		c.MatchedUserIDs = duplicate.MatchedUsers(uid, c.SimilarUserIDs)
		if len(c.MatchedUserIDs) > 0 {
			c.Outcome = duplicate.OutcomeDuplicatesFound
		}
		if len(out) > 0 && (len(out) >= batch || links+len(c.MatchedUserIDs) > maxLinks) {
			if err := fn(out); err != nil {
				return err
			}
			out, links = out[:0], 0
		}
		out = append(out, c)
		links += len(c.MatchedUserIDs)
	}
	if len(out) > 0 {
		return fn(out)
	}
	return nil
}

// sharedFaces reports the faces of two or more users.
func (p *Population) sharedFaces() map[int32]bool {
	shared := make(map[int32]bool, len(p.ringFaces)+len(p.farmFaces))
	for _, f := range p.ringFaces {
		shared[f] = true
	}
	for _, f := range p.farmFaces {
		shared[f] = true
	}
	return shared
}

// Reviews returns the reviews analysts recorded: pairs of a small ring, most confirmed as fraud,
// some cleared (which splits the ring), in a fixed order.
func (p *Population) Reviews() []duplicate.Review {
	if len(p.ringFaces) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(p.shape.Seed, 0x2e71e3))
	members := make(map[int32][]int32, len(p.ringFaces))
	ring := make(map[int32]bool, len(p.ringFaces))
	for _, f := range p.ringFaces {
		ring[f] = true
	}
	for u, f := range p.faceOf {
		if ring[f] {
			members[f] = append(members[f], int32(u))
		}
	}
	out := make([]duplicate.Review, 0, p.shape.Reviews)
	for range p.shape.Reviews {
		m := members[p.ringFaces[rng.IntN(len(p.ringFaces))]]
		a := rng.IntN(len(m))
		b := (a + 1 + rng.IntN(len(m)-1)) % len(m)
		d := duplicate.DecisionConfirmedFraud
		switch x := rng.IntN(10); {
		case x == 0:
			d = duplicate.DecisionSamePerson
		case x < 3:
			d = duplicate.DecisionFalsePositive
		}
		out = append(out, duplicate.Review{UserID: UserID(m[a]), DuplicateUserID: UserID(m[b]), Decision: d,
			Note: "scale", ReviewedBy: "scale-analyst"})
	}
	return out
}

// SmallRingUser returns a user in a ring of two to four, and FarmUser one in the largest farm
// ("" when there is none): the ids the measurement asks about.
func (p *Population) SmallRingUser() string {
	if len(p.ringFaces) == 0 {
		return ""
	}
	f := p.ringFaces[len(p.ringFaces)/2]
	for u, g := range p.faceOf {
		if g == f {
			return UserID(int32(u))
		}
	}
	return ""
}

// FarmUser returns a user of the largest farm, "" when there is none.
func (p *Population) FarmUser() string {
	if len(p.farmFaces) == 0 {
		return ""
	}
	f := p.farmFaces[len(p.farmFaces)-1]
	for u, g := range p.faceOf {
		if g == f {
			return UserID(int32(u))
		}
	}
	return ""
}
