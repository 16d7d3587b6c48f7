package faces_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/faces"
)

func TestGroupSizesAddUpAndPutAboutTheFractionInRings(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, 0.3, 0.7} {
		sizes := faces.GroupSizes(rand.New(rand.NewPCG(1, 2)), 100_000, f)
		total, inRings := 0, 0
		for _, s := range sizes {
			require.True(t, s >= 1 && s <= 4, "size %d", s)
			total += s
			if s > 1 {
				inRings += s
			}
		}
		require.Equal(t, 100_000, total)
		require.InDelta(t, f, float64(inRings)/float64(total), 0.01, "fraction %g", f)
	}
}

func TestGroupSizesAreTheSameForTheSameSeed(t *testing.T) {
	t.Parallel()
	a := faces.GroupSizes(rand.New(rand.NewPCG(7, 8)), 1000, 0.3)
	b := faces.GroupSizes(rand.New(rand.NewPCG(7, 8)), 1000, 0.3)
	require.Equal(t, a, b)
}

func TestGroupSizesCutTheLastFaceToWhatIsLeft(t *testing.T) {
	t.Parallel()
	// Everyone in rings: every face but possibly the last has 2 to 4 users.
	sizes := faces.GroupSizes(rand.New(rand.NewPCG(3, 4)), 5, 1)
	total := 0
	for i, s := range sizes {
		total += s
		if i < len(sizes)-1 {
			require.GreaterOrEqual(t, s, 2)
		}
	}
	require.Equal(t, 5, total)
	require.Empty(t, faces.GroupSizes(rand.New(rand.NewPCG(3, 4)), 0, 0.3))
}
