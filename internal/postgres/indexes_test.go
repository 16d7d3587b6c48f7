package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// Every index on a table the hot path writes costs every insert, so each must say which query
// uses it: docs/performance.md lists them. An index added by a migration without a line there
// fails this test.
func TestEveryIndexOnTheHotTablesIsExplainedInThePerformanceDoc(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	readme, err := os.ReadFile("../../docs/performance.md")
	require.NoError(t, err)
	const heading = "Every index on the hot tables, and the query that uses it"
	start := strings.Index(string(readme), heading)
	require.GreaterOrEqual(t, start, 0, "docs/performance.md has lost the list that starts %q", heading)
	list := string(readme)[start:]
	list = list[:strings.Index(list, "\n\n")]

	hot := []string{"idv_checks", "duplicate_links", "alerts", "check_overflow", "rings", "ring_members", "cases"}
	rows, err := pool.Query(context.Background(), `
SELECT tablename, indexname FROM pg_indexes
WHERE schemaname = current_schema() AND tablename = ANY ($1) AND indexname NOT LIKE '%\_pkey'
ORDER BY tablename, indexname`, hot)
	require.NoError(t, err)
	type index struct{ Table, Name string }
	indexes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[index])
	require.NoError(t, err)
	require.NotEmpty(t, indexes)
	for _, ix := range indexes {
		require.Contains(t, list, "`"+ix.Name+"`", "index %s on %s is not explained in docs/performance.md's list", ix.Name, ix.Table)
	}
	for _, table := range hot {
		require.Contains(t, list, "`"+table+"`", "docs/performance.md's list leaves out table %s", table)
	}
}
