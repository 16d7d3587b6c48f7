package analyst_test

import (
	"context"
	"fmt"
	"net/http/httptest"
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

func blocked(t *testing.T, th *analyst.Throttle, name, addr string) time.Duration {
	t.Helper()
	wait, err := th.Blocked(context.Background(), name, addr)
	require.NoError(t, err)
	return wait
}

func TestFailuresForOneNameAreThrottledFromEveryAddressAndInstance(t *testing.T) {
	t.Parallel()
	a, b, clk := throttles(t, analyst.Limits{PerName: 3, PerAddress: 100, Window: 10 * time.Minute})
	ctx := context.Background()
	for i, th := range []*analyst.Throttle{a, b, a} { // spread over instances and addresses
		require.Zero(t, blocked(t, th, "alice", fmt.Sprintf("203.0.113.%d", i)))
		require.NoError(t, th.Failed(ctx, "alice", fmt.Sprintf("203.0.113.%d", i)))
		clk.Add(time.Minute)
	}
	require.Equal(t, 7*time.Minute, blocked(t, b, "alice", "198.51.100.9"), "the window opened 3 min ago")
	require.Zero(t, blocked(t, a, "bob", "203.0.113.1"), "another name from the same address is not held")

	clk.Add(7 * time.Minute)
	require.Zero(t, blocked(t, a, "alice", "198.51.100.9"), "the window ended")
	require.NoError(t, a.Failed(ctx, "alice", "198.51.100.9"))
	require.Zero(t, blocked(t, a, "alice", "198.51.100.9"), "a new window counts from one")
}

func TestFailuresFromOneAddressAreThrottledForEveryName(t *testing.T) {
	t.Parallel()
	a, b, _ := throttles(t, analyst.Limits{PerName: 100, PerAddress: 4, Window: 15 * time.Minute})
	ctx := context.Background()
	for i := range 4 {
		require.NoError(t, []*analyst.Throttle{a, b}[i%2].Failed(ctx, fmt.Sprintf("guess-%d", i), "192.0.2.7"))
	}
	require.Equal(t, 15*time.Minute, blocked(t, a, "someone-new", "192.0.2.7"))
	require.Zero(t, blocked(t, a, "someone-new", "192.0.2.8"))
}

func TestASuccessfulSignInForgetsTheNamesFailuresNotTheAddresss(t *testing.T) {
	t.Parallel()
	a, _, _ := throttles(t, analyst.Limits{PerName: 2, PerAddress: 3, Window: time.Hour})
	ctx := context.Background()
	require.NoError(t, a.Failed(ctx, "alice", "192.0.2.1"))
	require.NoError(t, a.Failed(ctx, "alice", "192.0.2.1"))
	require.Positive(t, blocked(t, a, "alice", "192.0.2.2"))
	require.NoError(t, a.Succeeded(ctx, "alice"))
	require.Zero(t, blocked(t, a, "alice", "192.0.2.2"))
	require.NoError(t, a.Failed(ctx, "carol", "192.0.2.1"))
	require.Positive(t, blocked(t, a, "alice", "192.0.2.1"), "the address used its 3 up")
}

func TestTheAddressIsTheIPOrTheIPv6Slash64(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/console/login", nil)
	r.RemoteAddr = "203.0.113.9:51234"
	require.Equal(t, "203.0.113.9", analyst.Address(r))
	r.RemoteAddr = "[2001:db8:1:2:3:4:5:6]:443"
	require.Equal(t, "2001:db8:1:2::/64", analyst.Address(r))
}
