package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

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

// A pair already linked is found, and not raised again, whether the check naming it names few
// accounts (its pairs looked up one by one) or many (its user's links read whole), on the batch
// path and the single-check path alike. The case that matters is a face farm's early member
// handled after a later member matched it: many links, few pairs named.
func TestAnExistingPairIsFoundWhetherItsCheckNamesFewOrManyAccounts(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"batch", "single"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			save := b.store.SaveCheck
			if path == "batch" {
				save = postgres.NewBatcher(b.store, 16, 1, 0).SaveCheck
			}
			early := make([]string, 100)
			for i := range early {
				early[i] = fmt.Sprintf("early-%03d", i)
			}
			// hub's answer names 100 accounts: every one a new link.
			saved, err := save(b.ctx, check("s-hub", "hub", early...))
			require.NoError(t, err)
			require.Len(t, saved.NewLinks, 100)

			// early-000 names hub (linked) and one new account: only the new one is new.
			saved, err = save(b.ctx, check("s-e0", "early-000", "hub", "fresh-0"))
			require.NoError(t, err)
			require.Equal(t, []string{"fresh-0"}, saved.NewLinks)
			require.Equal(t, []string{"fresh-0"}, saved.Alert.NewMatchedUserIDs)

			// early-001 names hub and 69 new accounts (more than are looked up one by one).
			many := []string{"hub"}
			for i := range 69 {
				many = append(many, fmt.Sprintf("fresh-1-%02d", i))
			}
			saved, err = save(b.ctx, check("s-e1", "early-001", many...))
			require.NoError(t, err)
			require.Len(t, saved.NewLinks, 69)
			require.NotContains(t, saved.NewLinks, "hub")

			// hub verifies again: its links and early-000's are known, one account is new; the
			// answer's 101st account, early-099, is past the bound (duplicate.MaxPairsPerCheck).
			again := append(append(append([]string{}, early[:50]...), "late"), early[50:]...)
			saved, err = save(b.ctx, check("s-hub-2", "hub", again...))
			require.NoError(t, err)
			require.Equal(t, []string{"late"}, saved.NewLinks)

			links := linkRows(t, b)
			require.Len(t, links, 100+1+69+1, "every pair once")
			require.Equal(t, 3, links["early-000-hub"], "seen by both of hub's checks and early-000's")
			require.Equal(t, 3, links["early-001-hub"], "seen by both of hub's checks and early-001's")
			require.Equal(t, 2, links["early-098-hub"], "seen by both of hub's checks")
			require.Equal(t, 1, links["early-099-hub"], "past the bound of the second, which only keeps it in the ring")
			require.Equal(t, 1, links["early-000-fresh-0"])
		})
	}
}

// batchLog is a postgres.BatchObserver that keeps what it was told.
type batchLog struct {
	mu       sync.Mutex
	requests map[string]int
	batches  map[string]int
}

func (l *batchLog) StoreBatch(kind string, waits []time.Duration, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests[kind] += len(waits)
	l.batches[kind]++
	for _, w := range waits {
		if w < 0 || took <= 0 {
			panic(fmt.Sprintf("%s batch: wait %s, took %s", kind, w, took))
		}
	}
}

// Every save and look-up reaches the observer exactly once, in batches of several.
func TestTheBatcherReportsEveryRoundTripAndEachRequestsWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batcher := postgres.NewBatcher(b.store, 64, 1, 20*time.Millisecond)
	log := &batchLog{requests: map[string]int{}, batches: map[string]int{}}
	batcher.Observe(log)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sig := fmt.Sprintf("observed-%d", i)
			_, _, err := batcher.FinalOutcome(b.ctx, sig)
			require.NoError(t, err)
			_, err = batcher.SaveCheck(b.ctx, check(sig, fmt.Sprintf("user-%d", i)))
			require.NoError(t, err)
		})
	}
	wg.Wait()
	log.mu.Lock()
	defer log.mu.Unlock()
	require.Equal(t, map[string]int{"save": n, "lookup": n}, log.requests)
	require.Less(t, log.batches["save"], n, "checks went together")
	require.Less(t, log.batches["lookup"], n, "look-ups went together")
}
