package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/postgres"
)

func read(at time.Time, actor string, ids ...string) accesslog.Entry {
	return accesslog.Entry{At: at, Actor: actor, Via: accesslog.ViaAPI, What: "GET /v1/users/{userId}/cluster",
		UserIDs: ids, UserCount: len(ids), RingID: "ring_0123456789abcdef"}
}

func accessLogIDs(t *testing.T, b bundle) []string {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT array_to_string(user_ids, ',') FROM access_log ORDER BY entry_id`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

// refusedAsAppendOnly checks that err is the append-only trigger's refusal.
func refusedAsAppendOnly(t *testing.T, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "42501", pgErr.Code, "insufficient_privilege: %s", pgErr.Message)
	require.Contains(t, pgErr.Message, "access_log is append-only")
}

func TestTheAccessLogRefusesUpdatesAndDeletesOutsideItsTwoGates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	old := time.Now().Add(-48 * time.Hour)
	require.NoError(t, b.store.InsertAccessLog(b.ctx, []accesslog.Entry{read(old, "analyst", "alice", "bob"), read(time.Now(), "analyst", "alice")}))

	for _, stmt := range []string{
		`UPDATE access_log SET actor = 'someone-else'`,
		`UPDATE access_log SET user_ids = array_replace(user_ids, 'alice', 'erased:abc')`,
		`DELETE FROM access_log`,
		`DELETE FROM access_log WHERE read_at < now() - interval '1 day'`,
		`TRUNCATE access_log`,
	} {
		_, err := b.pool.Exec(b.ctx, stmt)
		refusedAsAppendOnly(t, err)
	}
	// The erasure gate lets a pseudonym replace an id, and nothing else.
	for _, stmt := range []string{
		`UPDATE access_log SET actor = 'someone-else'`,
		`UPDATE access_log SET user_ids = array_replace(user_ids, 'alice', 'mallory')`,
		`UPDATE access_log SET user_ids = user_ids || 'erased:abc'::text`,
		`UPDATE access_log SET user_ids = array_replace(user_ids, 'alice', 'erased:abc'), ring_id = NULL`,
		`DELETE FROM access_log`,
	} {
		err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(b.ctx, `SET LOCAL doppel.erasure = 'on'`); err != nil {
				return err
			}
			_, err := tx.Exec(b.ctx, stmt)
			return err
		})
		refusedAsAppendOnly(t, err)
	}
	// The sweep gate lets only rows read before its cutoff go.
	err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(b.ctx, `SELECT set_config('doppel.access_log_sweep', $1, true)`, old.Add(-time.Hour).Format(time.RFC3339Nano)); err != nil {
			return err
		}
		_, err := tx.Exec(b.ctx, `DELETE FROM access_log`)
		return err
	})
	refusedAsAppendOnly(t, err)
	// A gate is transaction-local: once its transaction ended, a plain statement is refused again.
	var n int64
	require.NoError(t, pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		var err error
		n, err = postgres.PseudonymizeAccessLog(b.ctx, tx, "alice", "erased:abc")
		return err
	}))
	require.EqualValues(t, 2, n)
	_, err = b.pool.Exec(b.ctx, `UPDATE access_log SET user_ids = array_replace(user_ids, 'bob', 'erased:def')`)
	refusedAsAppendOnly(t, err)
	require.Equal(t, []string{"erased:abc,bob", "erased:abc"}, accessLogIDs(t, b))
}

func TestPseudonymizingTheAccessLogChangesOnlyThatUserAndLeavesTheGateAsItWas(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	require.NoError(t, b.store.InsertAccessLog(b.ctx, []accesslog.Entry{
		read(now, "analyst", "alice", "bob"), read(now, "analyst", "bob"), read(now, "dpo", "carol", "alice")}))
	err := pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		n, err := postgres.PseudonymizeAccessLog(b.ctx, tx, "alice", "erased:0123")
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		var gate *string
		require.NoError(t, tx.QueryRow(b.ctx, `SELECT nullif(current_setting('doppel.erasure', true), '')`).Scan(&gate))
		require.Nil(t, gate, "the gate is closed again for the rest of the erasure")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"erased:0123,bob", "bob", "carol,erased:0123"}, accessLogIDs(t, b))
	entries, err := b.store.AccessLog(b.ctx, accesslog.Query{UserID: "alice", Limit: 10})
	require.NoError(t, err)
	require.Empty(t, entries, "alice is in no entry any more")

	err = pgx.BeginFunc(b.ctx, b.pool, func(tx pgx.Tx) error {
		_, err := postgres.PseudonymizeAccessLog(b.ctx, tx, "bob", "not-a-pseudonym")
		return err
	})
	require.ErrorContains(t, err, "erased:")
}

func TestTheSweepDeletesOnlyEntriesOlderThanTheCutoffInBoundedStatements(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now()
	var entries []accesslog.Entry
	for i := range 25 {
		entries = append(entries, read(now.Add(-time.Duration(100-i)*time.Hour), "analyst", fmt.Sprintf("old-%02d", i)))
	}
	for i := range 5 {
		entries = append(entries, read(now.Add(-time.Duration(i)*time.Minute), "analyst", fmt.Sprintf("new-%02d", i)))
	}
	require.NoError(t, b.store.InsertAccessLog(b.ctx, entries))
	cutoff := now.Add(-24 * time.Hour)

	n, err := b.store.DeleteAccessLogBefore(b.ctx, cutoff, 10)
	require.NoError(t, err)
	require.EqualValues(t, 10, n, "one statement deletes at most its limit")
	ids := accessLogIDs(t, b)
	require.Len(t, ids, 20)
	require.Equal(t, "old-10", ids[0], "the oldest went first")

	var swept []int64
	require.NoError(t, accesslog.Sweep(canceledAfter(t, 2*time.Second), b.store, accesslog.SweepConfig{Retention: 24 * time.Hour,
		Interval: time.Hour, Batch: 4, OnDeleted: func(n int64) { swept = append(swept, n) }}))
	require.Equal(t, []int64{4, 4, 4, 3}, swept, "batches of at most 4 until one is short")
	ids = accessLogIDs(t, b)
	require.Equal(t, []string{"new-00", "new-01", "new-02", "new-03", "new-04"}, ids, "every recent entry is kept")
}

// canceledAfter returns a context that ends after d (a Sweep with an hour's interval returns then).
func canceledAfter(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
