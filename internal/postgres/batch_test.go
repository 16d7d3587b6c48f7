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
	batcher := postgres.NewBatcher(b.store, 8, 1)
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
