package scale

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// WriteBlock replaces only what lies between the markers, so the prose around the table survives
// every run; a file without them gets them at its end.
func TestWriteBlockReplacesOnlyTheBlock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "performance.md")
	require.NoError(t, os.WriteFile(path, []byte("# Performance\n\nprose\n"), 0o644))
	require.NoError(t, WriteBlock(path, "first table\n"))
	require.NoError(t, os.WriteFile(path, append(mustRead(t, path), []byte("\nafter\n")...), 0o644))
	require.NoError(t, WriteBlock(path, "second table"))
	require.Equal(t, "# Performance\n\nprose\n\n"+BeginMarker+"\nsecond table\n"+EndMarker+"\n\nafter\n", string(mustRead(t, path)))

	require.NoError(t, os.WriteFile(path, []byte("x\n"+BeginMarker+"\n"), 0o644))
	require.ErrorContains(t, WriteBlock(path, "t"), "one scale marker without the other")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// The quantiles are nearest-rank: the p95 of 20 requests is the 19th, never an interpolation
// below a request that happened.
func TestQuantileIsNearestRank(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 20; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 10*time.Millisecond, quantile(d, 0.50))
	require.Equal(t, 19*time.Millisecond, quantile(d, 0.95))
	require.Equal(t, 3*time.Millisecond, quantile(d[:3], 0.95))
}

// A read slower than the client's timeout is recorded as timed out, with the timeout as its time,
// and the run goes on; a slow warm-up is the only warm-up, and a slow read stops after 3 requests.
func TestASlowReadIsCutAndATimeoutRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("sleep"))
		time.Sleep(d)
	}))
	t.Cleanup(srv.Close)
	c := &Client{base: srv.URL, api: &http.Client{Timeout: 300 * time.Millisecond}}

	tm, err := c.Time(ctx, Target{Name: "too slow", Path: "/?sleep=1s"}, 2, 20, time.Second)
	require.NoError(t, err)
	require.True(t, tm.TimedOut)
	require.Equal(t, 1, tm.N)
	require.Equal(t, 300*time.Millisecond, tm.Max)

	tm, err = c.Time(ctx, Target{Name: "slow", Path: "/?sleep=60ms"}, 2, 20, 50*time.Millisecond)
	require.NoError(t, err)
	require.True(t, tm.Cut)
	require.Equal(t, 3, tm.N)
	require.GreaterOrEqual(t, tm.P50, 60*time.Millisecond)

	tm, err = c.Time(ctx, Target{Name: "fast", Path: "/"}, 2, 20, time.Second)
	require.NoError(t, err)
	require.False(t, tm.Cut || tm.TimedOut)
	require.Equal(t, 20, tm.N)
}

// A run on a database an earlier run filled (-reuse) says so, instead of a fill of no time.
func TestTheBlockSaysWhenTheDatabaseWasReused(t *testing.T) {
	t.Parallel()
	shape := DefaultShape(1000, time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	r := Report{At: time.Now(), Commit: "abc", Shape: shape, Population: NewPopulation(shape)}
	r.Filled = Filled{Checks: 1000, Reviews: 12}
	require.Contains(t, r.Markdown(), "A database an earlier run filled, measured again (-reuse)")
	r.Filled.ChecksTook, r.Filled.ReviewsTook = 2*time.Second, time.Second
	require.Contains(t, r.Markdown(), "Filled through the store's own batch in 2s (500 checks/s), reviews in 1s")
}
