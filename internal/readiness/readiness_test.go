package readiness_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/readiness"
)

func TestReportIsTheLastRoundAndRunsNoCheck(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var fail atomic.Bool
	c := readiness.New(readiness.Config{Interval: 20 * time.Millisecond},
		readiness.Check{Name: "database", Check: func(context.Context) error {
			calls.Add(1)
			if fail.Load() {
				return errors.New("connection refused")
			}
			return nil
		}},
		readiness.Check{Name: "vendor", Check: func(context.Context) error { return nil }},
	)
	r := c.Report()
	require.False(t, r.Ready, "not ready before the first round")
	require.Equal(t, map[string]string{"database": "not checked yet", "vendor": "not checked yet"}, r.Checks)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	require.Eventually(t, func() bool { return c.Report().Ready }, 5*time.Second, 5*time.Millisecond)
	fail.Store(true)
	require.Eventually(t, func() bool { return !c.Report().Ready }, 5*time.Second, 5*time.Millisecond)
	r = c.Report()
	require.Equal(t, "connection refused", r.Checks["database"])
	require.Equal(t, "ok", r.Checks["vendor"])
	cancel()
	require.NoError(t, <-done)

	before := calls.Load()
	for range 1000 {
		c.Report()
	}
	require.Equal(t, before, calls.Load(), "reading the report runs no check")
}

func TestAStaleAnswerIsNotReady(t *testing.T) {
	t.Parallel()
	c := readiness.New(readiness.Config{Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond},
		readiness.Check{Name: "kafka", Check: func(context.Context) error { return nil }})
	c.CheckNow(context.Background())
	require.True(t, c.Report().Ready)
	// Nobody runs the checks any more (a stuck checker): the cached "ready" expires.
	require.Eventually(t, func() bool { return !c.Report().Ready }, 5*time.Second, 5*time.Millisecond)
	require.Contains(t, c.Report().Checks["kafka"], "stale")
}

func TestAHangingCheckIsBoundedByTheTimeout(t *testing.T) {
	t.Parallel()
	c := readiness.New(readiness.Config{Timeout: 50 * time.Millisecond},
		readiness.Check{Name: "kafka", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }})
	start := time.Now()
	c.CheckNow(context.Background())
	require.Less(t, time.Since(start), 2*time.Second)
	require.Equal(t, context.DeadlineExceeded.Error(), c.Report().Checks["kafka"])
}

func TestChangesAreLoggedOnceEach(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var failure atomic.Pointer[error]
	c := readiness.New(readiness.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		readiness.Check{Name: "kafka", Check: func(context.Context) error {
			if p := failure.Load(); p != nil {
				return *p
			}
			return nil
		}})
	rounds := func(n int) {
		for range n {
			c.CheckNow(context.Background())
		}
	}
	rounds(3)
	down := errors.New("no broker answers")
	failure.Store(&down)
	rounds(5)
	failure.Store(nil)
	rounds(4)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 3, logs.String())
	require.Contains(t, lines[0], "msg=ready check=kafka")
	require.Contains(t, lines[1], `msg="not ready" check=kafka reason="no broker answers"`)
	require.Contains(t, lines[2], "msg=ready check=kafka")

	// A round cut short by a shutdown changes nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.CheckNow(ctx)
	require.True(t, c.Report().Ready)
	require.Len(t, strings.Split(strings.TrimSpace(logs.String()), "\n"), 3)
}

func TestAnInformationalCheckIsReportedButLeavesTheInstanceReady(t *testing.T) {
	t.Parallel()
	c := readiness.New(readiness.Config{},
		readiness.Check{Name: "database", Check: func(context.Context) error { return nil }},
		readiness.Check{Name: "vendor:th", Informational: true,
			Check: func(context.Context) error { return errors.New("vendor circuit open: ACCOUNT_DISABLED") }},
	)
	c.CheckNow(context.Background())
	r := c.Report()
	require.True(t, r.Ready, "one region's trouble does not make the instance unready")
	require.Equal(t, "vendor circuit open: ACCOUNT_DISABLED", r.Checks["vendor:th"])
}

// Serving is decided by the Serving checks alone: a stalled consumer makes the instance unready
// for work, not for serving HTTP; a database that does not answer makes it unready for both.
func TestServingDependsOnlyOnTheServingChecks(t *testing.T) {
	t.Parallel()
	dbErr := error(nil)
	c := readiness.New(readiness.Config{},
		readiness.Check{Name: "database", Serving: true, Check: func(context.Context) error { return dbErr }},
		readiness.Check{Name: "consumer", Check: func(context.Context) error { return errors.New("partition 0 stalled") }},
	)
	c.CheckNow(context.Background())
	r := c.Report()
	require.False(t, r.Ready)
	require.True(t, r.Serving, "a stall does not stop the API")

	dbErr = errors.New("connection refused")
	c.CheckNow(context.Background())
	r = c.Report()
	require.False(t, r.Ready)
	require.False(t, r.Serving)

	require.False(t, readiness.New(readiness.Config{}).Report().Serving, "not serving before the first round")
}
