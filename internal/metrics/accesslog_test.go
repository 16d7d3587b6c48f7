package metrics

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTheAccessLogsSeriesExistAtZeroAndCount(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	a := m.AccessLog()
	require.Same(t, a, m.AccessLog(), "registered once")
	page := scrape(t, m)
	for _, o := range accessLogOutcomes {
		require.Contains(t, page, `doppel_access_log_entries_total{outcome="`+o+`"} 0`)
	}
	require.Contains(t, page, `doppel_retention_deleted_total{table="access_log"} 0`)
	a.Written(3)
	a.Refused()
	a.Lost(2)
	a.Swept(10000)
	page = scrape(t, m)
	require.Contains(t, page, `doppel_access_log_entries_total{outcome="written"} 3`)
	require.Contains(t, page, `doppel_access_log_entries_total{outcome="refused"} 1`)
	require.Contains(t, page, `doppel_access_log_entries_total{outcome="lost"} 2`)
	require.Contains(t, page, `doppel_retention_deleted_total{table="access_log"} 10000`)
}
