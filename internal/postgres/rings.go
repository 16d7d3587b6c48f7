package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// MaxRingLinks bounds the links a ring look-up returns.
const MaxRingLinks = 5000

// Ring returns the fraud ring of userID with its links, from the ring index: its true size, and its
// members (the first duplicate.MaxRingMembers by userId) and the links between them, or in a ring
// larger than duplicate.MaxRingPageMembers the links of userID. An unknown user is a
// duplicate.ENOTFOUND error; a known user in no ring is a ring of one.
func (s *Store) Ring(ctx context.Context, userID string) (duplicate.Ring, error) {
	var ring duplicate.Ring
	err := s.readKnownUser(ctx, userID, func(tx pgx.Tx) error {
		var err error
		ring, err = ringOf(ctx, tx, userID, pageLinks, userID)
		return err
	})
	return ring, err
}

// ringLinks says which links a ring read returns.
type ringLinks int

const (
	// noLinks: the members only.
	noLinks ringLinks = iota
	// allLinks: every link between the listed members (a decision about the whole ring).
	allLinks
	// pageLinks: every link of a ring of at most duplicate.MaxRingPageMembers, the focus account's
	// neighbourhood in a larger one.
	pageLinks
)

// ringOf reads userID's ring from the ring index: two index look-ups and the member list, whatever
// the ring's size, then the links links asks for (focus names the account of a neighbourhood).
func ringOf(ctx context.Context, q querier, userID string, links ringLinks, focus string) (duplicate.Ring, error) {
	current, err := ringsOf(ctx, q, []string{userID})
	if err != nil {
		return duplicate.Ring{}, err
	}
	st, inRing := current[userID]
	if !inRing {
		st = duplicate.Alone(userID)
	}
	ring := st.Ring()
	ring.Members = []string{userID}
	if inRing {
		rows, err := q.Query(ctx, `SELECT user_id FROM ring_members WHERE ring_key = $1 ORDER BY user_id LIMIT $2`,
			st.Key, duplicate.MaxRingMembers)
		if err != nil {
			return duplicate.Ring{}, fmt.Errorf("select ring members: %w", err)
		}
		if ring.Members, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return duplicate.Ring{}, fmt.Errorf("select ring members: %w", err)
		}
		ring.Truncated = ring.Size > len(ring.Members)
		var first, last *time.Time
		err = q.QueryRow(ctx, `SELECT link_count, first_seen_at, last_seen_at, open_alerts FROM rings WHERE ring_key = $1`,
			st.Key).Scan(&ring.LinkCount, &first, &last, &ring.OpenAlerts)
		if err != nil {
			return duplicate.Ring{}, fmt.Errorf("select ring summary: %w", err)
		}
		if first != nil {
			ring.FirstSeenAt = first.UTC()
		}
		if last != nil {
			ring.LastSeenAt = last.UTC()
		}
	}
	switch {
	case links == noLinks:
		return ring, nil
	case links == pageLinks && ring.Size > duplicate.MaxRingPageMembers:
		ring.Focus, ring.Truncated = focus, true
		rows, err := q.Query(ctx, neighbourhoodSQL, focus, st.Key, duplicate.MaxNeighbourLinks)
		if ring.Links, err = readLinks(rows, err); err != nil {
			return duplicate.Ring{}, fmt.Errorf("select the links of %s in its ring: %w", focus, err)
		}
		return ring, nil
	}
	if ring.Links, err = readLinks(q.Query(ctx, linksAmongSQL, pgx.QueryExecModeExec, ring.Members, MaxRingLinks+1)); err != nil {
		return duplicate.Ring{}, fmt.Errorf("select ring links: %w", err)
	}
	if len(ring.Links) > MaxRingLinks {
		ring.Links = ring.Links[:MaxRingLinks]
		ring.Truncated = true
	}
	return ring, nil
}

const (
	ringLinkColumns = `l.user_id_low, l.user_id_high, l.first_seen_at, l.last_seen_at, l.seen_count, l.first_signature_id,
    l.last_signature_id, l.regions, r.review_id, r.decision, r.note, r.reviewed_by, r.reviewed_at`
	latestReviewSQL = `
    SELECT review_id, decision, note, reviewed_by, reviewed_at FROM link_reviews
    WHERE user_id_low = l.user_id_low AND user_id_high = l.user_id_high
    ORDER BY reviewed_at DESC, review_id DESC LIMIT 1`
)

// linksAmongSQL returns the links between accounts $1, at most $2, with each one's latest review.
// It runs planned for its own array (QueryExecModeExec): "= ANY" over a parameter in a cached
// generic plan searches the array linearly for every row, over the array itself it hashes.
const linksAmongSQL = `
SELECT ` + ringLinkColumns + `
FROM duplicate_links l
LEFT JOIN LATERAL (` + latestReviewSQL + `) r ON true
WHERE l.user_id_low = ANY ($1) AND l.user_id_high = ANY ($1)
ORDER BY l.user_id_low, l.user_id_high
LIMIT $2`

// neighbourhoodSQL returns the links of account $1 to other members of its ring $2, most recently
// seen first, at most $3: the account's links as low (primary key) and as high
// (duplicate_links_high_idx), each checked against the ring by primary key. Its cost is the
// account's own links, not the ring's: the first member of a face farm of 5,000 has 5,000 of them
// (about 10 ms), a ring of 5,000 has hundreds of thousands.
const neighbourhoodSQL = `
SELECT ` + ringLinkColumns + `
FROM (
    SELECT x.* FROM duplicate_links x
    WHERE x.user_id_low = $1
      AND EXISTS (SELECT 1 FROM ring_members m WHERE m.user_id = x.user_id_high AND m.ring_key = $2)
    UNION ALL
    SELECT x.* FROM duplicate_links x
    WHERE x.user_id_high = $1
      AND EXISTS (SELECT 1 FROM ring_members m WHERE m.user_id = x.user_id_low AND m.ring_key = $2)
    ORDER BY last_seen_at DESC, user_id_low, user_id_high
    LIMIT $3
) l
LEFT JOIN LATERAL (` + latestReviewSQL + `) r ON true
ORDER BY l.last_seen_at DESC, l.user_id_low, l.user_id_high`

// readLinks reads ringLinkColumns' rows.
func readLinks(rows pgx.Rows, err error) ([]duplicate.Link, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.Link, error) {
		var l duplicate.Link
		var id *int64
		var decision, note, by *string
		var at *time.Time
		err := row.Scan(&l.UserIDLow, &l.UserIDHigh, &l.FirstSeenAt, &l.LastSeenAt, &l.SeenCount,
			&l.FirstSignatureID, &l.LastSignatureID, &l.Regions, &id, &decision, &note, &by, &at)
		l.FirstSeenAt, l.LastSeenAt = l.FirstSeenAt.UTC(), l.LastSeenAt.UTC()
		if id != nil {
			l.LatestReview = &duplicate.Review{ID: *id, UserID: l.UserIDLow, DuplicateUserID: l.UserIDHigh,
				Decision: duplicate.Decision(*decision), Note: *note, ReviewedBy: *by, ReviewedAt: at.UTC(), Linked: true}
		}
		return l, err
	})
}

// ringsOf returns the stored ring of each of users that is in one, keyed by userId.
func ringsOf(ctx context.Context, q querier, users []string) (map[string]duplicate.RingState, error) {
	if len(users) == 0 {
		return map[string]duplicate.RingState{}, nil
	}
	// Planned for its own array (QueryExecModeExec): the API's ring look-ups run it on the main
	// pool, where a generic plan made while the ring index was small would scan it whole.
	rows, err := q.Query(ctx, ringsOfSQL, pgx.QueryExecModeExec, users)
	return readRings(rows, err, users)
}

const ringsOfSQL = `
SELECT m.user_id, r.ring_key, r.smallest_user_id, r.size
FROM ring_members m JOIN rings r ON r.ring_key = m.ring_key
WHERE m.user_id = ANY ($1::text[])`

// readRings reads ringsOfSQL's answer.
func readRings(rows pgx.Rows, err error, users []string) (map[string]duplicate.RingState, error) {
	if err != nil {
		return nil, fmt.Errorf("read rings of %d users: %w", len(users), err)
	}
	out := map[string]duplicate.RingState{}
	var u string
	var st duplicate.RingState
	_, err = pgx.ForEachRow(rows, []any{&u, &st.Key, &st.Smallest, &st.Size}, func() error {
		out[u] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rings of %d users: %w", len(users), err)
	}
	return out, nil
}

// The ring index's writes, one statement per kind of change.
const (
	moveRingsSQL = `UPDATE ring_members m SET ring_key = u.to_key FROM unnest($1::text[], $2::text[]) AS u(from_key, to_key)
WHERE m.ring_key = u.from_key`
	joinRingsSQL = `INSERT INTO ring_members (user_id, ring_key) SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (user_id) DO UPDATE SET ring_key = EXCLUDED.ring_key`
	upsertRingsSQL = `INSERT INTO rings (ring_key, smallest_user_id, size) SELECT * FROM unnest($1::text[], $2::text[], $3::int[])
ON CONFLICT (ring_key) DO UPDATE SET smallest_user_id = EXCLUDED.smallest_user_id, size = EXCLUDED.size`
	retireRingsSQL = `DELETE FROM rings WHERE ring_key = ANY ($1::text[])`
)

// queueRingChanges queues the writes of changes: one statement per kind of change.
func queueRingChanges(b *pgx.Batch, changes duplicate.RingChanges) {
	if len(changes.Moved) > 0 {
		olds, news := splitMap(changes.Moved)
		b.Queue(moveRingsSQL, olds, news)
	}
	if len(changes.Joined) > 0 {
		users, keys := splitMap(changes.Joined)
		b.Queue(joinRingsSQL, users, keys)
	}
	if len(changes.Rings) > 0 {
		n := len(changes.Rings)
		keys, smallest, sizes := make([]string, n), make([]string, n), make([]int32, n)
		for i, r := range changes.Rings {
			keys[i], smallest[i], sizes[i] = r.Key, r.Smallest, int32(r.Size)
		}
		b.Queue(upsertRingsSQL, keys, smallest, sizes)
	}
	if len(changes.Moved) > 0 {
		from, to := splitMap(changes.Moved)
		b.Queue(absorbRingsSQL, from, to)
		b.Queue(mergeCasesSQL, from, to)
	}
	if len(changes.Retired) > 0 {
		b.Queue(retireRingsSQL, changes.Retired)
	}
}

// splitMap returns m's keys and values in key order.
func splitMap(m map[string]string) ([]string, []string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	values := make([]string, len(keys))
	for i, k := range keys {
		values[i] = m[k]
	}
	return keys, values
}

// latestDecision returns the pair's latest decision, "" when it was never reviewed.
func latestDecision(ctx context.Context, tx pgx.Tx, pair duplicate.PairKey) (duplicate.Decision, error) {
	reads := pairReads{probeLow: []string{pair.Low}, probeHigh: []string{pair.High}, reviewUsers: []string{pair.Low}}
	states, err := pairStates(ctx, tx, reads, []duplicate.PairKey{pair})
	if err != nil {
		return "", err
	}
	return states[pair].Latest, nil
}

// reringAfterReview keeps the ring index and its summaries true after a review of a linked pair
// changed whether the pair is cleared: clearing it may split its ring in two, un-clearing it
// (confirmed_fraud after false_positive) joins the two rings. The caller holds the ring-index lock
// and has stored the review.
func reringAfterReview(ctx context.Context, tx pgx.Tx, pair duplicate.PairKey, before, after duplicate.Decision) error {
	switch duplicate.EffectOfReview(before, after) {
	case duplicate.ReviewJoinsRings:
		current, err := ringsOf(ctx, tx, []string{pair.Low, pair.High})
		if err != nil {
			return err
		}
		if err := writeRingChanges(ctx, tx, duplicate.JoinPair(current, pair)); err != nil {
			return err
		}
		if err := countNewest(ctx, tx, []string{pair.Low, pair.High}); err != nil {
			return err
		}
		return countPairLink(ctx, tx, pair, 1)
	case duplicate.ReviewMaySplitRing:
		return splitRing(ctx, tx, pair)
	}
	return nil
}

func writeRingChanges(ctx context.Context, tx pgx.Tx, changes duplicate.RingChanges) error {
	b := &pgx.Batch{}
	queueRingChanges(b, changes)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write rings: %w", err)
	}
	return nil
}

// liveNeighboursSQL returns the accounts of ring $2 linked to any of $1 by a link no review cleared.
const liveNeighboursSQL = `
SELECT DISTINCT n.other
FROM unnest($1::text[]) AS f(u)
CROSS JOIN LATERAL (
    SELECT user_id_high AS other FROM duplicate_links WHERE user_id_low = f.u
    UNION ALL
    SELECT user_id_low FROM duplicate_links WHERE user_id_high = f.u
) n
JOIN ring_members m ON m.user_id = n.other AND m.ring_key = $2
WHERE NOT doppel_review_clears((SELECT decision FROM link_reviews
                WHERE user_id_low = least(f.u, n.other) AND user_id_high = greatest(f.u, n.other)
                ORDER BY reviewed_at DESC, review_id DESC LIMIT 1))`

// splitRing handles a pair just cleared by a review: the pair's link leaves its ring's summary,
// then walkSplit finds whether the ring still holds together; the summaries and the case follow.
func splitRing(ctx context.Context, tx pgx.Tx, pair duplicate.PairKey) error {
	current, err := ringsOf(ctx, tx, []string{pair.Low, pair.High})
	if err != nil {
		return err
	}
	ring, ok := current[pair.Low]
	if !ok || current[pair.High].Key != ring.Key {
		return nil // not in one ring: nothing to split
	}
	old, err := uncountClearedLink(ctx, tx, pair, ring.Key)
	if err != nil {
		return err
	}
	split, partKey, restKey, err := walkSplit(ctx, tx, ring, pair)
	if err != nil {
		return err
	}
	if !split {
		// Still one ring: its summary lost the link; a recount if it held an extreme sighting.
		if old.recount {
			return refreshRingSummaries(ctx, tx, []string{ring.Key})
		}
		return nil
	}
	if err := summarizeSplit(ctx, tx, old, partKey, restKey); err != nil {
		return err
	}
	return splitCase(ctx, tx, ring.Key, partKey, restKey)
}

// walkSplit searches ring from both accounts of pair at once, over links no review cleared, one
// frontier step at a time, always growing the smaller side. If the sides meet, the ring holds
// together (the usual case in a dense ring: one step) and it reports false. If one side runs out,
// that side is a ring of its own, found at the cost of the smaller part: it writes the split and
// returns the keys of the part and of the rest ("" for a side that is no ring). The summaries are
// the caller's to keep.
func walkSplit(ctx context.Context, tx pgx.Tx, ring duplicate.RingState, pair duplicate.PairKey) (bool, string, string, error) {
	type side struct {
		seen     map[string]bool
		frontier []string
	}
	sides := [2]*side{
		{seen: map[string]bool{pair.Low: true}, frontier: []string{pair.Low}},
		{seen: map[string]bool{pair.High: true}, frontier: []string{pair.High}},
	}
	for {
		i := 0
		if len(sides[1].seen) < len(sides[0].seen) {
			i = 1
		}
		grow, other := sides[i], sides[1-i]
		rows, err := tx.Query(ctx, liveNeighboursSQL, pgx.QueryExecModeExec, grow.frontier, ring.Key)
		if err != nil {
			return false, "", "", fmt.Errorf("walk ring: %w", err)
		}
		next, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return false, "", "", fmt.Errorf("walk ring: %w", err)
		}
		grow.frontier = grow.frontier[:0]
		for _, u := range next {
			if other.seen[u] {
				return false, "", "", nil
			}
			if !grow.seen[u] {
				grow.seen[u] = true
				grow.frontier = append(grow.frontier, u)
			}
		}
		if len(grow.frontier) == 0 {
			part := make([]string, 0, len(grow.seen))
			for u := range grow.seen {
				part = append(part, u)
			}
			partKey, restKey, err := writeSplit(ctx, tx, ring, part)
			return true, partKey, restKey, err
		}
	}
}

// writeSplit moves part (a whole component) out of ring. The part holding the ring's key keeps it;
// the other takes its smallest member as key. A part of one account leaves the index. It returns
// the keys of the part and of the rest, "" for a side that is no ring.
func writeSplit(ctx context.Context, tx pgx.Tx, ring duplicate.RingState, part []string) (partKey, restKey string, err error) {
	slices.Sort(part)
	var restSmallest string
	err = tx.QueryRow(ctx, `SELECT min(user_id) FROM ring_members WHERE ring_key = $1 AND user_id <> ALL ($2::text[])`,
		ring.Key, part).Scan(&restSmallest)
	if err != nil {
		return "", "", fmt.Errorf("split ring: %w", err)
	}
	restSize := ring.Size - len(part)
	moved, movedKey := part, part[0]
	kept := duplicate.RingState{Key: ring.Key, Smallest: restSmallest, Size: restSize}
	newRing := duplicate.RingState{Key: part[0], Smallest: part[0], Size: len(part)}
	if slices.Contains(part, ring.Key) {
		// The part keeps the key: move the rest instead.
		kept = duplicate.RingState{Key: ring.Key, Smallest: part[0], Size: len(part)}
		newRing = duplicate.RingState{Key: restSmallest, Smallest: restSmallest, Size: restSize}
		moved, movedKey = nil, restSmallest
	}
	partKey, restKey = newRing.Key, kept.Key
	if moved == nil {
		partKey, restKey = kept.Key, newRing.Key
	}
	if len(part) < 2 {
		partKey = ""
	}
	if restSize < 2 {
		restKey = ""
	}
	b := &pgx.Batch{}
	if moved != nil {
		b.Queue(`UPDATE ring_members SET ring_key = $2 WHERE user_id = ANY ($1::text[])`, moved, movedKey)
	} else {
		b.Queue(`UPDATE ring_members SET ring_key = $3 WHERE ring_key = $1 AND user_id <> ALL ($2::text[])`,
			ring.Key, part, movedKey)
	}
	for _, r := range []duplicate.RingState{kept, newRing} {
		if r.Size > 1 {
			b.Queue(`INSERT INTO rings (ring_key, smallest_user_id, size) VALUES ($1, $2, $3)
ON CONFLICT (ring_key) DO UPDATE SET smallest_user_id = EXCLUDED.smallest_user_id, size = EXCLUDED.size`,
				r.Key, r.Smallest, r.Size)
			continue
		}
		b.Queue(`DELETE FROM rings WHERE ring_key = $1`, r.Key)
		b.Queue(`DELETE FROM ring_members WHERE ring_key = $1`, r.Key)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return "", "", fmt.Errorf("split ring: %w", err)
	}
	return partKey, restKey, nil
}

// readKnownUser runs fn in one read-only snapshot once userID is known to have a check: an unknown
// user is a duplicate.ENOTFOUND error.
func (s *Store) readKnownUser(ctx context.Context, userID string, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		known, err := userKnown(ctx, tx, userID)
		if err != nil {
			return err
		}
		if !known {
			return unknownUser(userID)
		}
		return fn(tx)
	})
}
