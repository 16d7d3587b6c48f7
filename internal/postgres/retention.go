package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// RetentionBatch bounds the rows one statement of the retention sweep reads or deletes.
const RetentionBatch = 10_000

// sweepLimit is limit within (0, RetentionBatch], RetentionBatch when out of it.
func sweepLimit(limit int) int {
	if limit <= 0 || limit > RetentionBatch {
		return RetentionBatch
	}
	return limit
}

// SweepCursor is where a sweep goes on from: the last check (by completion time and signatureId)
// or link (by pair) it looked at. The zero cursor starts at the beginning.
type SweepCursor struct {
	At          time.Time
	SignatureID string
	Pair        duplicate.PairKey
}

// SweepChecks deletes, of the checks of region completed before cutoff, those of people not on
// legal hold among the next limit (at most RetentionBatch) after the cursor, with their alerts and overflow, in one
// transaction. It returns the rows deleted by table, the cursor to go on from, and whether the
// region's expired checks are all looked at. Rings do not change (they are made of links), but
// their summaries do: recounted for the rings of the people swept.
func (s *Store) SweepChecks(ctx context.Context, region string, cutoff time.Time, after SweepCursor, limit int) (map[string]int64, SweepCursor, bool, error) {
	limit = sweepLimit(limit)
	deleted := map[string]int64{}
	next := after
	done := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := sweepCommitsAsync(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT signature_id, coalesce(user_id, ''), checked_at FROM idv_checks
WHERE region = $1 AND checked_at < $2 AND (checked_at, signature_id) > ($3, $4)
ORDER BY checked_at, signature_id LIMIT $5`, region, cutoff, after.At, after.SignatureID, limit)
		if err != nil {
			return fmt.Errorf("read expired checks: %w", err)
		}
		var sigs, users []string
		var sig, user string
		var at time.Time
		if _, err := pgx.ForEachRow(rows, []any{&sig, &user, &at}, func() error {
			sigs, users = append(sigs, sig), append(users, user)
			next = SweepCursor{At: at, SignatureID: sig}
			return nil
		}); err != nil {
			return fmt.Errorf("read expired checks: %w", err)
		}
		done = len(sigs) < limit
		held, err := heldUsers(ctx, tx, users)
		if err != nil {
			return err
		}
		var expired, expiredUsers []string
		for i, sg := range sigs {
			if !held[users[i]] {
				expired, expiredUsers = append(expired, sg), append(expiredUsers, users[i])
			}
		}
		if len(expired) == 0 {
			return nil
		}
		for _, st := range []struct{ table, sql string }{
			{"alerts", `DELETE FROM alerts WHERE signature_id = ANY ($1::text[])`},
			{"check_overflow", `DELETE FROM check_overflow WHERE signature_id = ANY ($1::text[])`},
			// checked_at again: a check replaced meanwhile (a non-final outcome) is new.
			{"idv_checks", `DELETE FROM idv_checks WHERE signature_id = ANY ($1::text[]) AND checked_at < $2`},
		} {
			args := []any{expired}
			if st.table == "idv_checks" {
				args = append(args, cutoff)
			}
			tag, err := tx.Exec(ctx, st.sql, args...)
			if err != nil {
				return fmt.Errorf("sweep %s: %w", st.table, err)
			}
			deleted[st.table] += tag.RowsAffected()
		}
		// The rings of those people lost checks (their newest member): recounted, under the ring
		// index's lock like every writer of the summaries. Most swept people are in no ring, and
		// then the hot path's batches are not made to wait for the lock. (A person not held has no
		// open alert, so a ring a batch makes of them meanwhile counts no alert deleted here; its
		// newest member is the batch's, newer than any expired check.)
		if inRings, err := anyInRings(ctx, tx, expiredUsers); err != nil || inRings {
			if err != nil {
				return err
			}
			if err := lockRingIndex(ctx, tx); err != nil {
				return err
			}
			if err := refreshRingsOf(ctx, tx, expiredUsers); err != nil {
				return err
			}
		}
		_, err = s.forgetReviewSubjects(ctx, tx, expiredUsers)
		return err
	})
	return deleted, next, done, err
}

// sweepCommitsAsync lets tx's commit return before its WAL reaches the disk: the hot path's
// commits then do not queue behind the sweep's flushes. A crash may lose the last statements of a
// sweep, which the next sweep deletes again; nothing else is lost (PostgreSQL's asynchronous
// commit never leaves a transaction half applied).
func sweepCommitsAsync(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
		return fmt.Errorf("sweep: asynchronous commit: %w", err)
	}
	return nil
}

// anyInRings reports whether any of users is in a ring.
func anyInRings(ctx context.Context, tx pgx.Tx, users []string) (bool, error) {
	var in bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ring_members WHERE user_id = ANY ($1::text[]))`,
		pgx.QueryExecModeExec, users).Scan(&in); err != nil {
		return false, fmt.Errorf("rings of swept people: %w", err)
	}
	return in, nil
}

// refreshRingsOf recounts the summaries of the rings users are in.
func refreshRingsOf(ctx context.Context, tx pgx.Tx, users []string) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT ring_key FROM ring_members WHERE user_id = ANY ($1::text[])`,
		pgx.QueryExecModeExec, users)
	if err != nil {
		return fmt.Errorf("rings of swept people: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("rings of swept people: %w", err)
	}
	return refreshRingSummaries(ctx, tx, keys)
}

// SweepLinks deletes, of the next limit links (at most RetentionBatch) after the cursor (in pair order: no index on
// last_seen_at is kept for the sweep, which would cost every link the hot path writes), those last
// seen before the cutoff of every region that found them (a region without retention keeps its
// links), unless one of the pair is on legal hold. The rings they were part of are recomputed by
// the ring index's own split, as after a review clears a pair. One transaction. The links are read
// and the held people left out without the ring index's lock, which the hot path's batches need:
// only a batch with links to delete takes it, asks again who is held (a batch may have raised an
// alert meanwhile) and deletes a link only if no batch saw it again since it was read.
func (s *Store) SweepLinks(ctx context.Context, cutoffs map[string]time.Time, after SweepCursor, limit int) (int64, SweepCursor, bool, error) {
	limit = sweepLimit(limit)
	var deleted int64
	next := after
	done := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := sweepCommitsAsync(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT user_id_low, user_id_high, last_seen_at, regions FROM duplicate_links
WHERE (user_id_low, user_id_high) > ($1, $2) ORDER BY user_id_low, user_id_high LIMIT $3`,
			after.Pair.Low, after.Pair.High, limit)
		if err != nil {
			return fmt.Errorf("read links: %w", err)
		}
		type expiredLink struct {
			pair duplicate.PairKey
			seen time.Time
		}
		var expired []expiredLink
		var p duplicate.PairKey
		var seen time.Time
		var regions []string
		n := 0
		if _, err := pgx.ForEachRow(rows, []any{&p.Low, &p.High, &seen, &regions}, func() error {
			n++
			next = SweepCursor{Pair: p}
			if linkExpired(seen, regions, cutoffs) {
				expired = append(expired, expiredLink{p, seen})
			}
			return nil
		}); err != nil {
			return fmt.Errorf("read links: %w", err)
		}
		done = n < limit
		notHeld := func() ([]string, error) {
			var users []string
			for _, l := range expired {
				users = append(users, l.pair.Low, l.pair.High)
			}
			held, err := heldUsers(ctx, tx, users)
			if err != nil {
				return nil, err
			}
			kept := expired[:0]
			users = users[:0]
			for _, l := range expired {
				if !held[l.pair.Low] && !held[l.pair.High] {
					kept = append(kept, l)
					users = append(users, l.pair.Low, l.pair.High)
				}
			}
			expired = kept
			return users, nil
		}
		if _, err := notHeld(); err != nil || len(expired) == 0 {
			return err
		}
		if err := lockRingIndex(ctx, tx); err != nil {
			return err
		}
		users, err := notHeld()
		if err != nil || len(expired) == 0 {
			return err
		}
		touched := map[string]bool{} // the rings whose summaries the sweep changed
		for _, l := range expired {
			p := l.pair
			tag, err := tx.Exec(ctx, `DELETE FROM duplicate_links WHERE user_id_low = $1 AND user_id_high = $2 AND last_seen_at = $3`,
				p.Low, p.High, l.seen)
			if err != nil {
				return fmt.Errorf("sweep links: %w", err)
			}
			if tag.RowsAffected() == 0 {
				continue // seen again since it was read: not expired any more
			}
			deleted += tag.RowsAffected()
			// The link is gone, as if a review had cleared it: the ring may fall apart (the
			// review path's walk), and its case follows; the summaries are recounted below.
			current, err := ringsOf(ctx, tx, []string{p.Low, p.High})
			if err != nil {
				return err
			}
			ring, ok := current[p.Low]
			if !ok || current[p.High].Key != ring.Key {
				continue
			}
			parted, partKey, restKey, err := walkSplit(ctx, tx, ring, p)
			if err != nil {
				return err
			}
			touched[ring.Key] = !parted
			if parted {
				touched[partKey], touched[restKey] = true, true
				if err := splitCase(ctx, tx, ring.Key, partKey, restKey); err != nil {
					return err
				}
			}
		}
		keys := make([]string, 0, len(touched))
		for k, ok := range touched {
			if ok && k != "" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		if err := refreshRingSummaries(ctx, tx, keys); err != nil {
			return err
		}
		_, err = s.forgetReviewSubjects(ctx, tx, users)
		return err
	})
	return deleted, next, done, err
}

// linkExpired reports whether a link last seen at seen has outlived the retention of every region
// that found it (a link stored before regions has none: it follows the default region's).
func linkExpired(seen time.Time, regions []string, cutoffs map[string]time.Time) bool {
	if len(regions) == 0 {
		regions = []string{duplicate.DefaultRegion}
	}
	for _, r := range regions {
		c, ok := cutoffs[r]
		if !ok || !seen.Before(c) {
			return false
		}
	}
	return true
}

// heldUsers returns which of users are on legal hold (see LegalHold), in a few statements for the
// whole batch.
func heldUsers(ctx context.Context, q querier, users []string) (map[string]bool, error) {
	users = slices.Clone(users)
	slices.Sort(users)
	users = slices.Compact(users)
	held := map[string]bool{}
	if len(users) == 0 {
		return held, nil
	}
	rows, err := q.Query(ctx, `
SELECT DISTINCT x.u FROM unnest($1::text[]) AS x(u)
CROSS JOIN LATERAL (
    SELECT DISTINCT ON (user_id_low, user_id_high) decision FROM link_reviews
    WHERE user_id_low = x.u OR user_id_high = x.u
    ORDER BY user_id_low, user_id_high, reviewed_at DESC, review_id DESC) r
WHERE r.decision = 'confirmed_fraud'`, users)
	if err != nil {
		return nil, fmt.Errorf("read confirmed_fraud reviews: %w", err)
	}
	confirmed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read confirmed_fraud reviews: %w", err)
	}
	for _, u := range confirmed {
		held[u] = true
	}
	// Open alerts: of the users' rings (every member's), or their own when in no ring.
	rows, err = q.Query(ctx, `
WITH x AS (SELECT u, m.ring_key FROM unnest($1::text[]) AS u LEFT JOIN ring_members m ON m.user_id = u),
open_rings AS (
    -- the ring's summary counts its members' open alerts: no look at a face farm's every member
    SELECT r.ring_key FROM rings r
    WHERE r.ring_key IN (SELECT ring_key FROM x WHERE ring_key IS NOT NULL) AND r.open_alerts > 0
)
SELECT x.u FROM x JOIN open_rings o ON o.ring_key = x.ring_key
UNION
SELECT x.u FROM x JOIN alerts a ON a.user_id = x.u
WHERE x.ring_key IS NULL AND `+alertOpenSQL, users)
	if err != nil {
		return nil, fmt.Errorf("read open alerts: %w", err)
	}
	alerted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read open alerts: %w", err)
	}
	for _, u := range alerted {
		held[u] = true
	}
	return held, nil
}

// forgetReviewSubjects pseudonymises, in the reviews, those of users of whom nothing else is left
// (no check, no link, no ring, no started verification): the decision and note stay as evidence,
// the person's id becomes "erased:" and its keyed hash, as an erasure leaves it. Without the
// tombstones' key (DOPPEL_PSEUDONYM_KEY) it does nothing. It returns how many reviews changed.
func (s *Store) forgetReviewSubjects(ctx context.Context, tx pgx.Tx, users []string) (int64, error) {
	if s.tomb == nil || len(users) == 0 {
		return 0, nil
	}
	rows, err := tx.Query(ctx, `
SELECT u FROM (
    -- First whether they have a review at all: most swept people have none, and the rest is not
    -- asked of them (OFFSET 0 keeps the planner from reordering the tests).
    SELECT DISTINCT u FROM unnest($1::text[]) AS u
    WHERE u <> '' AND (EXISTS (SELECT 1 FROM link_reviews WHERE user_id_low = u) OR EXISTS (SELECT 1 FROM link_reviews WHERE user_id_high = u))
    OFFSET 0) reviewed
WHERE NOT EXISTS (SELECT 1 FROM idv_checks WHERE user_id = u)
  AND NOT EXISTS (SELECT 1 FROM duplicate_links WHERE user_id_low = u)
  AND NOT EXISTS (SELECT 1 FROM duplicate_links WHERE user_id_high = u)
  AND NOT EXISTS (SELECT 1 FROM ring_members WHERE user_id = u)
  AND NOT EXISTS (SELECT 1 FROM started_verifications WHERE user_id = u)`,
		pgx.QueryExecModeExec, users)
	if err != nil {
		return 0, fmt.Errorf("people the sweep left nothing of: %w", err)
	}
	gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("people the sweep left nothing of: %w", err)
	}
	var n int64
	for _, u := range gone {
		p, err := s.Pseudonym(u)
		if err != nil {
			return n, err
		}
		if err := setErasureGate(ctx, tx, u, p); err != nil {
			return n, err
		}
		tag, err := tx.Exec(ctx, pseudonymizeReviewsSQL, u, p)
		if err != nil {
			return n, fmt.Errorf("pseudonymise the reviews of a swept person: %w", err)
		}
		n += tag.RowsAffected()
	}
	if len(gone) > 0 {
		// Close the gate: nothing else in this transaction may change a review.
		if _, err := tx.Exec(ctx, `SELECT set_config('doppel.erasure', '', true), set_config('doppel.erasure_subject', '', true)`); err != nil {
			return n, fmt.Errorf("close the erasure gate: %w", err)
		}
	}
	return n, nil
}
