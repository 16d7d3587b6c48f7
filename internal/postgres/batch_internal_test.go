package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestABatchIsBoundedByWeightAsWellAsCount(t *testing.T) {
	t.Parallel()
	g := newGroup(4, 1, 0, func(_ context.Context, _ []*pending[int]) {})
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

// recordingGroup returns a group whose flushes record their sizes and answer at once.
func recordingGroup(linger time.Duration) (*group[int], func() []int) {
	var mu sync.Mutex
	var sizes []int
	g := newGroup(64, 1, linger, func(_ context.Context, batch []*pending[int]) {
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
		for _, p := range batch {
			close(p.done)
		}
	})
	return g, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), sizes...)
	}
}

// A small batch waits for the linger, so a request that comes soon after goes with it; without a
// linger the first goes alone at once.
func TestASmallBatchLingersForMore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		linger time.Duration
		want   []int
	}{{0, []int{1, 1}}, {time.Second, []int{2}}} {
		g, sizes := recordingGroup(tc.linger)
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = g.submit(context.Background(), 1) })
		time.Sleep(100 * time.Millisecond)
		wg.Go(func() { _, _ = g.submit(context.Background(), 2) })
		wg.Wait()
		require.Equal(t, tc.want, sizes(), "linger %s", tc.linger)
	}
}

// Once lingerBelow requests wait, the batch goes without waiting out the linger.
func TestAFullEnoughBatchDoesNotWaitOutTheLinger(t *testing.T) {
	t.Parallel()
	g, sizes := recordingGroup(time.Hour)
	var wg sync.WaitGroup
	for i := range lingerBelow {
		wg.Go(func() { _, _ = g.submit(context.Background(), i) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the batch waited for the linger although it was full enough")
	}
	total := 0
	for _, n := range sizes() {
		total += n
	}
	require.Equal(t, lingerBelow, total)
}
