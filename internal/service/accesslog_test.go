package service_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// doppel serve records the API's reads, sweeps the log past its retention, and writes the last
// reads when it stops.
func TestServeRecordsReadsSweepsOldOnesAndWritesTheLastOnStop(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	f.cfg.APIKeys = "analyst:read:" + hexSHA256(analystKey)
	f.cfg.AccessLogRetention = time.Hour
	require.NoError(t, f.cfg.Validate())
	ctx := context.Background()
	store := postgres.NewStore(f.pool)
	_, err := store.SaveCheck(ctx, duplicate.Check{SignatureID: "s-1", UserID: "alice", EventType: duplicate.EventTypeCompleted,
		Outcome: duplicate.OutcomeNoDuplicates, CheckedAt: time.Now(), Source: duplicate.Source{Topic: "idv.completed"}})
	require.NoError(t, err)
	require.NoError(t, store.InsertAccessLog(ctx, []accesslog.Entry{{At: time.Now().Add(-2 * time.Hour), Actor: "analyst",
		Via: accesslog.ViaAPI, What: "GET /v1/users/{userId}/cluster", UserIDs: []string{"bob"}, UserCount: 1}}))

	stop := f.start(t)
	base := "http://" + f.cfg.HTTPAddr
	testinfra.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "/healthz answers")
	const reads = 10
	for range reads {
		status, body := call(t, http.MethodGet, base+"/v1/users/alice/duplicates", analystKey, nil)
		require.Equal(t, http.StatusOK, status, "%s", body)
	}
	testinfra.Eventually(t, 30*time.Second, func() bool {
		_, body := call(t, http.MethodGet, "http://"+f.cfg.AdminAddr+"/metrics", "", nil)
		return strings.Contains(string(body), `doppel_retention_deleted_total{table="access_log"} 1`)
	}, "the entry past its retention is swept at start, and counted")
	stop()

	var n int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM access_log WHERE user_ids = ARRAY['alice']`).Scan(&n))
	require.Equal(t, reads, n, "every read is in the log once the service has stopped")
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM access_log WHERE user_ids = ARRAY['bob']`).Scan(&n))
	require.Zero(t, n)
}
