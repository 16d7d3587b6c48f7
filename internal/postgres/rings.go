package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// MaxRingLinks bounds the links a ring look-up returns.
const MaxRingLinks = 5000

// Ring returns the fraud ring of userID with its links: every account transitively linked to it
// (bounded by duplicate.MaxRingMembers). An unknown user is a duplicate.ENOTFOUND error; a known
// user without links is a ring of one.
func (s *Store) Ring(ctx context.Context, userID string) (duplicate.Ring, error) {
	var ring duplicate.Ring
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		known, err := userKnown(ctx, tx, userID)
		if err != nil {
			return err
		}
		if !known {
			return unknownUser(userID)
		}
		ring, err = ringOf(ctx, tx, userID, true)
		return err
	})
	return ring, err
}

// ringSQL walks the link graph from $1; see ringOf.
const ringSQL = `
WITH RECURSIVE ring(user_id) AS (
    SELECT $1::text
    UNION
    -- LATERAL makes each step two index look-ups per member; a join with the duplicate_accounts
    -- view let the planner hash-join all of duplicate_links at every step (the benchmark saw it).
    SELECT n.other FROM ring r CROSS JOIN LATERAL (
        SELECT l.user_id_high AS other FROM duplicate_links l WHERE l.user_id_low = r.user_id
        UNION ALL
        SELECT l.user_id_low FROM duplicate_links l WHERE l.user_id_high = r.user_id
    ) n
), found AS (
    SELECT user_id FROM ring LIMIT $2
)
SELECT doppel_ring_id(min(user_id)), count(*)::int, array_agg(user_id ORDER BY user_id) FROM found`

// ringOf walks the link graph from userID with a recursive CTE. UNION (not UNION ALL) keeps only
// users not reached before, so each member is visited once and the walk ends without a depth bound;
// the LIMIT stops the walk after MaxRingMembers+1 members (PostgreSQL evaluates a recursive CTE only
// as far as its reader pulls), which bounds the work on a giant component.
func ringOf(ctx context.Context, q querier, userID string, withLinks bool) (duplicate.Ring, error) {
	var ring duplicate.Ring
	err := q.QueryRow(ctx, ringSQL, userID, duplicate.MaxRingMembers+1).Scan(&ring.ID, &ring.Size, &ring.Members)
	if err != nil {
		return duplicate.Ring{}, fmt.Errorf("walk ring of user: %w", err)
	}
	truncateRing(&ring)
	if !withLinks {
		return ring, nil
	}
	rows, err := q.Query(ctx, `
SELECT l.user_id_low, l.user_id_high, l.first_seen_at, l.last_seen_at, l.seen_count, l.first_signature_id,
    l.last_signature_id, r.review_id, r.decision, r.note, r.reviewed_by, r.reviewed_at
FROM duplicate_links l
LEFT JOIN LATERAL (
    SELECT review_id, decision, note, reviewed_by, reviewed_at FROM link_reviews
    WHERE user_id_low = l.user_id_low AND user_id_high = l.user_id_high
    ORDER BY reviewed_at DESC, review_id DESC LIMIT 1
) r ON true
WHERE l.user_id_low = ANY ($1) AND l.user_id_high = ANY ($1)
ORDER BY l.user_id_low, l.user_id_high
LIMIT $2`, ring.Members, MaxRingLinks+1)
	if err != nil {
		return duplicate.Ring{}, fmt.Errorf("select ring links: %w", err)
	}
	ring.Links, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.Link, error) {
		var l duplicate.Link
		var id *int64
		var decision, note, by *string
		var at *time.Time
		err := row.Scan(&l.UserIDLow, &l.UserIDHigh, &l.FirstSeenAt, &l.LastSeenAt, &l.SeenCount,
			&l.FirstSignatureID, &l.LastSignatureID, &id, &decision, &note, &by, &at)
		l.FirstSeenAt, l.LastSeenAt = l.FirstSeenAt.UTC(), l.LastSeenAt.UTC()
		if id != nil {
			l.LatestReview = &duplicate.Review{ID: *id, UserID: l.UserIDLow, DuplicateUserID: l.UserIDHigh,
				Decision: duplicate.Decision(*decision), Note: *note, ReviewedBy: *by, ReviewedAt: at.UTC(), Linked: true}
		}
		return l, err
	})
	if err != nil {
		return duplicate.Ring{}, fmt.Errorf("select ring links: %w", err)
	}
	if len(ring.Links) > MaxRingLinks {
		ring.Links = ring.Links[:MaxRingLinks]
		ring.Truncated = true
	}
	return ring, nil
}

// truncateRing applies the member bound to a ring read with ringSQL, which reads one member more
// than the bound so that a larger ring can be told apart.
func truncateRing(ring *duplicate.Ring) {
	if ring.Size > duplicate.MaxRingMembers {
		ring.Truncated = true
		ring.Size = duplicate.MaxRingMembers
		ring.Members = ring.Members[:duplicate.MaxRingMembers]
	}
}
