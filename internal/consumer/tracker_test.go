package consumer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOffsetTrackerCommitsOnlyTheFinishedPrefix(t *testing.T) {
	t.Parallel()
	tr := newOffsetTracker(time.Now)
	for off := int64(10); off <= 14; off++ {
		tr.add(0, off)
	}
	tr.add(1, 3)

	tr.finish(0, 12)
	tr.finish(0, 11)
	require.Empty(t, tr.committable(), "10 is unfinished, so nothing may be committed")

	tr.finish(0, 10)
	require.Equal(t, map[int]int64{0: 12}, tr.committable())
	tr.markCommitted(0, 12)
	require.Empty(t, tr.committable())

	tr.finish(1, 3)
	tr.finish(0, 14)
	require.Equal(t, map[int]int64{1: 3}, tr.committable(), "13 still holds back 14")
	tr.finish(0, 13)
	require.Equal(t, map[int]int64{0: 14, 1: 3}, tr.committable())
	require.Equal(t, 0, tr.inFlight())
}

func TestOffsetTrackerForgetsPendingWorkWhenTheReaderRewinds(t *testing.T) {
	t.Parallel()
	tr := newOffsetTracker(time.Now)
	tr.add(0, 5)
	tr.add(0, 6)
	tr.finish(0, 6)
	// A rebalance makes the reader fetch 5 again: the old pending entries must not block it.
	tr.add(0, 5)
	tr.finish(0, 5)
	require.Equal(t, map[int]int64{0: 5}, tr.committable())
	tr.add(0, 6)
	tr.finish(0, 6)
	require.Equal(t, map[int]int64{0: 6}, tr.committable())
}
