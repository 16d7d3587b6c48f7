// Package faces draws who shares a face in a harness run's population: how many users have a face
// of their own and which are in rings. doppel-bench and doppel-soak build different events around
// those users (the soak adds failed, thin, unknown and malformed ones), but both need the same
// rings: about a given fraction of the users in rings of 2 to 4 sharing one face, so that face
// searches match each other and the alert path is exercised. The draw lives here once.
package faces

import "math/rand/v2"

// RingProbability is the probability that a new face is a ring for about fraction of the users to
// be in rings. A ring has 3 members on average, so the fraction of users in rings is
// 3p / (3p + 1 - p); solving for p gives p = f / (3 - 2f).
func RingProbability(fraction float64) float64 {
	return fraction / (3 - 2*fraction)
}

// GroupSizes splits n users into faces, in draw order: a face is a ring of 2 to 4 users with
// RingProbability(ringFraction), otherwise one user's own; the last face is cut to what is left.
// The sizes add up to n. It draws from rng in a fixed order, so one seed gives one split.
func GroupSizes(rng *rand.Rand, n int, ringFraction float64) []int {
	p := RingProbability(ringFraction)
	var sizes []int
	for users := 0; users < n; {
		size := 1
		if rng.Float64() < p {
			size = 2 + rng.IntN(3)
		}
		size = min(size, n-users)
		sizes = append(sizes, size)
		users += size
	}
	return sizes
}
