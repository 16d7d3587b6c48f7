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
		err := tx.QueryRow(ctx, `
INSERT INTO link_reviews (user_id_low, user_id_high, decision, note, reviewed_by)
VALUES (least($1::text, $2::text), greatest($1::text, $2::text), $3, $4, $5)
RETURNING review_id, reviewed_at,
    EXISTS (SELECT 1 FROM duplicate_links WHERE user_id_low = least($1::text, $2::text) AND user_id_high = greatest($1::text, $2::text))`,
			r.UserID, r.DuplicateUserID, string(r.Decision), r.Note, r.ReviewedBy).Scan(&r.ID, &r.ReviewedAt, &r.Linked)
		if err != nil {
			return fmt.Errorf("insert review: %w", err)
		}
		r.ReviewedAt = r.ReviewedAt.UTC()
		return nil
	})
	if err != nil {
		return duplicate.Review{}, err
	}
	return r, nil
}

// latestDecisions returns, for each of others that has a review with userID, the pair's latest
// decision, keyed by the other userId.
func latestDecisions(ctx context.Context, q querier, userID string, others []string) (map[string]duplicate.Decision, error) {
	rows, err := q.Query(ctx, latestDecisionsSQL, userID, others)
	return readDecisions(rows, err)
}

const latestDecisionsSQL = `
SELECT u.m, r.decision
FROM unnest($2::text[]) AS u(m)
CROSS JOIN LATERAL (
    SELECT decision FROM link_reviews
    WHERE user_id_low = least($1::text, u.m) AND user_id_high = greatest($1::text, u.m)
    ORDER BY reviewed_at DESC, review_id DESC LIMIT 1
) r`

func readDecisions(rows pgx.Rows, err error) (map[string]duplicate.Decision, error) {
	if err != nil {
		return nil, fmt.Errorf("select latest reviews: %w", err)
	}
	out := map[string]duplicate.Decision{}
	var m, d string
	_, err = pgx.ForEachRow(rows, []any{&m, &d}, func() error {
		out[m] = duplicate.Decision(d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select latest reviews: %w", err)
	}
	return out, nil
}
