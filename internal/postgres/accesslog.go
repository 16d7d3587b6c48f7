package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/accesslog"
)

// MaxSweepRows bounds the rows one retention statement deletes, so that a sweep holds its locks
// briefly and its WAL comes in small pieces.
const MaxSweepRows = 10000

var accessLogCopyColumns = []string{"read_at", "actor", "via", "what", "user_ids", "user_count", "ring_id"}

// InsertAccessLog appends entries to the access log with one COPY. It implements accesslog.Sink.
func (s *Store) InsertAccessLog(ctx context.Context, entries []accesslog.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	_, err := s.pool.CopyFrom(ctx, pgx.Identifier{"access_log"}, accessLogCopyColumns,
		pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
			e := entries[i]
			ids := e.UserIDs
			if ids == nil {
				ids = []string{}
			}
			var ring *string
			if e.RingID != "" {
				ring = &e.RingID
			}
			return []any{e.At, e.Actor, e.Via, e.What, ids, max(e.UserCount, len(ids)), ring}, nil
		}))
	if err != nil {
		return fmt.Errorf("insert %d access-log entries: %w", len(entries), err)
	}
	return nil
}

const accessLogColumns = `entry_id, read_at, actor, via, what, user_ids, user_count, coalesce(ring_id, '')`

func scanAccessLogEntry(row pgx.CollectableRow) (accesslog.Entry, error) {
	var e accesslog.Entry
	err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Via, &e.What, &e.UserIDs, &e.UserCount, &e.RingID)
	e.At = e.At.UTC()
	return e, err
}

// AccessLog returns a page of access-log entries, newest first, as q selects them.
func (s *Store) AccessLog(ctx context.Context, q accesslog.Query) ([]accesslog.Entry, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.UserID != "" {
		where = append(where, "user_ids @> ARRAY["+arg(q.UserID)+"::text]")
	}
	if q.RingID != "" {
		where = append(where, "ring_id = "+arg(q.RingID))
	}
	if q.Actor != "" {
		where = append(where, "actor = "+arg(q.Actor))
	}
	if !q.Since.IsZero() {
		where = append(where, "read_at >= "+arg(q.Since))
	}
	if q.Before != nil {
		where = append(where, fmt.Sprintf("(read_at, entry_id) < (%s, %s)", arg(q.Before.At), arg(q.Before.ID)))
	}
	sql := `SELECT ` + accessLogColumns + ` FROM access_log`
	if len(where) > 0 {
		sql += "\nWHERE " + strings.Join(where, " AND ")
	}
	sql += "\nORDER BY read_at DESC, entry_id DESC\nLIMIT " + arg(q.Limit)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("select access log: %w", err)
	}
	entries, err := pgx.CollectRows(rows, scanAccessLogEntry)
	if err != nil {
		return nil, fmt.Errorf("select access log: %w", err)
	}
	return entries, nil
}

// PseudonymizeAccessLog is the package's PseudonymizeAccessLog, for a caller that holds a Store.
func (s *Store) PseudonymizeAccessLog(ctx context.Context, tx pgx.Tx, userID, pseudonym string) (int64, error) {
	return PseudonymizeAccessLog(ctx, tx, userID, pseudonym)
}

// PseudonymizeAccessLog replaces userID by pseudonym ("erased:" and the keyed hash) in every
// access-log entry that lists it, inside the erasure's transaction tx, and returns how many entries
// changed. It opens the append-only trigger's erasure gate (doppel.erasure) for that one statement
// and puts the setting back as it was, so the rest of the erasure runs with the gate as its caller
// left it; the trigger lets the statement replace ids by pseudonyms and nothing else.
func PseudonymizeAccessLog(ctx context.Context, tx pgx.Tx, userID, pseudonym string) (int64, error) {
	if !strings.HasPrefix(pseudonym, "erased:") || len(pseudonym) == len("erased:") {
		return 0, errors.New("pseudonymize access log: the pseudonym must be erased: and the keyed hash")
	}
	var before string
	err := tx.QueryRow(ctx, `SELECT coalesce(current_setting('doppel.erasure', true), ''), set_config('doppel.erasure', 'on', true)`).
		Scan(&before, new(string))
	if err != nil {
		return 0, fmt.Errorf("pseudonymize access log: open the erasure gate: %w", err)
	}
	tag, err := tx.Exec(ctx, `UPDATE access_log SET user_ids = array_replace(user_ids, $1, $2) WHERE user_ids @> ARRAY[$1::text]`,
		userID, pseudonym)
	if err != nil {
		return 0, fmt.Errorf("pseudonymize access log: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('doppel.erasure', $1, true)`, before); err != nil {
		return 0, fmt.Errorf("pseudonymize access log: close the erasure gate: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteAccessLogBefore deletes the oldest access-log entries read before before, at most limit
// (and at most MaxSweepRows) in one statement, and returns how many went. It is the only delete the
// append-only trigger lets through: the transaction sets doppel.access_log_sweep to before, and the
// trigger refuses to delete any entry read at or after it. Call it again while it returns limit.
// Rows another instance's sweep holds are skipped, not waited for: the two never deadlock.
func (s *Store) DeleteAccessLogBefore(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 || limit > MaxSweepRows {
		limit = MaxSweepRows
	}
	var n int64
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('doppel.access_log_sweep', $1, true)`,
			before.UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
DELETE FROM access_log WHERE entry_id IN (
    SELECT entry_id FROM access_log WHERE read_at < $1 ORDER BY read_at, entry_id LIMIT $2
    FOR UPDATE SKIP LOCKED)`, before, limit)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete access log before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
