package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ClaimDelivery claims a signed callback's delivery id before its event is published, so that of
// two concurrent deliveries of one id exactly one publishes: the INSERT ... ON CONFLICT decides
// atomically, whichever instance each delivery reached. It returns the claim to pass to
// AcceptDelivery or ReleaseDelivery when the caller now holds the id; otherwise claim is "" and
// accepted says whether the id was already accepted (a duplicate) or another delivery of it holds
// a live claim and is publishing.
//
// lease bounds how long a claim holds the id (the publish timeout and a margin): a claim whose
// holder died is taken over after it. An accepted row is taken over only once it has expired (it
// waits for the sweep otherwise); expiresAt is when the id may be forgotten, the end of the
// signature's tolerance window. Lease times use the database's clock, which every instance shares.
func (s *Store) ClaimDelivery(ctx context.Context, scheme, id string, lease time.Duration, expiresAt time.Time) (claim string, accepted bool, err error) {
	// Two tries: the row that conflicted may be released or swept between the INSERT and the
	// SELECT, and the second INSERT then claims it.
	for range 2 {
		var got string
		err = s.pool.QueryRow(ctx, `
INSERT INTO callback_deliveries AS d (scheme, delivery_id, claim, claimed_until, expires_at)
VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond', GREATEST($5::timestamptz, now() + $4::bigint * interval '1 millisecond'))
ON CONFLICT (scheme, delivery_id) DO UPDATE
   SET claim = EXCLUDED.claim, claimed_until = EXCLUDED.claimed_until, accepted_at = NULL, expires_at = EXCLUDED.expires_at
 WHERE (d.accepted_at IS NULL AND d.claimed_until < now()) OR (d.accepted_at IS NOT NULL AND d.expires_at < now())
RETURNING claim::text`, scheme, id, uuid.NewString(), lease.Milliseconds(), expiresAt).Scan(&got)
		if err == nil {
			return got, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", false, fmt.Errorf("claim callback delivery: %w", err)
		}
		err = s.pool.QueryRow(ctx, `SELECT accepted_at IS NOT NULL FROM callback_deliveries WHERE scheme = $1 AND delivery_id = $2`,
			scheme, id).Scan(&accepted)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue
		case err != nil:
			return "", false, fmt.Errorf("read callback delivery: %w", err)
		default:
			return "", accepted, nil
		}
	}
	return "", false, nil
}

// AcceptDelivery records that the claimed delivery's event is on the topic: from now on the id is a
// duplicate until it expires. It reports false when the claim was no longer held (its lease ran out
// and another delivery took the id over).
func (s *Store) AcceptDelivery(ctx context.Context, scheme, id, claim string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE callback_deliveries SET accepted_at = now()
WHERE scheme = $1 AND delivery_id = $2 AND claim = $3 AND accepted_at IS NULL`, scheme, id, claim)
	if err != nil {
		return false, fmt.Errorf("accept callback delivery: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseDelivery gives a claimed id up after its event could not be published, so that the
// producer's retry of the same id is not taken for a duplicate.
func (s *Store) ReleaseDelivery(ctx context.Context, scheme, id, claim string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM callback_deliveries
WHERE scheme = $1 AND delivery_id = $2 AND claim = $3 AND accepted_at IS NULL`, scheme, id, claim)
	if err != nil {
		return fmt.Errorf("release callback delivery: %w", err)
	}
	return nil
}

// DeleteExpiredDeliveries deletes at most limit deliveries whose tolerance window has passed (and
// whose claim, if still unaccepted, has run out), oldest first, and returns how many. The bound
// keeps each statement short however many expired at once; the caller repeats while it deletes
// limit.
func (s *Store) DeleteExpiredDeliveries(ctx context.Context, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
DELETE FROM callback_deliveries d USING (
    SELECT scheme, delivery_id FROM callback_deliveries
     WHERE expires_at < now() AND claimed_until < now()
     ORDER BY expires_at LIMIT $1
       FOR UPDATE SKIP LOCKED) old
WHERE d.scheme = old.scheme AND d.delivery_id = old.delivery_id`, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired callback deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}
