package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// ErrNoPseudonymKey is returned by the erasure methods of a store given no tombstone key: without
// DOPPEL_PSEUDONYM_KEY a tombstone could not be recognised by another instance or after a restart.
var ErrNoPseudonymKey = errors.New("erasure needs DOPPEL_PSEUDONYM_KEY (the key of the tombstones' keyed hash)")

// Pseudonym returns what replaces userID in what an erasure keeps: "erased:" and its keyed hash.
func (s *Store) Pseudonym(userID string) (string, error) {
	if s.tomb == nil {
		return "", ErrNoPseudonymKey
	}
	return "erased:" + s.tomb.Hash(userID), nil
}

// LegalHold tells whether userID is on legal hold and why: a pair of theirs whose latest review is
// confirmed_fraud, or an open alert raised in their ring (or for them, when in no ring).
func (s *Store) LegalHold(ctx context.Context, userID string) (duplicate.LegalHold, error) {
	var hold duplicate.LegalHold
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		hold, err = legalHold(ctx, tx, userID)
		return err
	})
	return hold, err
}

// legalHoldReasonsLimit bounds the reasons a hold lists.
const legalHoldReasonsLimit = 20

func legalHold(ctx context.Context, q querier, userID string) (duplicate.LegalHold, error) {
	var hold duplicate.LegalHold
	members := []string{userID}
	current, err := ringsOf(ctx, q, []string{userID})
	if err != nil {
		return hold, err
	}
	if st, ok := current[userID]; ok {
		hold.RingID = duplicate.RingID(st.Smallest)
		rows, err := q.Query(ctx, `SELECT user_id FROM ring_members WHERE ring_key = $1`, st.Key)
		if err != nil {
			return hold, fmt.Errorf("read ring members: %w", err)
		}
		if members, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return hold, fmt.Errorf("read ring members: %w", err)
		}
	}
	rows, err := q.Query(ctx, `
SELECT CASE WHEN r.user_id_low = $1 THEN r.user_id_high ELSE r.user_id_low END
FROM (SELECT DISTINCT ON (user_id_low, user_id_high) user_id_low, user_id_high, decision
      FROM link_reviews WHERE user_id_low = $1 OR user_id_high = $1
      ORDER BY user_id_low, user_id_high, reviewed_at DESC, review_id DESC) r
WHERE r.decision = 'confirmed_fraud'
ORDER BY 1 LIMIT $2`, userID, legalHoldReasonsLimit)
	if err != nil {
		return hold, fmt.Errorf("read confirmed_fraud reviews: %w", err)
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return hold, fmt.Errorf("read confirmed_fraud reviews: %w", err)
	}
	for _, o := range others {
		hold.Reasons = append(hold.Reasons, duplicate.HoldReason{Kind: duplicate.HoldConfirmedFraud, DuplicateUserID: o})
	}
	rows, err = q.Query(ctx, `
SELECT a.alert_id::text FROM alerts a
WHERE a.user_id = ANY ($1::text[]) AND `+alertOpenSQL+`
ORDER BY a.detected_at, a.alert_id LIMIT $2`, members, legalHoldReasonsLimit)
	if err != nil {
		return hold, fmt.Errorf("read open alerts of the ring: %w", err)
	}
	alerts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return hold, fmt.Errorf("read open alerts of the ring: %w", err)
	}
	for _, a := range alerts {
		hold.Reasons = append(hold.Reasons, duplicate.HoldReason{Kind: duplicate.HoldOpenAlert, AlertID: a})
	}
	hold.Held = len(hold.Reasons) > 0
	return hold, nil
}

// RequestErasure records an erasure of req.UserID to be carried out (the job), unless one is under
// way or done with nothing of the person stored since: then it returns that one, created false.
// A person on legal hold is refused with *duplicate.ErrLegalHold unless req.Override is
// duplicate.OverrideLegalHold; the override is recorded with the reason.
func (s *Store) RequestErasure(ctx context.Context, req duplicate.ErasureRequest) (duplicate.Erasure, bool, error) {
	p, err := s.Pseudonym(req.UserID)
	if err != nil {
		return duplicate.Erasure{}, false, err
	}
	var out duplicate.Erasure
	created := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Two requests for one person at once: the second waits and finds the first.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, subjectLockClass, req.UserID); err != nil {
			return fmt.Errorf("lock person: %w", err)
		}
		var id string
		var status string
		err := tx.QueryRow(ctx, `SELECT erasure_id::text, status FROM erasures WHERE user_pseudonym = $1
ORDER BY requested_at DESC LIMIT 1`, p).Scan(&id, &status)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read erasures: %w", err)
		}
		if err == nil {
			again := status != duplicate.ErasureStatusDone
			if !again {
				// Done: the same answer unless the person came back (a verification since).
				var back bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM idv_checks WHERE user_id = $1)
    OR EXISTS (SELECT 1 FROM started_verifications WHERE user_id = $1)`, req.UserID).Scan(&back); err != nil {
					return fmt.Errorf("read checks: %w", err)
				}
				again = !back
			}
			if again {
				out, err = readErasure(ctx, tx, id)
				return err
			}
		}
		hold, err := legalHold(ctx, tx, req.UserID)
		if err != nil {
			return err
		}
		var override *string
		if hold.Held {
			if req.Override != duplicate.OverrideLegalHold {
				return &duplicate.ErrLegalHold{Hold: hold}
			}
			why := holdSummary(hold)
			override = &why
		}
		id = uuid.NewString()
		_, err = tx.Exec(ctx, `INSERT INTO erasures (erasure_id, user_id, user_pseudonym, reason, region, requested_by,
    requested_at, legal_hold_override) VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, now(), $7)`,
			id, req.UserID, p, pseudonymise(req.Reason, req.UserID, p), req.Region, req.RequestedBy, override)
		if err != nil {
			return fmt.Errorf("record erasure: %w", err)
		}
		created = true
		out, err = readErasure(ctx, tx, id)
		return err
	})
	return out, created, err
}

// holdSummary is the text the erasure record keeps of a hold it overrode (no userId in it).
func holdSummary(h duplicate.LegalHold) string {
	fraud, alerts := 0, 0
	for _, r := range h.Reasons {
		if r.Kind == duplicate.HoldConfirmedFraud {
			fraud++
		} else {
			alerts++
		}
	}
	return fmt.Sprintf("ring %s: %d confirmed_fraud pairs, %d open alerts", h.RingID, fraud, alerts)
}

// pseudonymise replaces every occurrence of userID in text by p.
func pseudonymise(text, userID, p string) string {
	if userID == "" {
		return text
	}
	return strings.ReplaceAll(text, userID, p)
}

// Erasure returns the erasure erasureID, or an ENOTFOUND *duplicate.Error.
func (s *Store) Erasure(ctx context.Context, erasureID string) (duplicate.Erasure, error) {
	if _, err := uuid.Parse(erasureID); err != nil {
		return duplicate.Erasure{}, &duplicate.Error{Code: duplicate.ENOTFOUND, Message: "no erasure " + erasureID}
	}
	return readErasure(ctx, s.pool, erasureID)
}

func readErasure(ctx context.Context, q querier, id string) (duplicate.Erasure, error) {
	var e duplicate.Erasure
	var userID, region, override, lastError *string
	var removed map[string]map[string]int64
	var sigs, regions []string
	err := q.QueryRow(ctx, `SELECT erasure_id::text, user_id, user_pseudonym, reason, region, requested_by, requested_at,
    legal_hold_override, status, removed_at, done_at, removed, vendor_signature_ids, vendor_signature_regions,
    vendor_cleared, last_error
FROM erasures WHERE erasure_id = $1`, id).Scan(&e.ID, &userID, &e.Pseudonym, &e.Reason, &region, &e.RequestedBy,
		&e.RequestedAt, &override, &e.Status, &e.RemovedAt, &e.DoneAt, &removed, &sigs, &regions, &e.VendorCleared, &lastError)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, &duplicate.Error{Code: duplicate.ENOTFOUND, Message: "no erasure " + id}
	}
	if err != nil {
		return e, fmt.Errorf("read erasure %s: %w", id, err)
	}
	e.UserID, e.Region, e.LegalHoldOverride, e.LastError = deref(userID), deref(region), deref(override), deref(lastError)
	e.Removed, e.Pseudonymised = removed["removed"], removed["pseudonymised"]
	for i, sig := range sigs {
		e.VendorSignatures = append(e.VendorSignatures, duplicate.VendorSignature{SignatureID: sig, Region: regions[i]})
	}
	e.RequestedAt = e.RequestedAt.UTC()
	return e, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// UnfinishedErasures returns the ids of the erasures not done, oldest first: what a restart finishes.
func (s *Store) UnfinishedErasures(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT erasure_id::text FROM erasures WHERE status <> 'done' ORDER BY requested_at LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("read unfinished erasures: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ErasureCounts counts what erasing userID would remove, for a dry run.
func (s *Store) ErasureCounts(ctx context.Context, userID string) (map[string]int64, error) {
	counts := map[string]int64{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for table, sql := range map[string]string{
			"idv_checks":            `SELECT count(*) FROM idv_checks WHERE user_id = $1`,
			"duplicate_links":       `SELECT (SELECT count(*) FROM duplicate_links WHERE user_id_low = $1) + (SELECT count(*) FROM duplicate_links WHERE user_id_high = $1)`,
			"ring_members":          `SELECT count(*) FROM ring_members WHERE user_id = $1`,
			"check_overflow":        `SELECT count(*) FROM check_overflow o JOIN idv_checks c ON c.signature_id = o.signature_id WHERE c.user_id = $1`,
			"started_verifications": `SELECT count(*) FROM started_verifications WHERE user_id = $1`,
			"alerts":                `SELECT count(*) FROM alerts WHERE user_id = $1`,
		} {
			var n int64
			if err := tx.QueryRow(ctx, sql, userID).Scan(&n); err != nil {
				return fmt.Errorf("count %s: %w", table, err)
			}
			counts[table] = n
		}
		return nil
	})
	return counts, err
}

// ErasureHook, when set on a Store, is called inside the erasure's transaction after each step
// (by name); an error rolls the whole transaction back. For tests that stop an erasure half-way.
type ErasureHook func(step string) error

// RemoveSubject carries out erasure erasureID's removal, in one transaction: the person's checks,
// links in both directions, ring membership (the rings of the others recomputed by the ring index's
// own split), check overflow, started verifications and alerts are deleted; their id is dropped
// from the others' checks, overflow and alerts; reviews keep their decision and note with the id
// replaced by the pseudonym; the tombstones are written; the job moves to removed with the counts.
// An erasure already past pending is left as it is. A crash or an error anywhere leaves nothing of
// it: the job stays pending, to be run again.
func (s *Store) RemoveSubject(ctx context.Context, erasureID string, hook ErasureHook) error {
	if s.tomb == nil {
		return ErrNoPseudonymKey
	}
	step := func(name string) error {
		if hook == nil {
			return nil
		}
		return hook(name)
	}
	return retryConflicts(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var userID *string
			var status, p string
			err := tx.QueryRow(ctx, `SELECT user_id, status, user_pseudonym FROM erasures WHERE erasure_id = $1 FOR UPDATE`,
				erasureID).Scan(&userID, &status, &p)
			if err != nil {
				return fmt.Errorf("read erasure %s: %w", erasureID, err)
			}
			if status != duplicate.ErasureStatusPending || userID == nil {
				return nil
			}
			r := remover{s: s, tx: tx, u: *userID, p: p, removed: map[string]int64{}, pseudonymised: map[string]int64{}}
			return r.run(ctx, erasureID, step)
		})
	})
}

// remover is one erasure's transaction.
type remover struct {
	s             *Store
	tx            pgx.Tx
	u, p          string
	removed       map[string]int64
	pseudonymised map[string]int64
}

func (r *remover) exec(ctx context.Context, counts map[string]int64, table, sql string, args ...any) error {
	tag, err := r.tx.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("erase from %s: %w", table, err)
	}
	if counts != nil {
		counts[table] += tag.RowsAffected()
	}
	return nil
}

func (r *remover) strings(ctx context.Context, sql string, args ...any) ([]string, error) {
	rows, err := r.tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (r *remover) run(ctx context.Context, erasureID string, step func(string) error) error {
	tx, u, p := r.tx, r.u, r.p
	// The person's lock (every store transaction holds it shared for its checks' users), then the
	// ring index's: no check of theirs is being stored, and no batch is linking, until we commit.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, subjectLockClass, u); err != nil {
		return fmt.Errorf("lock person: %w", err)
	}
	if err := lockRingIndex(ctx, tx); err != nil {
		return err
	}
	// Sequential scans priced out, as on the hot path's pool (KeyLookUpPlans): every statement here
	// finds rows by key, and a plan made while a table had no statistics yet (a new ring index)
	// joined the ring's members by scanning them once per member, seconds for a face farm.
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		return fmt.Errorf("price out sequential scans: %w", err)
	}
	if err := setErasureGate(ctx, tx, u, p); err != nil {
		return err
	}

	// What the person has, read before anything changes.
	rows, err := tx.Query(ctx, `SELECT signature_id, region FROM idv_checks WHERE user_id = $1
UNION SELECT signature_id, coalesce(region, '') FROM started_verifications WHERE user_id = $1 ORDER BY 1`, u)
	if err != nil {
		return fmt.Errorf("read the person's verifications: %w", err)
	}
	var sigs, sigRegions []string
	var sig, region string
	if _, err := pgx.ForEachRow(rows, []any{&sig, &region}, func() error {
		if n := len(sigs); n > 0 && sigs[n-1] == sig {
			return nil
		}
		sigs, sigRegions = append(sigs, sig), append(sigRegions, region)
		return nil
	}); err != nil {
		return fmt.Errorf("read the person's verifications: %w", err)
	}
	linked, err := r.strings(ctx, `SELECT user_id_high FROM duplicate_links WHERE user_id_low = $1
UNION SELECT user_id_low FROM duplicate_links WHERE user_id_high = $1`, u)
	if err != nil {
		return fmt.Errorf("read the person's links: %w", err)
	}
	current, err := ringsOf(ctx, tx, []string{u})
	if err != nil {
		return err
	}
	ring, inRing := current[u]
	var ringMembers []string
	var old ringSummary // the ring's summary and the person's share of it, read before anything changes
	var ownLinks int
	if inRing {
		if ringMembers, err = r.strings(ctx, `SELECT user_id FROM ring_members WHERE ring_key = $1 AND user_id <> $2`, ring.Key, u); err != nil {
			return fmt.Errorf("read the ring: %w", err)
		}
		// The person's live links in the ring, and whether one of them holds the ring's first or
		// last sighting (then only a recount knows the new one).
		err := tx.QueryRow(ctx, `
SELECT r.link_count, r.open_alerts, r.first_seen_at, r.last_seen_at, r.newest_user_id, r.newest_at, p.n,
    coalesce(p.first <= r.first_seen_at OR p.last >= r.last_seen_at, false)
FROM rings r, (
    SELECT count(*)::integer AS n, min(l.first_seen_at) AS first, max(l.last_seen_at) AS last
    FROM (SELECT * FROM duplicate_links WHERE user_id_low = $2 UNION ALL SELECT * FROM duplicate_links WHERE user_id_high = $2) l
    JOIN ring_members m ON m.user_id = CASE WHEN l.user_id_low = $2 THEN l.user_id_high ELSE l.user_id_low END AND m.ring_key = $1
    WHERE NOT doppel_review_clears((SELECT v.decision FROM link_reviews v
                                    WHERE v.user_id_low = l.user_id_low AND v.user_id_high = l.user_id_high
                                    ORDER BY v.reviewed_at DESC, v.review_id DESC LIMIT 1))
) p
WHERE r.ring_key = $1`, ring.Key, u).Scan(&old.linkCount, &old.openAlerts, &old.firstSeenAt, &old.lastSeenAt,
			&old.newestUserID, &old.newestAt, &ownLinks, &old.recount)
		if err != nil {
			return fmt.Errorf("read the ring's summary: %w", err)
		}
	}
	overflowed, err := r.strings(ctx, `SELECT DISTINCT x FROM check_overflow o CROSS JOIN LATERAL unnest(o.user_ids) x
WHERE o.signature_id = ANY ($1::text[]) AND x <> $2`, sigs, u)
	if err != nil {
		return fmt.Errorf("read the person's overflow: %w", err)
	}
	// The others whose checks may name the person: those linked to them and their ring.
	others := append(slices.Clone(linked), ringMembers...)
	slices.Sort(others)
	others = slices.Compact(others)
	if err := step("read"); err != nil {
		return err
	}

	// Their own rows. Alerts first: they refer to the checks.
	// An alert's user_id is its check's: the person's alerts are those of their checks.
	if err := r.exec(ctx, r.removed, "alerts", `DELETE FROM alerts WHERE user_id = $1 OR signature_id = ANY ($2::text[])`, u, sigs); err != nil {
		return err
	}
	if err := r.exec(ctx, r.removed, "check_overflow", `DELETE FROM check_overflow WHERE signature_id = ANY ($1::text[])`, sigs); err != nil {
		return err
	}
	if err := r.exec(ctx, r.removed, "idv_checks", `DELETE FROM idv_checks WHERE signature_id = ANY ($1::text[])`, sigs); err != nil {
		return err
	}
	if err := r.exec(ctx, r.removed, "started_verifications",
		`DELETE FROM started_verifications WHERE user_id = $1 OR signature_id = ANY ($2::text[])`, u, sigs); err != nil {
		return err
	}
	if err := r.exec(ctx, r.removed, "duplicate_links",
		`DELETE FROM duplicate_links WHERE user_id_low = $1 OR user_id_high = $1`, u); err != nil {
		return err
	}
	if err := step("deleted"); err != nil {
		return err
	}

	// Their id in the others' rows.
	if err := r.exec(ctx, r.pseudonymised, "idv_checks", `UPDATE idv_checks SET
    similar_user_ids = array_remove(similar_user_ids, $1), matched_user_ids = array_remove(matched_user_ids, $1),
    similar_count = similar_count - (CASE WHEN $1 = ANY (similar_user_ids) THEN 1 ELSE 0 END),
    matched_count = matched_count - (CASE WHEN $1 = ANY (matched_user_ids) THEN 1 ELSE 0 END)
WHERE user_id = ANY ($2::text[]) AND ($1 = ANY (similar_user_ids) OR $1 = ANY (matched_user_ids))`, u, others); err != nil {
		return err
	}
	if err := r.exec(ctx, r.pseudonymised, "check_overflow", `UPDATE check_overflow o SET user_ids = array_remove(o.user_ids, $1)
FROM idv_checks c WHERE c.user_id = ANY ($2::text[]) AND o.signature_id = c.signature_id AND $1 = ANY (o.user_ids)`, u, others); err != nil {
		return err
	}
	// An alert whose only unreviewed new pair was with the person is no longer open.
	if err := r.exec(ctx, r.pseudonymised, "alerts", `UPDATE alerts a SET
    matched_user_ids = array_remove(a.matched_user_ids, $1), new_matched_user_ids = array_remove(a.new_matched_user_ids, $1),
    matched_failed_user_ids = array_remove(a.matched_failed_user_ids, $1),
    open = a.open AND doppel_alert_open(a.user_id, array_remove(a.new_matched_user_ids, $1))
WHERE a.user_id = ANY ($2::text[])
  AND ($1 = ANY (a.matched_user_ids) OR $1 = ANY (a.new_matched_user_ids) OR $1 = ANY (a.matched_failed_user_ids))`, u, others); err != nil {
		return err
	}
	if err := r.exec(ctx, r.pseudonymised, "link_reviews", pseudonymizeReviewsSQL, u, p); err != nil {
		return err
	}
	if err := r.exec(ctx, r.pseudonymised, "console_sessions",
		`UPDATE console_sessions SET flash = replace(flash, $1, $2) WHERE strpos(flash, $1) > 0`, u, p); err != nil {
		return err
	}
	n, err := PseudonymizeAccessLog(ctx, tx, u, p)
	if err != nil {
		return err
	}
	r.pseudonymised["access_log"] += n
	if err := r.exec(ctx, r.pseudonymised, "case_events",
		`UPDATE case_events SET text = replace(text, $1, $2) WHERE strpos(text, $1) > 0`, u, p); err != nil {
		return err
	}
	if err := step("pseudonymised"); err != nil {
		return err
	}

	// The rings: the person leaves theirs by the ring index's own split (a part of one), and every
	// remaining neighbour is checked against the first by the split walk the review path uses, so a
	// ring that lost its bridge splits and a ring of two that lost one is no ring.
	// Every ring the erasure touches is recounted from scratch at the end (doppel_ring_summary):
	// sizes changed, and the person's links and alerts left them.
	touched := map[string]bool{}
	splits := 0 // the ring's own split (the person leaving) and any the neighbours' walks found
	split := func(oldKey, partKey, restKey string) error {
		splits++
		for _, k := range []string{partKey, restKey} {
			if k != "" {
				touched[k] = true
			}
		}
		return splitCase(ctx, tx, oldKey, partKey, restKey) // the ring's case follows, as after a review
	}
	if inRing {
		partKey, restKey, err := writeSplit(ctx, tx, ring, []string{u})
		if err != nil {
			return err
		}
		if err := split(ring.Key, partKey, restKey); err != nil {
			return err
		}
		r.removed["ring_members"]++
		var neighbours []string
		for _, n := range append(slices.Clone(linked), overflowed...) {
			if slices.Contains(ringMembers, n) {
				neighbours = append(neighbours, n)
			}
		}
		slices.Sort(neighbours)
		neighbours = slices.Compact(neighbours)
		if len(neighbours) > 1 {
			// Whether the rest still holds together: one walk over live links from a hub of the
			// ring, a statement per frontier step, until it has reached every neighbour the person
			// had. In a face farm the earliest-verified member is named by nearly every later one,
			// so one step reaches them all (a walk per neighbour took 4 s for a farm of 5,000).
			// A neighbour the walk cannot reach is parted from the hub: the review path's split.
			root, err := earliestVerified(ctx, tx, neighbours)
			if err != nil {
				return err
			}
			current, err := ringsOf(ctx, tx, []string{root})
			if err != nil {
				return err
			}
			reached, err := reachableFrom(ctx, tx, current[root].Key, root, neighbours)
			if err != nil {
				return err
			}
			for _, n := range neighbours {
				if reached[n] {
					continue
				}
				current, err := ringsOf(ctx, tx, []string{root, n})
				if err != nil {
					return err
				}
				first, ok := current[root]
				if !ok || current[n].Key != first.Key {
					continue // already apart
				}
				parted, partKey, restKey, err := walkSplit(ctx, tx, first, duplicate.PairOf(root, n))
				if err != nil {
					return err
				}
				if parted {
					if err := split(first.Key, partKey, restKey); err != nil {
						return err
					}
				}
			}
		}
	}
	if err := summarizeAfterErasure(ctx, tx, touched, old, ownLinks, splits); err != nil {
		return err
	}
	if err := step("rings"); err != nil {
		return err
	}

	// The tombstones and the job's progress, in the same transaction.
	hashes := make([]string, len(sigs))
	for i, sg := range sigs {
		hashes[i] = r.s.tomb.Hash(sg)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO erased_users (user_hash, erased_at, erasure_id) VALUES ($1, now(), $2)
ON CONFLICT (user_hash) DO UPDATE SET erased_at = EXCLUDED.erased_at, erasure_id = EXCLUDED.erasure_id`,
		r.s.tomb.Hash(u), erasureID); err != nil {
		return fmt.Errorf("write tombstone: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO erased_signatures (signature_hash, erased_at)
SELECT h, now() FROM unnest($1::text[]) h ON CONFLICT (signature_hash) DO NOTHING`, hashes); err != nil {
		return fmt.Errorf("write tombstones: %w", err)
	}
	counts := map[string]map[string]int64{"removed": r.removed, "pseudonymised": r.pseudonymised}
	if _, err := tx.Exec(ctx, `UPDATE erasures SET status = 'removed', removed_at = clock_timestamp(), removed = $2,
    vendor_signature_ids = $3, vendor_signature_regions = $4, attempts = attempts + 1, last_error = NULL
WHERE erasure_id = $1`, erasureID, counts, sigs, sigRegions); err != nil {
		return fmt.Errorf("record erasure progress: %w", err)
	}
	return step("recorded")
}

// MarkVendorCleared records that the vendor cleared signatureID's face for erasure erasureID.
func (s *Store) MarkVendorCleared(ctx context.Context, erasureID, signatureID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE erasures SET vendor_cleared = array_append(vendor_cleared, $2)
WHERE erasure_id = $1 AND NOT ($2 = ANY (vendor_cleared))`, erasureID, signatureID)
	if err != nil {
		return fmt.Errorf("record vendor clear-data: %w", err)
	}
	return nil
}

// RecordErasureError keeps why erasure erasureID could not go on (no userId in it), for GET.
func (s *Store) RecordErasureError(ctx context.Context, erasureID, message string) error {
	_, err := s.pool.Exec(ctx, `UPDATE erasures SET last_error = $2, attempts = attempts + 1 WHERE erasure_id = $1`, erasureID, message)
	return err
}

// FinishErasure marks erasure erasureID done once its subject_erased event is published: from then
// on its record keeps only the pseudonym.
func (s *Store) FinishErasure(ctx context.Context, erasureID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE erasures SET status = 'done', done_at = clock_timestamp(), user_id = NULL, last_error = NULL
WHERE erasure_id = $1 AND status = 'removed'`, erasureID)
	if err != nil {
		return fmt.Errorf("finish erasure: %w", err)
	}
	return nil
}

// RemoveSubjectStep is RemoveSubject with the hook as a plain function (erasure.Store).
func (s *Store) RemoveSubjectStep(ctx context.Context, erasureID string, hook func(step string) error) error {
	return s.RemoveSubject(ctx, erasureID, hook)
}

// earliestVerified returns the one of users whose first check is the oldest (the first of them
// when none has a check): in a ring, the member the most others name.
func earliestVerified(ctx context.Context, tx pgx.Tx, users []string) (string, error) {
	var first string
	// One index look-up per user: a plan over checked_at's index would scan the whole table.
	err := tx.QueryRow(ctx, `
SELECT x.u FROM unnest($1::text[]) WITH ORDINALITY AS x(u, i)
LEFT JOIN LATERAL (SELECT min(checked_at) AS at FROM idv_checks WHERE user_id = x.u) c ON true
ORDER BY c.at NULLS LAST, x.i LIMIT 1`, users).Scan(&first)
	if err != nil {
		return "", fmt.Errorf("the ring's earliest member: %w", err)
	}
	return first, nil
}

// reachableFrom walks ring ringKey from root over links no review cleared, one statement per
// frontier step, and returns the accounts it reached; it stops once it has reached every one of
// targets (then the rest of the ring is not walked).
func reachableFrom(ctx context.Context, tx pgx.Tx, ringKey, root string, targets []string) (map[string]bool, error) {
	seen := map[string]bool{root: true}
	left := map[string]bool{}
	for _, t := range targets {
		if t != root {
			left[t] = true
		}
	}
	for frontier := []string{root}; len(frontier) > 0 && len(left) > 0; {
		rows, err := tx.Query(ctx, liveNeighboursSQL, pgx.QueryExecModeExec, frontier, ringKey)
		if err != nil {
			return nil, fmt.Errorf("walk ring: %w", err)
		}
		next, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("walk ring: %w", err)
		}
		frontier = frontier[:0]
		for _, u := range next {
			if !seen[u] {
				seen[u] = true
				delete(left, u)
				frontier = append(frontier, u)
			}
		}
	}
	return seen, nil
}

// pseudonymizeReviewsSQL replaces userId $1 by its pseudonym $2 in the reviews that name it, in
// the pair (kept in canonical order) and in the note: the one change link_reviews' append-only
// trigger lets a transaction make once it has set doppel.erasure and doppel.erasure_subject
// (setErasureGate). An erasure and the retention sweep both use it.
const pseudonymizeReviewsSQL = `UPDATE link_reviews SET
    user_id_low = CASE WHEN user_id_low = $1 THEN least(user_id_high, $2 COLLATE "C")
                       WHEN user_id_high = $1 THEN least(user_id_low, $2 COLLATE "C") ELSE user_id_low END,
    user_id_high = CASE WHEN user_id_low = $1 THEN greatest(user_id_high, $2 COLLATE "C")
                        WHEN user_id_high = $1 THEN greatest(user_id_low, $2 COLLATE "C") ELSE user_id_high END,
    note = replace(note, $1, $2)
WHERE user_id_low = $1 OR user_id_high = $1 OR strpos(note, $1) > 0`

// setErasureGate opens, for the rest of tx, the one change the reviews' trigger allows: userID
// becoming pseudonym.
func setErasureGate(ctx context.Context, tx pgx.Tx, userID, pseudonym string) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('doppel.erasure', $1, true), set_config('doppel.erasure_subject', $2, true)`,
		pseudonym, userID); err != nil {
		return fmt.Errorf("open the erasure gate: %w", err)
	}
	return nil
}

// summarizeAfterErasure gives the rings an erasure touched their summaries. When the person only
// left their ring (no neighbour's walk split it), the rest is the ring less the person's live links,
// with its open alerts and newest member counted again (index look-ups over its members); the
// links' first and last sightings are recounted only when the person's links held one of them. A
// ring the erasure split is recounted whole (doppel_ring_summary): rare, and the walk that found
// the split already cost as much. A face farm of 5,000 recounted whole took 22 s.
func summarizeAfterErasure(ctx context.Context, tx pgx.Tx, touched map[string]bool, old ringSummary, ownLinks, splits int) error {
	keys := make([]string, 0, len(touched))
	for k := range touched {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if splits > 1 || len(keys) != 1 || old.recount {
		return refreshRingSummaries(ctx, tx, keys)
	}
	_, err := tx.Exec(ctx, `
UPDATE rings r SET link_count = $2, first_seen_at = $3, last_seen_at = $4,
    (open_alerts, newest_user_id, newest_at) =
        (SELECT ms.open_alerts, ms.newest_user_id, ms.newest_at FROM doppel_ring_member_summary(r.ring_key) ms)
WHERE r.ring_key = $1`, keys[0], old.linkCount-ownLinks, old.firstSeenAt, old.lastSeenAt)
	if err != nil {
		return fmt.Errorf("summarize the ring an erasure left: %w", err)
	}
	return nil
}
