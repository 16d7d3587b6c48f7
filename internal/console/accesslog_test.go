package console_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/console"
)

type consoleRead struct {
	Actor, Via, What string
	UserIDs          []string
	UserCount        int
	RingID           string
}

// withAccessLog gives the console an access log written by the real batching writer.
func withAccessLog(t *testing.T, w **accesslog.Writer) func(*console.Config) {
	return func(cfg *console.Config) {
		writer := accesslog.NewWriter(cfg.Store.(accesslog.Sink), accesslog.Config{FlushInterval: 5 * time.Millisecond})
		t.Cleanup(func() { _ = writer.Close(context.Background()) })
		cfg.AccessLog = writer
		*w = writer
	}
}

func (f *fixture) reads(w *accesslog.Writer) []consoleRead {
	f.t.Helper()
	require.NoError(f.t, w.Flush(context.Background()))
	rows, err := f.pool.Query(context.Background(),
		`SELECT actor, via, what, user_ids, user_count, coalesce(ring_id, '') FROM access_log ORDER BY read_at, entry_id`)
	require.NoError(f.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[consoleRead])
	require.NoError(f.t, err)
	return out
}

func TestRingAndUserPagesAreInTheAccessLogUnderTheAnalystsName(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	ringA, _ := f.seedRings()
	c := newClient(t, f.srv.URL)
	c.signIn(viewerKey)

	for _, path := range []string{"/console/rings/" + ringA + "?user=cust-a2", "/console/users?userId=cust-b1",
		"/console/alerts?user=cust-a3&status=all", "/console/audit?user=cust-a1"} {
		status, _, body := c.get(path)
		require.Equal(t, http.StatusOK, status, "%s: %s", path, body)
	}
	// Pages that show no particular person are not logged.
	for _, path := range []string{"/console/", "/console/queue", "/console/audit", "/console/users"} {
		status, _, _ := c.get(path)
		require.Equal(t, http.StatusOK, status, path)
	}
	got := f.reads(w)
	require.Len(t, got, 4, "%+v", got)
	for _, r := range got {
		require.Equal(t, "viewer", r.Actor)
		require.Equal(t, "console", r.Via)
	}
	require.Equal(t, consoleRead{Actor: "viewer", Via: "console", What: "GET /console/rings/{ringId}",
		UserIDs: []string{"cust-a2", "cust-a1", "cust-a3", "cust-a4"}, UserCount: 4, RingID: ringA}, got[0])
	require.Equal(t, "GET /console/users", got[1].What)
	require.Equal(t, []string{"cust-b1", "cust-b2"}, got[1].UserIDs)
	require.NotEmpty(t, got[1].RingID)
	require.Equal(t, "GET /console/alerts", got[2].What)
	require.Equal(t, "cust-a3", got[2].UserIDs[0])
	require.Equal(t, "GET /console/audit", got[3].What)
	require.Equal(t, []string{"cust-a1"}, got[3].UserIDs)
}

func TestAFaceFarmsRingPageRecordsTheRingAndTheAccountsItShowed(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	ring := f.seedFarm(1200)
	c := newClient(t, f.srv.URL)
	c.signIn(viewerKey)
	status, _, _ := c.get("/console/rings/" + ring + "?user=farm-0600")
	require.Equal(t, http.StatusOK, status)
	got := f.reads(w)
	require.Len(t, got, 1)
	require.Equal(t, ring, got[0].RingID)
	require.Equal(t, "farm-0600", got[0].UserIDs[0])
	// The page draws 60 accounts and lists 50 pairs: what it showed, not the whole farm.
	require.Less(t, got[0].UserCount, 200)
	require.Len(t, got[0].UserIDs, got[0].UserCount)
}

// fullLog is an access log whose queue stays full.
type fullLog struct{}

func (fullLog) Record(context.Context, accesslog.Entry) error { return accesslog.ErrUnavailable }

func TestAPageThatCannotBeRecordedIsNotShown(t *testing.T) {
	t.Parallel()
	f := setup(t, func(cfg *console.Config) { cfg.AccessLog = fullLog{} })
	ringA, _ := f.seedRings()
	c := newClient(t, f.srv.URL)
	c.signIn(viewerKey)
	status, h, body := c.get("/console/rings/" + ringA)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "5", h.Get("Retry-After"))
	require.NotContains(t, body, "cust-a2")
	require.Contains(t, body, "access log")
}
