package postgres_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/postgres"
)

func TestBatcherLooksUpManyOutcomesTogether(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batcher := postgres.NewBatcher(b.store, 8, 1, 0)
	_, err := b.store.SaveCheck(b.ctx, check("stored", "u1", "u2"))
	require.NoError(t, err)
	failed := duplicate.Check{SignatureID: "failed", EventType: "COMPLETED", Outcome: duplicate.OutcomeFailed,
		FailureReason: "vendor_rejected"}
	_, err = b.store.SaveCheck(b.ctx, failed)
	require.NoError(t, err)

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := []string{"stored", "failed", fmt.Sprintf("unknown-%d", i)}[i%3]
			outcome, final, err := batcher.FinalOutcome(b.ctx, sig)
			require.NoError(t, err)
			switch sig {
			case "stored":
				require.True(t, final)
				require.Equal(t, duplicate.OutcomeDuplicatesFound, outcome)
			case "failed":
				require.False(t, final, "a failed check may be retried")
				require.Equal(t, duplicate.OutcomeFailed, outcome)
			default:
				require.False(t, final)
				require.Empty(t, outcome)
			}
		}()
	}
	wg.Wait()
}

func TestAFaceFarmSavedConcurrentlyIsOneRingWithEveryLinkOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batcher := postgres.NewBatcher(b.store, 16, 2, 0)
	const k = 60
	members := make([]string, k)
	for i := range members {
		members[i] = fmt.Sprintf("farm-%02d", i)
	}
	// Member i's face search finds every member before it, as the vendor answers a farm.
	var wg sync.WaitGroup
	alerts := make([]*duplicate.Alert, k)
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			saved, err := batcher.SaveCheck(b.ctx, check(fmt.Sprintf("s%02d", i), members[i], members[:i]...))
			require.NoError(t, err)
			alerts[i] = saved.Alert
		}()
	}
	wg.Wait()
	require.Len(t, linkRows(t, b), k*(k-1)/2, "every pair once")
	for _, n := range linkRows(t, b) {
		require.Equal(t, 1, n, "each pair seen by one check")
	}
	biggest := 0
	for _, a := range alerts {
		if a != nil {
			biggest = max(biggest, a.RingSize)
		}
	}
	require.Equal(t, k, biggest, "the last alert to commit sees the whole farm")
	size, members2 := ringOf(t, b, members[k-1])
	require.Equal(t, k, size)
	require.Equal(t, members, members2)
}
