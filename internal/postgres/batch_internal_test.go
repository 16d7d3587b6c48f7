package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestABatchIsBoundedByWeightAsWellAsCount(t *testing.T) {
	t.Parallel()
	g := newGroup(4, 1, func(_ context.Context, _ []*pending[int]) {})
	g.weigh, g.maxWeight = func(w int) int { return w }, 10
	queue := func(ws ...int) {
		g.queue = nil
		for _, w := range ws {
			g.queue = append(g.queue, &pending[int]{req: w})
		}
	}
	queue(1, 1, 1, 1, 1, 1)
	require.Equal(t, 4, g.batchLen(), "light requests: the count bound")
	queue(6, 4, 1)
	require.Equal(t, 2, g.batchLen(), "up to the weight bound")
	queue(25, 1)
	require.Equal(t, 1, g.batchLen(), "a request heavier than the bound goes alone")
	queue(3, 25)
	require.Equal(t, 1, g.batchLen(), "and not with others")
}
