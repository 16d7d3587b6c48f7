package region

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/fakeclock"
)

func TestBudgetCountsFromStoredSpendAndPausesAtTheLimit(t *testing.T) {
	t.Parallel()
	clk := fakeclock.New(time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC))
	stored := map[time.Time]int64{time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC): 7}
	var reported []int64
	b := NewBudget(BudgetConfig{Region: "ph", Limit: 10, Now: clk.Now,
		Count: func(_ context.Context, region string, since time.Time) (int64, error) {
			require.Equal(t, "ph", region)
			return stored[since], nil
		},
		OnChange: func(spent, _ int64) { reported = append(reported, spent) }})
	ctx := context.Background()
	require.NoError(t, b.Load(ctx))
	spent, _ := b.Spent()
	require.EqualValues(t, 7, spent, "a restart starts from what is stored")

	releases := []func(bool){}
	for range 3 {
		release, err := b.Reserve(ctx)
		require.NoError(t, err)
		releases = append(releases, release)
	}
	_, err := b.Reserve(ctx)
	var se *SpentError
	require.ErrorAs(t, err, &se, "the 11th search of a budget of 10 is refused")
	require.Equal(t, duplicate.FailureAccount, duplicate.KindOf(err), "it waits like an account failure")
	require.Contains(t, err.Error(), "2026-12-01T00:00:00Z")
	require.Contains(t, err.Error(), "DOPPEL_ADVANCE_PH_MONTHLY_BUDGET")
	require.Error(t, b.Err())

	releases[0](false) // not billed (the call failed): given back
	releases[0](false) // releasing twice changes nothing
	require.NoError(t, b.Err())
	release, err := b.Reserve(ctx)
	require.NoError(t, err)
	release(true)
	_, err = b.Reserve(ctx)
	require.True(t, errors.As(err, &se))

	// The month turns: the new month's spend is read, and the region resumes.
	clk.Set(time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC))
	require.NoError(t, b.Err())
	release, err = b.Reserve(ctx)
	require.NoError(t, err)
	release(true)
	spent, _ = b.Spent()
	require.EqualValues(t, 1, spent)
	require.Equal(t, int64(1), reported[len(reported)-1])
}

func TestBudgetNeverCountsBelowItsOwnSearches(t *testing.T) {
	t.Parallel()
	var stored int64
	b := NewBudget(BudgetConfig{Region: "th", Limit: 0,
		Count: func(context.Context, string, time.Time) (int64, error) { return stored, nil }})
	ctx := context.Background()
	require.NoError(t, b.Load(ctx))
	for range 5 {
		release, err := b.Reserve(ctx)
		require.NoError(t, err, "no budget: never refused")
		release(true)
	}
	stored = 3 // two searches not stored yet
	require.NoError(t, b.Load(ctx))
	spent, _ := b.Spent()
	require.EqualValues(t, 5, spent)
	stored = 9 // another instance's searches
	require.NoError(t, b.Load(ctx))
	spent, _ = b.Spent()
	require.EqualValues(t, 9, spent)
}

// The spend reported to OnChange (the doppel_region_budget_spent gauge) ends at the spend counted,
// however many workers reserve and release at once: reports made outside the lock could arrive
// out of order and leave the gauge at an older figure until the next change.
func TestBudgetReportsItsLatestSpendUnderConcurrency(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var reported int64
	b := NewBudget(BudgetConfig{Region: "ph", Limit: 1 << 20,
		Count: func(context.Context, string, time.Time) (int64, error) { return 0, nil },
		OnChange: func(spent, _ int64) {
			runtime.Gosched() // a report takes time of its own: let another worker overtake it
			mu.Lock()
			reported = spent
			mu.Unlock()
		}})
	require.NoError(t, b.Load(context.Background()))
	for round := range 300 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range 8 {
			wg.Go(func() {
				<-start
				release, err := b.Reserve(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				release((w+round)%3 != 0) // a third are given back
			})
		}
		close(start)
		wg.Wait()
		spent, _ := b.Spent()
		mu.Lock()
		last := reported
		mu.Unlock()
		require.Equal(t, spent, last, "round %d: the last report is the spend", round)
	}
}
