package erasure_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Erasing members of a face farm (every check names every earlier member: links to the first
// 100, the rest in check_overflow) keeps the rest in one ring, and takes little time.
// DOPPEL_ERASURE_FARM sets the farm's size (default 300); the times are logged.
func TestErasingMembersOfAFaceFarm(t *testing.T) {
	t.Parallel()
	n := 300
	if v, err := strconv.Atoi(os.Getenv("DOPPEL_ERASURE_FARM")); err == nil && v >= 3 {
		n = v
	}
	b := setup(t)
	var farm []string
	for i := range n {
		// Ids not in the order of verification (7919 is a prime: (i*7919+n/3) mod n is a permutation
		// unless n is a multiple of it): the smallest id is not the member everyone else names,
		// as in production, where the walk must not depend on it.
		u := fmt.Sprintf("farm-%05d", (i*7919+n/3)%n)
		b.save(t, check(fmt.Sprintf("fs-%d", i), u, farm...))
		farm = append(farm, u)
	}
	victims := farmVictims(n)
	for _, who := range victims {
		e := request(t, b, farm[who], duplicate.OverrideLegalHold)
		start := time.Now()
		last, steps := start, ""
		require.NoError(t, b.runner(func(step string) error {
			steps += fmt.Sprintf(" %s %s", step, time.Since(last).Round(time.Millisecond))
			last = time.Now()
			return nil
		}).Finish(b.ctx, e.ID))
		t.Logf("erasing member %d of a farm of %d: %s (steps:%s)", who, n, time.Since(start), steps)
		require.Empty(t, mentions(t, b, farm[who]))
		summariesAgree(t, b)
	}
	ring, err := b.store.Ring(b.ctx, farm[1])
	require.NoError(t, err)
	require.Equal(t, n-len(victims), ring.Size)
	require.Len(t, ring.Members, min(n-len(victims), duplicate.MaxRingMembers))
}

// farmVictims are the members erased: the first, the middle and the last, or DOPPEL_ERASURE_FARM_ONLY.
func farmVictims(n int) []int {
	if v, err := strconv.Atoi(os.Getenv("DOPPEL_ERASURE_FARM_ONLY")); err == nil {
		return []int{v}
	}
	return []int{0, n / 2, n - 1}
}
