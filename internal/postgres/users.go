package postgres

// The console's user search and a user's own verifications.

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// UserIDsByPrefix returns the distinct userIds of stored verifications that start with prefix, in
// byte order, after after ("" from the first), at most limit. It is one range of
// idv_checks_user_id_idx (user_id is COLLATE "C", so byte order is the index's order): from the
// prefix up to its successor (prefixEnd), read until limit ids are found.
func (s *Store) UserIDsByPrefix(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	sql, args := userIDsByPrefixSQL(prefix, after, limit)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return ids, nil
}

// userIDsByPrefixSQL is UserIDsByPrefix's statement and its arguments: both ends of the range are
// parameters compared with user_id itself, so that a generic plan uses the index as well.
func userIDsByPrefixSQL(prefix, after string, limit int) (string, []any) {
	from, cmp := prefix, ">="
	if after != "" {
		from, cmp = max(after, prefix), ">"
	}
	args := []any{from, limit}
	sql := `SELECT DISTINCT user_id FROM idv_checks WHERE user_id ` + cmp + ` $1`
	if end, ok := prefixEnd(prefix); ok {
		args = append(args, end)
		sql += ` AND user_id < $3`
	}
	return sql + ` ORDER BY user_id LIMIT $2`, args
}

// prefixEnd returns the smallest string above every string that starts with prefix: the prefix
// with its last character made the next one. UTF-8's byte order is its code points' order, so
// this holds by bytes too; a last character that has no next one (U+10FFFF) is dropped and the
// one before it moved on. ok is false when no such string exists ("" or only U+10FFFF): the
// range then has no upper end.
func prefixEnd(prefix string) (string, bool) {
	for prefix != "" {
		r, size := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-size]
		switch {
		case r == utf8.MaxRune:
			continue
		case r == 0xD7FF: // the surrogates are not characters: the next one is U+E000
			return prefix + "\uE000", true
		}
		return prefix + string(r+1), true
	}
	return "", false
}

// UserChecks returns userID's own verifications, newest first, at most limit: the user's entries
// of idv_checks_user_id_idx.
func (s *Store) UserChecks(ctx context.Context, userID string, limit int) ([]duplicate.UserCheck, error) {
	rows, err := s.pool.Query(ctx, `
SELECT signature_id, checked_at, outcome, region, coalesce(cardinality(matched_user_ids), 0)
FROM idv_checks WHERE user_id = $1
ORDER BY checked_at DESC, signature_id DESC
LIMIT $2`, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("select the user's checks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.UserCheck, error) {
		var c duplicate.UserCheck
		var at time.Time
		var outcome string
		err := row.Scan(&c.SignatureID, &at, &outcome, &c.Region, &c.Matched)
		c.CheckedAt, c.Outcome = at.UTC(), duplicate.Outcome(outcome)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("select the user's checks: %w", err)
	}
	return out, nil
}
