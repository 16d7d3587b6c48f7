package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

const reviewColumns = `review_id, user_id_low, user_id_high, decision, note, reviewed_by, reviewed_at`

func scanReview(row pgx.CollectableRow) (duplicate.Review, error) {
	var r duplicate.Review
	var decision string
	err := row.Scan(&r.ID, &r.UserID, &r.DuplicateUserID, &decision, &r.Note, &r.ReviewedBy, &r.ReviewedAt)
	r.Decision = duplicate.Decision(decision)
	r.ReviewedAt = r.ReviewedAt.UTC()
	return r, err
}

// orient returns r with userID as its UserID (reviews are stored in canonical pair order).
func orient(r duplicate.Review, userID string) duplicate.Review {
	if r.UserID != userID {
		r.UserID, r.DuplicateUserID = r.DuplicateUserID, r.UserID
	}
	return r
}

// AddReview appends a review to its pair's history and returns it as stored. Both users must be
// known to Doppel (duplicate.ENOTFOUND names the one that is not); the pair need not be linked yet,
// which lets an analyst clear a pair in advance.
func (s *Store) AddReview(ctx context.Context, r duplicate.Review) (duplicate.Review, error) {
	if !r.Decision.Valid() {
		return duplicate.Review{}, duplicate.Invalid("decision", "decision must be one of %v", duplicate.Decisions)
	}
	if r.UserID == r.DuplicateUserID {
		return duplicate.Review{}, duplicate.Invalid("duplicateUserId", "duplicateUserId must differ from userId")
	}
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		for _, u := range []struct{ field, id string }{{"userId", r.UserID}, {"duplicateUserId", r.DuplicateUserID}} {
			known, err := userKnown(ctx, tx, u.id)
			if err != nil {
				return err
			}
			if !known {
				e := duplicate.Errorf(duplicate.ENOTFOUND, "no check or link mentions %s %q", u.field, u.id)
				e.Field = u.field
				return e
			}
		}
		return insertReview(ctx, tx, &r)
	})
	if err != nil {
		return duplicate.Review{}, err
	}
	return r, nil
}

// insertReview appends r to its pair's history inside tx and keeps the ring index true: the ring
// index follows reviews (a cleared pair joins no ring), so the review takes the index's lock. It
// fills in r's id, time and whether the pair is linked.
func insertReview(ctx context.Context, tx pgx.Tx, r *duplicate.Review) error {
	if err := lockRingIndex(ctx, tx); err != nil {
		return err
	}
	pair := duplicate.PairOf(r.UserID, r.DuplicateUserID)
	before, err := latestDecision(ctx, tx, pair)
	if err != nil {
		return err
	}
	err = tx.QueryRow(ctx, `
INSERT INTO link_reviews (user_id_low, user_id_high, decision, note, reviewed_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING review_id, reviewed_at,
    EXISTS (SELECT 1 FROM duplicate_links WHERE user_id_low = $1 AND user_id_high = $2)`,
		pair.Low, pair.High, string(r.Decision), r.Note, r.ReviewedBy).Scan(&r.ID, &r.ReviewedAt, &r.Linked)
	if err != nil {
		return fmt.Errorf("insert review: %w", err)
	}
	r.ReviewedAt = r.ReviewedAt.UTC()
	// An overflow account's pair has no link but its alert lists it: close alerts either way.
	if err := closeReviewedAlerts(ctx, tx, pair); err != nil {
		return err
	}
	if !r.Linked {
		return nil
	}
	return reringAfterReview(ctx, tx, pair, before, r.Decision)
}
