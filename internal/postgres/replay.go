package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

var _ duplicate.ReplayStore = (*Store)(nil)

// ReplaceCheck stores a re-run's answer over the stored check whatever its outcome (a re-run is
// asked for by a person, so the "already stored" rule does not apply), counts the re-run, upserts
// its links (a pair seen again gets seen_count + 1: the re-run did see it again) and writes the alert
// for links that are new and not cleared by a review, all in one transaction. Links the re-run no
// longer sees are kept: they record that the faces matched once, and their reviews refer to them.
// It returns the matched userIds stored before.
func (s *Store) ReplaceCheck(ctx context.Context, check duplicate.Check) (duplicate.Saved, []string, error) {
	var saved duplicate.Saved
	var previous []string
	err := retryConflicts(ctx, func() error {
		return inTx(ctx, s.pool, func(tx pgx.Tx) error {
			// The stored answer is its first ids and, past them, its overflow.
			err := tx.QueryRow(ctx, `
SELECT c.matched_user_ids || coalesce(o.user_ids, '{}')
FROM idv_checks c LEFT JOIN check_overflow o USING (signature_id)
WHERE c.signature_id = $1 FOR UPDATE OF c`, check.SignatureID).Scan(&previous)
			if errors.Is(err, pgx.ErrNoRows) {
				return duplicate.Errorf(duplicate.ENOTFOUND, "no check is stored for signatureId %q", check.SignatureID)
			}
			if err != nil {
				return fmt.Errorf("lock check %s: %w", check.SignatureID, err)
			}
			_, err = tx.Exec(ctx, `
UPDATE idv_checks SET outcome = $2, similar_user_ids = $3, matched_user_ids = $4, similar_count = $7,
    matched_count = $8, vendor_transaction_id = NULLIF($5, ''), replay_count = replay_count + 1, replayed_at = $6
WHERE signature_id = $1`, check.SignatureID, string(check.Outcome), nonNil(duplicate.Listed(check.SimilarUserIDs)),
				nonNil(duplicate.Listed(check.MatchedUserIDs)), check.VendorTransactionID, check.ReplayedAt,
				len(check.SimilarUserIDs), len(check.MatchedUserIDs))
			if err != nil {
				return fmt.Errorf("update check %s: %w", check.SignatureID, err)
			}
			// The re-run's overflow, if any, replaces the first answer's.
			if _, err := tx.Exec(ctx, `DELETE FROM check_overflow WHERE signature_id = $1`, check.SignatureID); err != nil {
				return fmt.Errorf("clear overflow of check %s: %w", check.SignatureID, err)
			}
			// Links and the alert are dated by the re-run, not by the first check.
			linked := check
			if check.ReplayedAt != nil {
				linked.CheckedAt = *check.ReplayedAt
			}
			all, err := s.linkAll(ctx, tx, []duplicate.Check{linked})
			if err != nil {
				return err
			}
			saved = all[0]
			return nil
		})
	})
	if err != nil {
		return duplicate.Saved{}, nil, err
	}
	return saved, previous, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ReserveReplays counts n billed re-runs against key's quota for today (UTC) when that keeps the
// day's total within limit, and returns the total after it and true; otherwise it counts nothing
// and returns the day's total so far and false. The check and the count are one statement, so
// concurrent requests on any instance cannot overspend together.
func (s *Store) ReserveReplays(ctx context.Context, key string, n, limit int) (int, bool, error) {
	var total int
	if n > limit { // more than a whole day's quota: the insert below would not check it
		err := s.pool.QueryRow(ctx, `
SELECT coalesce(sum(searches), 0) FROM replay_quota WHERE key_name = $1 AND day = (now() AT TIME ZONE 'UTC')::date`,
			key).Scan(&total)
		if err != nil {
			return 0, false, fmt.Errorf("read replay quota of %s: %w", key, err)
		}
		return total, false, nil
	}
	err := s.pool.QueryRow(ctx, `
INSERT INTO replay_quota AS q (key_name, day, searches) VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2)
ON CONFLICT (key_name, day) DO UPDATE SET searches = q.searches + $2 WHERE q.searches + $2 <= $3
RETURNING searches`, key, n, limit).Scan(&total)
	if errors.Is(err, pgx.ErrNoRows) { // the row exists and the update would overspend
		err = s.pool.QueryRow(ctx, `
SELECT searches FROM replay_quota WHERE key_name = $1 AND day = (now() AT TIME ZONE 'UTC')::date`, key).Scan(&total)
		if err != nil {
			return 0, false, fmt.Errorf("read replay quota of %s: %w", key, err)
		}
		return total, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reserve %d re-runs for %s: %w", n, key, err)
	}
	if total == n { // the day's first reservation: forget the days that can no longer matter
		if _, err := s.pool.Exec(ctx, `DELETE FROM replay_quota WHERE day < (now() AT TIME ZONE 'UTC')::date - 7`); err != nil {
			return 0, false, fmt.Errorf("forget old replay quotas: %w", err)
		}
	}
	return total, true, nil
}

// ReleaseReplays gives back n re-runs reserved today that were not billed (they failed before the
// search went out).
func (s *Store) ReleaseReplays(ctx context.Context, key string, n int) error {
	if n <= 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `
UPDATE replay_quota SET searches = greatest(searches - $2, 0)
WHERE key_name = $1 AND day = (now() AT TIME ZONE 'UTC')::date`, key, n)
	if err != nil {
		return fmt.Errorf("release %d re-runs of %s: %w", n, key, err)
	}
	return nil
}
