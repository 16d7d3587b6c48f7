package postgres_test

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// seqScans returns, by statement name, the tables the generic plan of each hot-path statement
// scans whole, on a database whose tables are empty (as on the day Doppel is deployed).
func seqScans(t *testing.T, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	// What PostgreSQL runs from the sixth call of a prepared statement on, when its cost looks no
	// worse than planning each call.
	_, err = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	require.NoError(t, err)
	defer conn.Exec(ctx, "RESET plan_cache_mode") //nolint:errcheck // the connection is released next
	seqScan := regexp.MustCompile(`Seq Scan on (\w+)`)
	names := make([]string, 0, len(postgres.HotPathSQL))
	for name := range postgres.HotPathSQL {
		names = append(names, name)
	}
	sort.Strings(names)
	out := map[string][]string{}
	for i, name := range names {
		stmt := fmt.Sprintf("hot_%d", i)
		sd, err := conn.Conn().Prepare(ctx, stmt, postgres.HotPathSQL[name])
		require.NoError(t, err, name)
		nulls := strings.TrimSuffix(strings.Repeat("NULL,", len(sd.ParamOIDs)), ",")
		rows, err := conn.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE %s(%s)", stmt, nulls))
		require.NoError(t, err, name)
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			for _, m := range seqScan.FindAllStringSubmatch(line, -1) {
				out[name] = append(out[name], m[1])
			}
		}
		require.NoError(t, rows.Err(), name)
	}
	return out
}

// The hot path's statements are prepared, and from their sixth call PostgreSQL may run a generic
// plan made for the tables as they are then. On an empty database that plan scanned idv_checks,
// alerts, duplicate_links and the ring index whole, and kept doing so as they grew. On a pool
// opened with KeyLookUpPlans every hot-path plan uses an index.
func TestTheHotPathsPlansUseIndexesOnAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	dbURL, plain := testinfra.Database(t)
	hot, err := postgres.Connect(context.Background(), dbURL, 2, postgres.KeyLookUpPlans)
	require.NoError(t, err)
	defer hot.Close()
	require.Empty(t, seqScans(t, hot), "generic plans that scan a whole table")

	// The same statements on a pool without the option: the option is what keeps the scans out
	// (if this stops failing, PostgreSQL plans these differently and the option may go).
	scans := seqScans(t, plain)
	require.NotEmpty(t, scans["lookupOutcomes"], "without the option the look-up of stored outcomes scans idv_checks: %v", scans)
	t.Logf("generic plans without the option: %v", scans)
}
