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
