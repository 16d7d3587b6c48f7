package analyst_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/harness/fakeclock"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// Two throttles on one database: two instances of Doppel behind a load balancer.
func throttles(t *testing.T, limits analyst.Limits) (a, b *analyst.Throttle, clk *fakeclock.Clock) {
	t.Helper()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool)
	clk = fakeclock.New(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC))
	return &analyst.Throttle{Store: store, Limits: limits, Now: clk.Now}, &analyst.Throttle{Store: store, Limits: limits, Now: clk.Now}, clk
}

// attempt counts a sign-in and returns how long it is held back (0: go ahead).
func attempt(t *testing.T, th *analyst.Throttle, name, addr string) time.Duration {
	t.Helper()
	wait, err := th.Attempt(context.Background(), name, addr)
	require.NoError(t, err)
	return wait
}

func TestAttemptsForOneNameAreThrottledFromEveryAddressAndInstance(t *testing.T) {
	t.Parallel()
	a, b, clk := throttles(t, analyst.Limits{PerName: 3, PerAddress: 100, Window: 10 * time.Minute})
	for i, th := range []*analyst.Throttle{a, b, a} { // spread over instances and addresses
		require.Zero(t, attempt(t, th, "alice", fmt.Sprintf("203.0.113.%d", i)))
		clk.Add(time.Minute)
	}
	require.Equal(t, 7*time.Minute, attempt(t, b, "alice", "198.51.100.9"), "the window opened 3 min ago")
	require.Equal(t, 7*time.Minute, attempt(t, a, "alice", "198.51.100.9"), "a held attempt does not lengthen the wait")
	require.Zero(t, attempt(t, a, "bob", "203.0.113.1"), "another name from the same address is not held")

	clk.Add(7 * time.Minute)
	require.Zero(t, attempt(t, a, "alice", "198.51.100.9"), "the window ended; a new one counts from one")
	require.Zero(t, attempt(t, a, "alice", "198.51.100.9"))
	require.Zero(t, attempt(t, a, "alice", "198.51.100.9"))
	require.Positive(t, attempt(t, a, "alice", "198.51.100.9"))
}

func TestAttemptsFromOneAddressAreThrottledForEveryName(t *testing.T) {
	t.Parallel()
	a, b, _ := throttles(t, analyst.Limits{PerName: 100, PerAddress: 4, Window: 15 * time.Minute})
	for i := range 4 {
		require.Zero(t, attempt(t, []*analyst.Throttle{a, b}[i%2], fmt.Sprintf("guess-%d", i), "192.0.2.7"))
	}
	require.Equal(t, 15*time.Minute, attempt(t, a, "someone-new", "192.0.2.7"))
	require.Zero(t, attempt(t, a, "someone-new", "192.0.2.8"))
}

// A burst of attempts at once, on two instances, is admitted one by one: no more than the limit
// get through, where a check followed by a separate count let 36 of these 40 by in a trial.
func TestABurstOfAttemptsGetsNoMoreThanTheLimit(t *testing.T) {
	t.Parallel()
	a, b, _ := throttles(t, analyst.Limits{PerName: 5, PerAddress: 1000, Window: time.Hour})
	var wg sync.WaitGroup
	var admitted atomic.Int32
	for i := range 40 {
		wg.Go(func() {
			wait, err := []*analyst.Throttle{a, b}[i%2].Attempt(context.Background(), "alice", fmt.Sprintf("198.51.100.%d", i))
			if err == nil && wait == 0 {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 5, admitted.Load())
}

func TestASuccessfulSignInForgetsTheNamesFailuresNotTheAddresss(t *testing.T) {
	t.Parallel()
	a, _, _ := throttles(t, analyst.Limits{PerName: 2, PerAddress: 3, Window: time.Hour})
	ctx := context.Background()
	require.Zero(t, attempt(t, a, "alice", "192.0.2.1")) // a failure
	require.Zero(t, attempt(t, a, "alice", "192.0.2.1")) // this one succeeds:
	require.NoError(t, a.Succeeded(ctx, "alice", "192.0.2.1"))
	require.Zero(t, attempt(t, a, "alice", "192.0.2.1"), "alice's failures are forgotten")
	require.Zero(t, attempt(t, a, "carol", "192.0.2.1"))
	require.Positive(t, attempt(t, a, "dave", "192.0.2.1"), "the address used its 3: alice's failure, her attempt after, carol's (the success was given back)")
}

func TestTheAddressIsTheIPOrTheIPv6Slash64(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/console/login", nil)
	r.RemoteAddr = "203.0.113.9:51234"
	require.Equal(t, "203.0.113.9", analyst.Address(r))
	r.RemoteAddr = "[2001:db8:1:2:3:4:5:6]:443"
	require.Equal(t, "2001:db8:1:2::/64", analyst.Address(r))
}
