package postgres_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/postgres"
)

func TestTheUsersSearchFindsEachUserIdByItsStartInByteOrderAndPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, user := range []string{"cust-100", "cust-1", "cust-11", "cust-2", "CUST-1x", "cust-1é", "cust-10", "cusu-1", "cust-1"} {
		_, err := b.store.SaveCheck(b.ctx, check(fmt.Sprintf("s%d", i), user))
		require.NoError(t, err)
	}
	search := func(prefix, after string, limit int) []string {
		ids, err := b.store.UserIDsByPrefix(b.ctx, prefix, after, limit)
		require.NoError(t, err)
		return ids
	}
	// cust-1 verified twice and is listed once; "CUST-1x" differs in case; "é" (0xC3 0xA9) sorts
	// after every ASCII character.
	require.Equal(t, []string{"cust-1", "cust-10", "cust-100", "cust-11", "cust-1é"}, search("cust-1", "", 10))
	require.Equal(t, []string{"cust-1", "cust-10"}, search("cust-1", "", 2), "bounded by the limit")
	require.Equal(t, []string{"cust-100", "cust-11"}, search("cust-1", "cust-10", 2), "the next page starts after the last id shown")
	require.Equal(t, []string{"cust-1é"}, search("cust-1", "cust-11", 2))
	require.Empty(t, search("cust-1", "cust-1é", 2))
	require.Equal(t, []string{"cust-1é"}, search("cust-1é", "", 10), "a prefix ending in a two-byte character")
	require.Equal(t, []string{"cusu-1"}, search("cusu", "", 10))
	require.Empty(t, search("cust-3", "", 10))
	require.Equal(t, []string{"CUST-1x", "cust-1", "cust-10"}, search("", "", 3), "an empty prefix is every id")
}

func TestPrefixEndIsTheSmallestStringAboveThePrefixsRange(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		prefix, end string
		ok          bool
	}{
		{"cust-1", "cust-2", true},
		{"a\u00ff", "a\u0100", true},        // the last byte 0xBF cannot simply be incremented
		{"a\ud7ff", "a\ue000", true},        // the surrogates are skipped
		{"a\U0010FFFF", "b", true},          // the largest character has no next one
		{"\U0010FFFF\U0010FFFF", "", false}, // nothing is above
		{"", "", false},
	} {
		end, ok := postgres.PrefixEnd(c.prefix)
		require.Equal(t, c.ok, ok, "%q", c.prefix)
		require.Equal(t, c.end, end, "%q", c.prefix)
	}
}

func TestAUsersChecksAreListedNewestFirstAndBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	for i := range 4 {
		c := check(fmt.Sprintf("u-%d", i), "cust-7")
		c.CheckedAt, c.Region = base.Add(time.Duration(i)*time.Minute), []string{"ph", "th"}[i%2]
		if i == 3 {
			c.MatchedUserIDs, c.SimilarUserIDs, c.Outcome = []string{"cust-8"}, []string{"cust-8"}, duplicate.OutcomeDuplicatesFound
		}
		_, err := b.store.SaveCheck(b.ctx, c)
		require.NoError(t, err)
	}
	_, err := b.store.SaveCheck(b.ctx, check("other", "cust-70"))
	require.NoError(t, err)
	checks, err := b.store.UserChecks(b.ctx, "cust-7", 3)
	require.NoError(t, err)
	require.Len(t, checks, 3)
	require.Equal(t, duplicate.UserCheck{SignatureID: "u-3", CheckedAt: base.Add(3 * time.Minute), Outcome: duplicate.OutcomeDuplicatesFound,
		Region: "th", Matched: 1}, checks[0])
	require.Equal(t, []string{"u-3", "u-2", "u-1"}, []string{checks[0].SignatureID, checks[1].SignatureID, checks[2].SignatureID})
	require.Equal(t, "ph", checks[1].Region)
	none, err := b.store.UserChecks(b.ctx, "cust-9", 3)
	require.NoError(t, err)
	require.Empty(t, none)
}

// planOf returns the generic plan (what PostgreSQL runs from a prepared statement's sixth call) of
// sql with args, as EXPLAIN ANALYZE prints it.
func planOf(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
	require.NoError(t, err)
	defer conn.Exec(ctx, "RESET plan_cache_mode") //nolint:errcheck // the connection is released next
	_, err = conn.Conn().Prepare(ctx, "planned", sql)
	require.NoError(t, err)
	defer conn.Conn().Deallocate(ctx, "planned") //nolint:errcheck // the connection is released next
	// EXPLAIN EXECUTE takes no parameters of its own: the values are written in as literals.
	params := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			params[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		case time.Time:
			params[i] = "'" + v.UTC().Format(time.RFC3339Nano) + "'"
		default:
			params[i] = fmt.Sprint(v)
		}
	}
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE planned("+strings.Join(params, ",")+")")
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

var rowsRemoved = regexp.MustCompile(`Rows Removed by Filter: (\d+)`)

// On tables of 200,000 verifications and alerts (a few of them open) the users search and the
// overview's open cases read index ranges: no sequential scan, and no index read whole.
func TestTheUsersSearchAndTheOpenCasesReadIndexRangesOnLargeTables(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n = 200_000
	_, err := b.pool.Exec(b.ctx, `
INSERT INTO idv_checks (signature_id, user_id, event_type, outcome, similar_user_ids, matched_user_ids, checked_at)
SELECT 'big-' || i, 'user-' || lpad(i::text, 6, '0'), 'COMPLETED', 'duplicates_found', ARRAY['user-' || lpad((i # 1)::text, 6, '0')],
    ARRAY['user-' || lpad((i # 1)::text, 6, '0')], now() - (i || ' seconds')::interval
FROM generate_series(0, $1 - 1) AS i;
`, n)
	require.NoError(t, err)
	for _, stmt := range []string{`
INSERT INTO alerts (alert_id, signature_id, user_id, matched_user_ids, new_matched_user_ids, detected_at, region, open)
SELECT gen_random_uuid(), 'big-' || i, 'user-' || lpad(i::text, 6, '0'), '{}', '{}', now() - (i || ' seconds')::interval,
    CASE WHEN i % 2 = 0 THEN 'ph' ELSE 'th' END, i % 20000 = 1
FROM generate_series(0, $1::int - 1) AS i`, `
INSERT INTO rings (ring_key, smallest_user_id, size)
SELECT 'user-' || lpad(i::text, 6, '0'), 'user-' || lpad(i::text, 6, '0'), 2 FROM generate_series(0, $1::int - 1, 2) AS i`, `
INSERT INTO ring_members (user_id, ring_key)
SELECT 'user-' || lpad(i::text, 6, '0'), 'user-' || lpad((i - i % 2)::text, 6, '0') FROM generate_series(0, $1::int - 1) AS i`} {
		_, err = b.pool.Exec(b.ctx, stmt, n)
		require.NoError(t, err)
	}
	_, err = b.pool.Exec(b.ctx, `ANALYZE idv_checks; ANALYZE alerts; ANALYZE rings; ANALYZE ring_members`)
	require.NoError(t, err)

	for _, c := range []struct {
		prefix string
		read   int
	}{
		{"user-1234", 51},  // 100 ids start so: the scan stops at the page's 51
		{"user-12345", 10}, // 10 ids start so: the scan stops at the range's end
	} {
		sql, args := postgres.UserIDsByPrefixSQL(c.prefix, "", 51)
		plan := planOf(t, b.pool, sql, args...)
		t.Logf("users search for %s:\n%s", c.prefix, plan)
		require.NotContains(t, plan, "Seq Scan")
		require.Contains(t, plan, fmt.Sprintf("Index Only Scan using idv_checks_user_id_idx on idv_checks (actual rows=%d loops=1)", c.read))
		require.Empty(t, rowsRemoved.FindAllString(plan, -1), "every row read is in the range")
		ids, err := b.store.UserIDsByPrefix(b.ctx, c.prefix, "", 51)
		require.NoError(t, err)
		require.Len(t, ids, min(c.read, 51))
	}

	plan := planOf(t, b.pool, postgres.OpenCasesSQL, postgres.OpenCasesRead, time.Now().Add(-time.Hour), 5)
	t.Logf("open cases:\n%s", plan)
	require.NotContains(t, plan, "Seq Scan")
	require.Contains(t, plan, "Index Scan using alerts_open_detected_at_idx on alerts a (actual rows=10 loops=1)", "only the open alerts are read")
	cases, err := b.store.OpenCases(b.ctx, time.Now(), time.Hour)
	require.NoError(t, err)
	require.Equal(t, n/20000, cases.Read)
	require.Equal(t, n/20000, cases.Total, "each open alert's account is in a ring of its own")
}
