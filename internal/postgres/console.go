package postgres

// The review console's and the query API's reads over rings, alerts and reviews. They sit behind
// these methods so that how rings are found (today ringOf and the fraud_rings view) can change
// without touching their callers.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// alertOpenSQL is true for an alert of alerts a still waiting for a review: the state stored on
// the alert (doppel_alert_open decides it when the alert is raised and when a pair is reviewed).
const alertOpenSQL = `a.open`

func scanAlertWithStatus(row pgx.CollectableRow) (duplicate.StoredAlert, error) {
	var open bool
	a := duplicate.StoredAlert{Alert: duplicate.Alert{Type: duplicate.AlertType, Version: duplicate.AlertVersion}}
	err := row.Scan(append(alertDestinations(&a), &open)...)
	normalizeAlert(&a)
	a.Status = duplicate.AlertReviewed
	if open {
		a.Status = duplicate.AlertOpen
	}
	return a, err
}

// alertsSQL builds the query of Alerts: the position or since bound, then each filter q sets.
func alertsSQL(q duplicate.AlertQuery) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	cmp, dir := ">", "ASC"
	if q.NewestFirst {
		cmp, dir = "<", "DESC"
	}
	if q.After != nil {
		where = append(where, fmt.Sprintf("(a.detected_at, a.alert_id) %s (%s, %s::uuid)", cmp, arg(q.After.DetectedAt), arg(q.After.AlertID)))
	} else if !q.Since.IsZero() {
		where = append(where, "a.detected_at >= "+arg(q.Since))
	}
	if q.Severity != "" {
		where = append(where, "a.severity = "+arg(q.Severity))
	}
	switch q.Status {
	case duplicate.AlertOpen:
		where = append(where, alertOpenSQL)
	case duplicate.AlertReviewed:
		where = append(where, "NOT "+alertOpenSQL)
	}
	if q.Region != "" {
		where = append(where, "a.region = "+arg(q.Region))
	}
	if q.UserID != "" {
		p := arg(q.UserID)
		// The alerts raised for the user, and those naming the user among their matches: an alert
		// names only accounts its user is linked to (its listed matches are linked pair by pair),
		// so those are alerts of the user or of a linked account that list the user. The accounts
		// are one array (an initplan: the links' primary key and duplicate_links_high_idx), read
		// with alerts_user_id_idx, bounded by the user's links. A GIN index on the match lists did
		// the same but cost every alert written and every alert the relay marks published; an OR
		// of the two conditions was planned as a scan (344 ms at 10,000,000 checks).
		where = append(where, fmt.Sprintf(`a.user_id = ANY (ARRAY(SELECT %[1]s::text
    UNION ALL SELECT user_id_high FROM duplicate_links WHERE user_id_low = %[1]s
    UNION ALL SELECT user_id_low FROM duplicate_links WHERE user_id_high = %[1]s))
  AND (a.user_id = %[1]s OR a.matched_user_ids @> ARRAY[%[1]s::text])`, p))
	}
	sql := `SELECT ` + alertColumns + `, ` + alertOpenSQL + ` FROM alerts a`
	if len(where) > 0 {
		sql += "\nWHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf("\nORDER BY a.detected_at %s, a.alert_id %s\nLIMIT %s", dir, dir, arg(q.Limit))
	return sql, args
}

// Alert returns one alert with its status, or a duplicate.ENOTFOUND error.
func (s *Store) Alert(ctx context.Context, alertID string) (duplicate.StoredAlert, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+alertColumns+`, `+alertOpenSQL+`
FROM alerts a WHERE a.alert_id = $1::uuid`, alertID)
	if err != nil {
		return duplicate.StoredAlert{}, fmt.Errorf("select alert: %w", err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, scanAlertWithStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return duplicate.StoredAlert{}, duplicate.Errorf(duplicate.ENOTFOUND, "no alert has alertId %q", alertID)
	}
	if err != nil {
		return duplicate.StoredAlert{}, fmt.Errorf("select alert: %w", err)
	}
	return a, nil
}

// RingListMembers bounds the members a ring of a list shows (the first by userId); the ring's own
// page has the rest.
const RingListMembers = 100

// Rings returns a page of fraud rings in q.Order: an index scan of the ring summaries
// (rings_size_idx, rings_last_seen_at_idx), with each ring's first RingListMembers members.
func (s *Store) Rings(ctx context.Context, q duplicate.RingQuery) ([]duplicate.RingSummary, error) {
	order := "r.size DESC, r.last_seen_at DESC, r.ring_id"
	if q.Order == duplicate.RingsNewestFirst {
		order = "r.last_seen_at DESC, r.ring_id"
	}
	rows, err := s.pool.Query(ctx, `
SELECT r.ring_id, r.size, r.link_count,
    ARRAY(SELECT m.user_id FROM ring_members m WHERE m.ring_key = r.ring_key ORDER BY m.user_id LIMIT $3),
    r.first_seen_at, r.last_seen_at, r.open_alerts
FROM rings r
ORDER BY `+order+`
OFFSET $1 LIMIT $2`, q.Offset, q.Limit, RingListMembers)
	if err != nil {
		return nil, fmt.Errorf("select rings: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.RingSummary, error) {
		var r duplicate.RingSummary
		var first, last *time.Time
		err := row.Scan(&r.ID, &r.Size, &r.LinkCount, &r.Members, &first, &last, &r.OpenAlerts)
		if first != nil {
			r.FirstSeenAt = first.UTC()
		}
		if last != nil {
			r.LastSeenAt = last.UTC()
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("select rings: %w", err)
	}
	return out, nil
}

// ringRoot returns the smallest member of the ring ringID, from the ring index. An id retired by a
// merge or a split, or never issued, is a duplicate.ENOTFOUND error.
func ringRoot(ctx context.Context, q querier, ringID string) (string, error) {
	var root string
	err := q.QueryRow(ctx, `
SELECT smallest_user_id FROM rings WHERE ring_id = $1`, ringID).Scan(&root)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", unknownRing(ringID)
	}
	if err != nil {
		return "", fmt.Errorf("look up ring: %w", err)
	}
	return root, nil
}

// ringNewest returns the newest member of the ring whose smallest member is root (rings'
// newest_user_id, kept with the other summaries), root itself if it has none.
func ringNewest(ctx context.Context, q querier, root string) (string, error) {
	var newest string
	err := q.QueryRow(ctx, `SELECT coalesce(r.newest_user_id, r.smallest_user_id)
FROM ring_members m JOIN rings r USING (ring_key) WHERE m.user_id = $1`, root).Scan(&newest)
	if errors.Is(err, pgx.ErrNoRows) {
		return root, nil
	}
	if err != nil {
		return "", fmt.Errorf("look up the ring's newest member: %w", err)
	}
	return newest, nil
}

func unknownRing(ringID string) error {
	e := duplicate.Errorf(duplicate.ENOTFOUND, "no ring has ringId %q (a ring merged into another keeps the other's id)", ringID)
	e.Field = "ringId"
	return e
}

// ringByID reads the ring ringID, members and the links links asks for, from the ring index.
// focus, when set, must be a member: the account whose neighbourhood a large ring's page shows
// (the ring's newest member when "": the one whose verification joined it last).
func ringByID(ctx context.Context, tx pgx.Tx, ringID string, links ringLinks, focus string) (duplicate.Ring, error) {
	root, err := ringRoot(ctx, tx, ringID)
	if err != nil {
		return duplicate.Ring{}, err
	}
	if focus == "" {
		focus, err = ringNewest(ctx, tx, root)
		if err != nil {
			return duplicate.Ring{}, err
		}
	} else if focus != root {
		rings, err := ringsOf(ctx, tx, []string{root, focus})
		if err != nil {
			return duplicate.Ring{}, err
		}
		if st, ok := rings[focus]; !ok || st.Key != rings[root].Key {
			e := duplicate.Errorf(duplicate.ENOTFOUND, "userId %q is not a member of ring %s", focus, ringID)
			e.Field = "userId"
			return duplicate.Ring{}, e
		}
	}
	return ringOf(ctx, tx, root, links, focus)
}

// RingDetail returns the ring ringID with its pairs' linking verifications and review history:
// every pair of a ring of at most duplicate.MaxRingPageMembers, those of focus (a member; the
// ring's newest when "") in a larger one.
func (s *Store) RingDetail(ctx context.Context, ringID, focus string) (duplicate.RingDetail, error) {
	var out duplicate.RingDetail
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		ring, err := ringByID(ctx, tx, ringID, pageLinks, focus)
		if err != nil {
			return err
		}
		out = duplicate.RingDetail{ID: ring.ID, Size: ring.Size, Members: ring.Members, Truncated: ring.Truncated,
			Focus: ring.Focus, LinkCount: ring.LinkCount, FirstSeenAt: ring.FirstSeenAt, LastSeenAt: ring.LastSeenAt,
			OpenAlerts: ring.OpenAlerts, Pairs: make([]duplicate.RingPair, len(ring.Links))}
		index := make(map[[2]string]int, len(ring.Links))
		for i, l := range ring.Links {
			out.Pairs[i] = duplicate.RingPair{Link: l}
			index[[2]string{l.UserIDLow, l.UserIDHigh}] = i
		}
		// The pairs' accounts: the members, or in a neighbourhood the focus and its neighbours.
		users := ring.Members
		if ring.Focus != "" {
			users = pairUsers(pairKeys(ring.Links))
		}
		if len(users) == 0 {
			return nil
		}
		if err := addPairEvidence(ctx, tx, users, out.Pairs, index); err != nil {
			return err
		}
		return addPairHistory(ctx, tx, users, out.Pairs, index)
	})
	return out, err
}

// pairKeys returns the links' pairs.
func pairKeys(links []duplicate.Link) []duplicate.PairKey {
	out := make([]duplicate.PairKey, len(links))
	for i, l := range links {
		out[i] = duplicate.PairKey{Low: l.UserIDLow, High: l.UserIDHigh}
	}
	return out
}

// addPairEvidence adds to each pair the checks of ring members that matched the other member.
// Like addPairHistory it is planned for its own array (QueryExecModeExec): "= ANY" over a parameter
// in a cached generic plan is a linear search per row (a hundred members times their matches: a
// million comparisons), over the array itself a hash look-up.
func addPairEvidence(ctx context.Context, tx pgx.Tx, members []string, pairs []duplicate.RingPair, index map[[2]string]int) error {
	rows, err := tx.Query(ctx, `
SELECT least(c.user_id, m), greatest(c.user_id, m), c.signature_id, coalesce(c.vendor_transaction_id, '')
FROM idv_checks c
CROSS JOIN LATERAL unnest(c.matched_user_ids) AS m
WHERE c.user_id = ANY ($1) AND m = ANY ($1)
ORDER BY c.checked_at, c.signature_id`, pgx.QueryExecModeExec, members)
	if err != nil {
		return fmt.Errorf("select ring evidence: %w", err)
	}
	var low, high, sig, txn string
	_, err = pgx.ForEachRow(rows, []any{&low, &high, &sig, &txn}, func() error {
		if i, ok := index[[2]string{low, high}]; ok {
			pairs[i].SignatureIDs = append(pairs[i].SignatureIDs, sig)
			if txn != "" {
				pairs[i].VendorTransactionIDs = append(pairs[i].VendorTransactionIDs, txn)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("select ring evidence: %w", err)
	}
	return nil
}

// addPairHistory adds to each pair its reviews, newest first.
func addPairHistory(ctx context.Context, tx pgx.Tx, members []string, pairs []duplicate.RingPair, index map[[2]string]int) error {
	rows, err := tx.Query(ctx, `
SELECT `+reviewColumns+` FROM link_reviews
WHERE user_id_low = ANY ($1) AND user_id_high = ANY ($1)
ORDER BY reviewed_at DESC, review_id DESC`, pgx.QueryExecModeExec, members)
	if err != nil {
		return fmt.Errorf("select ring reviews: %w", err)
	}
	reviews, err := pgx.CollectRows(rows, scanReview)
	if err != nil {
		return fmt.Errorf("select ring reviews: %w", err)
	}
	for _, r := range reviews {
		if i, ok := index[[2]string{r.UserID, r.DuplicateUserID}]; ok {
			r.Linked = true
			pairs[i].Reviews = append(pairs[i].Reviews, r)
		}
	}
	return nil
}

// DecideRing records decision and note for the linked pairs of the ring ringID, in one
// transaction, and returns how many it recorded. Pairs already decided are left as they were
// unless redecide is set. Each is an ordinary review (insertReview): append-only, and the ring
// index follows, so clearing the ring's pairs dissolves the ring. The ring's case gets one history
// entry listing the pairs (the decision's audit entry, with its author).
func (s *Store) DecideRing(ctx context.Context, ringID string, decision duplicate.Decision, note, reviewer string, redecide bool) (int, error) {
	if !decision.Valid() {
		return 0, duplicate.Invalid("decision", "decision must be one of %v", duplicate.Decisions)
	}
	var n int
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockRingIndex(ctx, tx); err != nil {
			return err
		}
		ring, err := ringByID(ctx, tx, ringID, allLinks, "")
		if err != nil {
			return err
		}
		if ring.Truncated {
			return duplicate.Invalid("ringId", "the ring has more than %d accounts or %d links: decide its pairs one by one",
				duplicate.MaxRingMembers, MaxRingLinks)
		}
		var key string
		if err := tx.QueryRow(ctx, `SELECT ring_key FROM rings WHERE ring_id = $1`, ringID).Scan(&key); err != nil {
			return fmt.Errorf("look up ring key: %w", err)
		}
		var pairs []duplicate.PairKey
		for _, l := range ring.Links {
			if l.LatestReview == nil || redecide {
				pairs = append(pairs, duplicate.PairKey{Low: l.UserIDLow, High: l.UserIDHigh})
			}
		}
		if err := recordRingDecision(ctx, tx, key, decision, reviewer, pairs, len(ring.Links)-len(pairs)); err != nil {
			return err
		}
		for _, p := range pairs {
			r := duplicate.Review{UserID: p.Low, DuplicateUserID: p.High, Decision: decision, Note: note, ReviewedBy: reviewer}
			if err := insertReview(ctx, tx, &r); err != nil {
				return err
			}
		}
		n = len(pairs)
		return nil
	})
	return n, err
}

// Reviews returns a page of reviews, newest first, filtered as q says.
func (s *Store) Reviews(ctx context.Context, q duplicate.ReviewQuery) ([]duplicate.Review, error) {
	rows, err := s.pool.Query(ctx, `
SELECT `+reviewColumns+`,
    EXISTS (SELECT 1 FROM duplicate_links l WHERE l.user_id_low = r.user_id_low AND l.user_id_high = r.user_id_high)
FROM link_reviews r
WHERE ($1 = '' OR r.user_id_low = $1 OR r.user_id_high = $1)
  AND ($2 = '' OR r.reviewed_by = $2)
  AND r.reviewed_at >= $3
  AND ($4 = 0 OR r.review_id < $4)
ORDER BY r.review_id DESC
LIMIT $5`, q.UserID, q.Reviewer, q.Since, q.Before, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("select reviews: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.Review, error) {
		var r duplicate.Review
		var decision string
		err := row.Scan(&r.ID, &r.UserID, &r.DuplicateUserID, &decision, &r.Note, &r.ReviewedBy, &r.ReviewedAt, &r.Linked)
		r.Decision = duplicate.Decision(decision)
		r.ReviewedAt = r.ReviewedAt.UTC()
		if q.UserID != "" {
			r = orient(r, q.UserID)
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("select reviews: %w", err)
	}
	return out, nil
}

// overviewSQL counts the day's and month's activity, each count an index range bounded by its day
// or month, not by the data kept: checks by idv_checks_checked_at_idx, links by
// duplicate_links_first_seen_at_idx, open alerts from the counter the alerts' triggers keep, and face searches
// region by region on the partial indexes the spend guard reads (idv_checks_region_searched_idx,
// idv_checks_region_replayed_idx), whose regions a loose index scan lists (one probe per region).
const overviewSQL = `
WITH RECURSIVE searched(region) AS (
    (SELECT region FROM idv_checks WHERE outcome IN ('duplicates_found', 'no_duplicates') ORDER BY region LIMIT 1)
    UNION ALL
    SELECT (SELECT c.region FROM idv_checks c
            WHERE c.outcome IN ('duplicates_found', 'no_duplicates') AND c.region > s.region ORDER BY c.region LIMIT 1)
    FROM searched s WHERE s.region IS NOT NULL
), replayed(region) AS (
    (SELECT region FROM idv_checks WHERE replayed_at IS NOT NULL ORDER BY region LIMIT 1)
    UNION ALL
    SELECT (SELECT c.region FROM idv_checks c WHERE c.replayed_at IS NOT NULL AND c.region > s.region ORDER BY c.region LIMIT 1)
    FROM replayed s WHERE s.region IS NOT NULL
), searches AS (
    SELECT
        coalesce(sum((SELECT count(*) FROM idv_checks c WHERE c.region = s.region
                      AND c.outcome IN ('duplicates_found', 'no_duplicates') AND c.checked_at >= $1)), 0) AS day,
        coalesce(sum((SELECT count(*) FROM idv_checks c WHERE c.region = s.region
                      AND c.outcome IN ('duplicates_found', 'no_duplicates') AND c.checked_at >= $2)), 0) AS month
    FROM searched s WHERE s.region IS NOT NULL
), replays AS (
    SELECT
        coalesce(sum((SELECT count(*) FROM idv_checks c WHERE c.region = s.region AND c.replayed_at >= $1)), 0) AS day,
        coalesce(sum((SELECT count(*) FROM idv_checks c WHERE c.region = s.region AND c.replayed_at >= $2)), 0) AS month
    FROM replayed s WHERE s.region IS NOT NULL
)
SELECT
    (SELECT count(*)::int FROM idv_checks WHERE checked_at >= $1),
    (SELECT count(*)::int FROM duplicate_links WHERE first_seen_at >= $1),
    (SELECT value::int FROM counters WHERE name = 'open_alerts'),
    (SELECT (s.day + r.day)::int FROM searches s, replays r),
    (SELECT (s.month + r.month)::int FROM searches s, replays r)`

// Overview counts the day's and month's activity as of now. A face search is billed for each check
// whose outcome came from one, and again for each deliberate re-run; a re-run is counted on the day
// of its latest run (replayed_at), so a check re-run twice in one day counts once there.
func (s *Store) Overview(ctx context.Context, now time.Time) (duplicate.Overview, error) {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	o := duplicate.Overview{Now: now}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, overviewSQL, day, month).Scan(
			&o.ChecksToday, &o.LinksFoundToday, &o.OpenAlerts, &o.FaceSearchesToday, &o.FaceSearchesMonth)
		if err != nil {
			return fmt.Errorf("count activity: %w", err)
		}
		rows, err := tx.Query(ctx, `
SELECT d.day, count(a.alert_id)::int
FROM generate_series($1::timestamptz - interval '29 days', $1::timestamptz, interval '1 day') AS d(day)
LEFT JOIN alerts a ON a.detected_at >= d.day AND a.detected_at < d.day + interval '1 day'
GROUP BY d.day ORDER BY d.day`, day)
		if err != nil {
			return fmt.Errorf("count alerts per day: %w", err)
		}
		o.AlertsPerDay, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.DayCount, error) {
			var d duplicate.DayCount
			err := row.Scan(&d.Day, &d.Count)
			d.Day = d.Day.UTC()
			return d, err
		})
		if err != nil {
			return fmt.Errorf("count alerts per day: %w", err)
		}
		return nil
	})
	return o, err
}
