package postgres

// The ring summaries (rings.link_count, first_seen_at, last_seen_at, open_alerts) and the alerts'
// open state are a read model kept by the transactions that change what they summarise, so that
// listing rings and the queue are index scans at any size (migration 14, docs/performance.md).
// Every change is a delta in the transaction that causes it; doppel_ring_summary recounts a ring
// from scratch where a delta would cost as much (a ring split by a review, an erasure), and
// TestRingSummariesAgreeWithARecount holds the two together.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// absorbRingsSQL adds the summaries of the rings merged away ($1, each into $2) to the rings that
// absorb them, before the merged rows are retired. Several rings may merge into one: summed first;
// the newest member is the newest of all (newerSQL).
const absorbRingsSQL = `
UPDATE rings t SET link_count = t.link_count + s.link_count,
    first_seen_at = least(t.first_seen_at, s.first_seen_at),
    last_seen_at = greatest(t.last_seen_at, s.last_seen_at),
    open_alerts = t.open_alerts + s.open_alerts,
    newest_user_id = CASE WHEN ` + newerSQL + ` THEN s.newest_user_id ELSE t.newest_user_id END,
    newest_at = CASE WHEN ` + newerSQL + ` THEN s.newest_at ELSE t.newest_at END
FROM (
    SELECT u.to_key, sum(r.link_count)::integer AS link_count, min(r.first_seen_at) AS first_seen_at,
        max(r.last_seen_at) AS last_seen_at, sum(r.open_alerts)::integer AS open_alerts,
        (array_agg(r.newest_user_id ORDER BY r.newest_at DESC NULLS LAST, r.newest_user_id DESC))[1] AS newest_user_id,
        max(r.newest_at) AS newest_at
    FROM unnest($1::text[], $2::text[]) AS u(from_key, to_key)
    JOIN rings r ON r.ring_key = u.from_key
    GROUP BY u.to_key
) s
WHERE t.ring_key = s.to_key`

// newerSQL is true when s's newest member is newer than t's: by the time of its verification, then
// by userId, the order doppel_ring_summary takes the newest in.
const newerSQL = `(s.newest_at IS NOT NULL AND (t.newest_at IS NULL
    OR (s.newest_at, s.newest_user_id) > (t.newest_at, t.newest_user_id)))`

// summaryDeltaSQL adds a batch's live links ($1 lows, $2 first sightings, $3 last sightings, $4
// whether new), its open alerts ($5) and its accounts that may be their ring's newest ($6: the
// users of its checks that named others, and those that joined a ring) to the rings they are in
// once the batch's ring changes are written: a new live link counts once, every live link written
// moves the sightings, an open alert counts once, an account's latest verification
// (doppel_newest_check) replaces the ring's newest if newer. A live link's two accounts are in one
// ring, so its low account names it.
const summaryDeltaSQL = `
WITH l AS (
    SELECT m.ring_key, count(*) FILTER (WHERE u.fresh)::integer AS links, min(u.first_seen) AS first_seen,
        max(u.last_seen) AS last_seen
    FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::bool[]) AS u(lo, first_seen, last_seen, fresh)
    JOIN ring_members m ON m.user_id = u.lo
    GROUP BY m.ring_key
), a AS (
    -- open counted, not filtered on: "AND x.open" made the planner read the partial index of every
    -- open alert (alerts_open_detected_at_idx) instead of the primary key's handful of ids.
    SELECT m.ring_key, count(*) FILTER (WHERE x.open)::integer AS opened
    FROM alerts x JOIN ring_members m ON m.user_id = x.user_id
    WHERE x.alert_id = ANY ($5::uuid[])
    GROUP BY m.ring_key
), n AS (
    SELECT DISTINCT ON (m.ring_key) m.ring_key, x.user_id AS newest_user_id, x.checked_at AS newest_at
    FROM unnest($6::text[]) AS u(uid)
    JOIN ring_members m ON m.user_id = u.uid
    CROSS JOIN LATERAL doppel_newest_check(u.uid) x
    WHERE x.user_id IS NOT NULL
    ORDER BY m.ring_key, x.checked_at DESC, x.user_id DESC
), s AS (
    SELECT coalesce(l.ring_key, a.ring_key, n.ring_key) AS ring_key, coalesce(l.links, 0) AS links, l.first_seen,
        l.last_seen, coalesce(a.opened, 0) AS opened, n.newest_user_id, n.newest_at
    FROM l FULL JOIN a ON a.ring_key = l.ring_key
    FULL JOIN n ON n.ring_key = coalesce(l.ring_key, a.ring_key)
)
UPDATE rings t SET link_count = t.link_count + s.links,
    first_seen_at = least(t.first_seen_at, s.first_seen),
    last_seen_at = greatest(t.last_seen_at, s.last_seen),
    open_alerts = t.open_alerts + s.opened,
    newest_user_id = CASE WHEN ` + newerSQL + ` THEN s.newest_user_id ELSE t.newest_user_id END,
    newest_at = CASE WHEN ` + newerSQL + ` THEN s.newest_at ELSE t.newest_at END
FROM s WHERE t.ring_key = s.ring_key`

// queueSummaryDeltas queues summaryDeltaSQL for a batch's checks, link writes, ring changes and
// alerts, after the links, the ring index and the alerts are queued.
func queueSummaryDeltas(b *pgx.Batch, checks []duplicate.Check, links []duplicate.LinkWrite, joined map[string]string,
	alerts []*duplicate.Alert) {
	var lows []string
	var firsts, lasts []time.Time
	var fresh []bool
	for _, l := range links {
		if l.Live {
			lows, firsts, lasts, fresh = append(lows, l.Low), append(firsts, l.FirstSeenAt), append(lasts, l.LastSeenAt), append(fresh, l.New)
		}
	}
	ids := make([]string, len(alerts))
	for i, a := range alerts {
		ids[i] = a.AlertID
	}
	users := newestCandidates(checks, joined)
	if len(lows) > 0 || len(ids) > 0 || len(users) > 0 {
		b.Queue(summaryDeltaSQL, lows, firsts, lasts, fresh, ids, users)
	}
}

// newestCandidates are the accounts a batch may make their ring's newest: the users of its checks
// that named other accounts, and the accounts that joined a ring (whose latest such check may be
// older than the batch).
func newestCandidates(checks []duplicate.Check, joined map[string]string) []string {
	seen := make(map[string]bool, len(checks)+len(joined))
	var out []string
	add := func(u string) {
		if u != "" && !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	for _, c := range checks {
		if len(c.MatchedUserIDs) > 0 {
			add(c.UserID)
		}
	}
	for u := range joined {
		add(u)
	}
	slices.Sort(out)
	return out
}

// closeAlertsSQL closes the open alerts of the pair's two accounts ($1, $2) that the review just
// stored leaves with no unreviewed new pair, takes them off their rings' open counts, and closes
// the case of a ring left with none.
const closeAlertsSQL = `
WITH closed AS (
    UPDATE alerts a SET open = false
    WHERE a.user_id IN ($1, $2) AND a.open AND NOT doppel_alert_open(a.user_id, a.new_matched_user_ids)
    RETURNING a.user_id
), d AS (
    SELECT m.ring_key, count(*)::integer AS closed FROM closed c JOIN ring_members m ON m.user_id = c.user_id
    GROUP BY m.ring_key
), u AS (
    UPDATE rings r SET open_alerts = r.open_alerts - d.closed FROM d WHERE r.ring_key = d.ring_key
    RETURNING r.ring_key, r.open_alerts
), done AS (
    UPDATE cases k SET status = 'closed', snoozed_until = NULL FROM u
    WHERE k.ring_key = u.ring_key AND u.open_alerts = 0 AND k.status IN ('open', 'in_review')
    RETURNING k.case_id
)
INSERT INTO case_events (case_id, from_case_id, kind, author, text)
SELECT case_id, case_id, 'closed', 'doppel', 'no open alert left' FROM done`

// closeReviewedAlerts keeps the alerts' open state and the rings' open counts true after a review
// of pair is stored (before the ring index follows the review).
func closeReviewedAlerts(ctx context.Context, tx pgx.Tx, pair duplicate.PairKey) error {
	if _, err := tx.Exec(ctx, closeAlertsSQL, pair.Low, pair.High); err != nil {
		return fmt.Errorf("close reviewed alerts: %w", err)
	}
	return nil
}

// countNewest offers users (a review just joined their rings) as their ring's newest member.
func countNewest(ctx context.Context, tx pgx.Tx, users []string) error {
	if _, err := tx.Exec(ctx, summaryDeltaSQL, []string{}, []time.Time{}, []time.Time{}, []bool{}, []string{}, users); err != nil {
		return fmt.Errorf("the joined ring's newest member: %w", err)
	}
	return nil
}

// countPairLink adds the linked pair's link to (delta 1, a review made it live again) or takes it
// from (delta -1, a review cleared it) the summary of the ring its low account is in.
func countPairLink(ctx context.Context, tx pgx.Tx, pair duplicate.PairKey, delta int) error {
	_, err := tx.Exec(ctx, `
UPDATE rings r SET link_count = r.link_count + $3,
    first_seen_at = CASE WHEN $3 > 0 THEN least(r.first_seen_at, l.first_seen_at) ELSE r.first_seen_at END,
    last_seen_at = CASE WHEN $3 > 0 THEN greatest(r.last_seen_at, l.last_seen_at) ELSE r.last_seen_at END
FROM ring_members m, duplicate_links l
WHERE m.user_id = $1 AND r.ring_key = m.ring_key AND l.user_id_low = $1 AND l.user_id_high = $2`, pair.Low, pair.High, delta)
	if err != nil {
		return fmt.Errorf("count the reviewed link in its ring: %w", err)
	}
	return nil
}

// refreshRingSummaries recounts the rings keys from scratch (doppel_ring_summary).
func refreshRingSummaries(ctx context.Context, q querier, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	if _, err := q.Exec(ctx, `SELECT doppel_refresh_ring_summaries($1::text[])`, keys); err != nil {
		return fmt.Errorf("recount ring summaries: %w", err)
	}
	return nil
}

// ringSummary is a ring's stored summary as a split starts, with whether the cleared link held
// one of its extreme sightings (then only a recount knows the new one).
type ringSummary struct {
	linkCount, openAlerts   int
	firstSeenAt, lastSeenAt *time.Time
	newestUserID            *string
	newestAt                *time.Time
	recount                 bool
}

// uncountClearedLink takes the pair a review just cleared off the summary of ring key and returns
// the summary as it stands then.
func uncountClearedLink(ctx context.Context, tx pgx.Tx, pair duplicate.PairKey, key string) (ringSummary, error) {
	var s ringSummary
	err := tx.QueryRow(ctx, `
UPDATE rings r SET link_count = r.link_count - 1
FROM duplicate_links l
WHERE r.ring_key = $3 AND l.user_id_low = $1 AND l.user_id_high = $2
RETURNING r.link_count, r.open_alerts, r.first_seen_at, r.last_seen_at, r.newest_user_id, r.newest_at,
    l.first_seen_at <= r.first_seen_at OR l.last_seen_at >= r.last_seen_at`, pair.Low, pair.High, key).Scan(
		&s.linkCount, &s.openAlerts, &s.firstSeenAt, &s.lastSeenAt, &s.newestUserID, &s.newestAt, &s.recount)
	if err != nil {
		return ringSummary{}, fmt.Errorf("take the cleared link off its ring: %w", err)
	}
	return s, nil
}

// summarizeSplit gives the two rings a split made their summaries: the part (the smaller side, the
// one the split walked) is recounted; the rest is what the ring had less the part, recounted only
// when the part or the cleared link held an extreme sighting.
func summarizeSplit(ctx context.Context, tx pgx.Tx, old ringSummary, partKey, restKey string) error {
	if partKey == "" {
		if restKey == "" {
			return nil
		}
		// The part was one account: it had no live link left and no ring to count its alerts in.
		return refreshRingSummaries(ctx, tx, []string{restKey})
	}
	var part ringSummary
	err := tx.QueryRow(ctx, `
UPDATE rings r SET (link_count, first_seen_at, last_seen_at, open_alerts, newest_user_id, newest_at) =
    (SELECT s.link_count, s.first_seen_at, s.last_seen_at, s.open_alerts, s.newest_user_id, s.newest_at
     FROM doppel_ring_summary(r.ring_key) s)
WHERE r.ring_key = $1
RETURNING link_count, open_alerts, first_seen_at, last_seen_at`, partKey).Scan(
		&part.linkCount, &part.openAlerts, &part.firstSeenAt, &part.lastSeenAt)
	if err != nil {
		return fmt.Errorf("recount the split part: %w", err)
	}
	if restKey == "" {
		return nil
	}
	holdsExtreme := func(p, o *time.Time, earliest bool) bool {
		if p == nil || o == nil {
			return p != nil || o == nil
		}
		if earliest {
			return !p.After(*o)
		}
		return !p.Before(*o)
	}
	newestLeft := false // the ring's newest member went with the part
	if old.newestUserID != nil {
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM ring_members WHERE user_id = $1 AND ring_key = $2)`,
			*old.newestUserID, restKey).Scan(&newestLeft); err != nil {
			return fmt.Errorf("summarize the rest of a split ring: %w", err)
		}
	}
	if old.recount || newestLeft || holdsExtreme(part.firstSeenAt, old.firstSeenAt, true) ||
		holdsExtreme(part.lastSeenAt, old.lastSeenAt, false) {
		return refreshRingSummaries(ctx, tx, []string{restKey})
	}
	_, err = tx.Exec(ctx, `
UPDATE rings SET link_count = $2, open_alerts = $3, first_seen_at = $4, last_seen_at = $5, newest_user_id = $6, newest_at = $7
WHERE ring_key = $1`,
		restKey, old.linkCount-part.linkCount, old.openAlerts-part.openAlerts, old.firstSeenAt, old.lastSeenAt,
		old.newestUserID, old.newestAt)
	if err != nil {
		return fmt.Errorf("summarize the rest of a split ring: %w", err)
	}
	return nil
}
