package postgres

// Cases (migration 40): a case is a ring with work to do, keyed by a stable caseId and following
// its ring by ring_key. The transactions that change the ring index keep it: a merge calls
// doppel_merge_cases (queueRingChanges), a split doppel_split_case (splitRing), a batch that opens
// a ring's first alert opens its case (queueOpenCases, in the batch's closing pipeline: no round
// trip of its own), the review that closes a ring's last open alert closes it (closeAlertsSQL).
// The queue reads cases_queue_idx and the rings' stored summaries, never the alerts.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// WithCases sets the review SLA that sets a case's due time.
func WithCases(sla duplicate.CaseSLA) Option {
	return func(s *Store) { s.sla = sla }
}

// slaArgs returns the SLA as SQL arguments: the regions with their own, their seconds, the default.
func (s *Store) slaArgs() ([]string, []float64, float64) {
	def := s.sla.Default
	if def <= 0 {
		def = 24 * time.Hour
	}
	var regions []string
	var secs []float64
	for r, d := range s.sla.Regions {
		regions, secs = append(regions, r), append(secs, d.Seconds())
	}
	return regions, secs, def.Seconds()
}

// openRingCasesSQL opens a case for each ring that one of the batch's alerts ($1) left with open
// alerts, or adds the alerts' regions to its case; a closed case reopens (unassigned, due again).
// The due time is the oldest new alert's time plus its region's SLA ($2 regions, $3 seconds) or
// the default ($4).
const openRingCasesSQL = `
INSERT INTO cases AS c (case_id, ring_key, status, regions, opened_at, due_at)
SELECT gen_random_uuid(), m.ring_key, 'open', array_agg(DISTINCT x.region ORDER BY x.region), min(x.detected_at),
    min(x.detected_at + make_interval(secs => coalesce(s.secs, $4)))
FROM alerts x
JOIN ring_members m ON m.user_id = x.user_id
LEFT JOIN unnest($2::text[], $3::float8[]) AS s(region, secs) ON s.region = x.region
WHERE x.alert_id = ANY ($1::uuid[]) AND coalesce(x.open, false) -- not "AND x.open": that lets the planner
    -- read the partial index of every open alert (alerts_open_detected_at_idx) for a handful of ids
GROUP BY m.ring_key
ON CONFLICT (ring_key) DO UPDATE SET
    regions = (SELECT array_agg(DISTINCT r ORDER BY r) FROM unnest(c.regions || EXCLUDED.regions) AS r),
    status = CASE WHEN c.status = 'closed' THEN 'open' ELSE c.status END,
    assignee = CASE WHEN c.status = 'closed' THEN NULL ELSE c.assignee END,
    snoozed_until = CASE WHEN c.status = 'closed' THEN NULL ELSE c.snoozed_until END,
    opened_at = CASE WHEN c.status = 'closed' THEN EXCLUDED.opened_at ELSE c.opened_at END,
    due_at = CASE WHEN c.status = 'closed' THEN EXCLUDED.due_at ELSE least(c.due_at, EXCLUDED.due_at) END`

// queueOpenCases queues openRingCasesSQL for a batch's alerts, after queueSummaryDeltas.
func (s *Store) queueOpenCases(b *pgx.Batch, alerts []*duplicate.Alert) {
	if len(alerts) == 0 {
		return
	}
	ids := make([]string, len(alerts))
	for i, a := range alerts {
		ids[i] = a.AlertID
	}
	regions, secs, def := s.slaArgs()
	b.Queue(openRingCasesSQL, ids, regions, secs, def)
}

// mergeCasesSQL follows a merge: each ring $1[i] was absorbed by $2[i] (see migration 40).
const mergeCasesSQL = `SELECT doppel_merge_cases($1::text[], $2::text[])`

// splitCase follows a split of ring oldKey into partKey and restKey ("" for no ring).
func splitCase(ctx context.Context, tx pgx.Tx, oldKey, partKey, restKey string) error {
	if _, err := tx.Exec(ctx, `SELECT doppel_split_case($1, $2, $3)`, oldKey, partKey, restKey); err != nil {
		return fmt.Errorf("split the ring's case: %w", err)
	}
	return nil
}

// caseRingSQL reads a case's ring by primary key. LIMIT keeps it a probe per case: as a plain
// join PostgreSQL hashed the rings whole (200,000 rows, 46 ms) to join 2,000 open cases.
const caseRingSQL = `SELECT ring_id, size, open_alerts FROM rings WHERE ring_key = c.ring_key LIMIT 1`

// caseColumns are a queue row's columns; $1 is the time overdue is judged at, $2 the high severity
// ring size (0: never).
const caseColumns = `c.case_id::text, coalesce(r.ring_id, ''), coalesce(r.size, 0), coalesce(r.open_alerts, 0), c.regions,
    c.status, coalesce(c.assignee, ''), c.due_at, c.opened_at, c.snoozed_until, c.decided_size,
    c.due_at <= $1 AS overdue, ($2 > 0 AND coalesce(r.size, 0) >= $2) AS high`

func scanCase(row pgx.CollectableRow) (duplicate.Case, error) {
	var c duplicate.Case
	var decided *int32
	var high bool
	err := row.Scan(&c.CaseID, &c.RingID, &c.Size, &c.OpenAlerts, &c.Regions, &c.Status, &c.Assignee, &c.DueAt,
		&c.OldestOpenAlertAt, &c.SnoozedUntil, &decided, &c.Overdue, &high)
	c.DueAt, c.OldestOpenAlertAt = c.DueAt.UTC(), c.OldestOpenAlertAt.UTC()
	if c.SnoozedUntil != nil {
		t := c.SnoozedUntil.UTC()
		c.SnoozedUntil = &t
	}
	c.Severity = duplicate.SeverityNormal
	if high {
		c.Severity = duplicate.SeverityHigh
	}
	c.NewAccounts = c.Size
	if decided != nil {
		c.NewAccounts = max(0, c.Size-int(*decided))
	}
	if c.Regions == nil {
		c.Regions = []string{}
	}
	return c, err
}

// Cases returns a page of the case queue: overdue first, then high severity, then oldest. The
// open and in-review cases are read by cases_queue_idx, each joined to its ring by primary key; a
// snoozed case is left out until its time unless the query names an assignee.
func (s *Store) Cases(ctx context.Context, q duplicate.CaseQuery) ([]duplicate.Case, error) {
	return s.casePage(ctx, s.pool, q)
}

// casePage is Cases on db (the pool, or NextCase's transaction).
func (s *Store) casePage(ctx context.Context, db querier, q duplicate.CaseQuery) ([]duplicate.Case, error) {
	if len(q.Statuses) == 0 {
		q.Statuses = []string{duplicate.CaseOpen, duplicate.CaseInReview}
	}
	asOf := q.AsOf
	args := []any{asOf, s.policy.HighSeverityRingSize, q.Statuses, q.Region, q.Assignee, q.NoAssignee, q.Severity, q.Limit}
	if q.After != nil {
		args = append(args, !q.After.Overdue, !q.After.High, q.After.Oldest, q.After.CaseID)
	}
	closed := len(q.Statuses) == 1 && q.Statuses[0] == duplicate.CaseClosed
	sql := casesSQL(q.After != nil, closed)
	if !closed && !slices.Contains(q.Statuses, duplicate.CaseClosed) {
		var withCursor bool
		sql, withCursor = queueSQL(q)
		if sql == "" {
			return []duplicate.Case{}, nil
		}
		args = args[:8]
		if withCursor {
			args = append(args, q.After.Oldest, q.After.CaseID)
		}
	}
	// Planned for these arguments: whether a range holds a handful of cases or most of them
	// depends on the time the queue is read at.
	rows, err := db.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("select cases: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanCase)
	if err != nil {
		return nil, fmt.Errorf("select cases: %w", err)
	}
	return out, nil
}

// casesSQL is the queue's page: $1 the time overdue is judged at, $2 the high severity size, $3
// statuses, $4 region, $5 assignee, $6 unassigned only, $7 severity, $8 limit, and after the
// previous page's sort key ($9-$12) when after. The closed cases (closed), which only grow, are
// listed newest first by cases_closed_idx instead: overdue means nothing once a case is closed,
// and sorting them all for each page would cost as much as there are.
func casesSQL(after, closed bool) string {
	order := `NOT (c.due_at <= $1), NOT ($2 > 0 AND coalesce(r.size, 0) >= $2), c.opened_at, c.case_id`
	cursor := `
  AND (NOT (c.due_at <= $1), NOT ($2 > 0 AND coalesce(r.size, 0) >= $2), c.opened_at, c.case_id) > ($9, $10, $11, $12::uuid)`
	if closed {
		order = `c.opened_at DESC, c.case_id DESC`
		cursor = `
  AND $9::bool IS NOT NULL AND $10::bool IS NOT NULL AND (c.opened_at, c.case_id) < ($11, $12::uuid)`
	}
	if !after {
		cursor = ""
	}
	return `
SELECT ` + caseColumns + `
FROM cases c LEFT JOIN LATERAL (` + caseRingSQL + `) r ON true
WHERE c.status = ANY ($3::text[])
  AND ($4 = '' OR $4 = ANY (c.regions))
  AND ($5 = '' OR c.assignee = $5)
  AND (NOT $6 OR c.assignee IS NULL)
  AND ($7 = '' OR ($7 = 'high') = ($2 > 0 AND coalesce(r.size, 0) >= $2))
  AND (c.snoozed_until IS NULL OR c.snoozed_until <= $1 OR $5 <> '')` + cursor + `
ORDER BY ` + order + `
LIMIT $8`
}

// queuePart is one of the four ranges of the queue's order: overdue or not, high severity or not.
type queuePart struct{ overdue, high bool }

// queueParts are the ranges in the queue's order.
var queueParts = []queuePart{{true, true}, {true, false}, {false, true}, {false, false}}

// queueSQL is the page of open and in-review cases (casesSQL's arguments $1-$8), read as the four
// ranges of the order's first two keys, each oldest first by an index and cut at the page's
// length, then merged: a page costs what it shows, not the number of open cases (sorting every
// open case by its ring's size took 0.9 s at 323,000). High severity is read from the rings large
// enough (rings_size_idx), the rest by cases_queue_opened_idx, and the cases not overdue yet,
// the youngest, by their due time (cases_queue_idx). After a cursor, the ranges before the
// cursor's are not read, the cursor's own from its opened_at and caseId ($9, $10: withCursor).
func queueSQL(q duplicate.CaseQuery) (sql string, withCursor bool) {
	var parts []string
	for _, p := range queueParts {
		if q.Severity != "" && (q.Severity == duplicate.SeverityHigh) != p.high {
			continue
		}
		cursor := ""
		if a := q.After; a != nil {
			if cmp := compareQueueParts(p, queuePart{a.Overdue, a.High}); cmp < 0 {
				continue
			} else if cmp == 0 {
				cursor, withCursor = `
  AND (c.opened_at, c.case_id) > ($9, $10::uuid)`, true
			}
		}
		from := `cases c LEFT JOIN LATERAL (` + caseRingSQL + `) r ON true`
		severity := `NOT ($2 > 0 AND coalesce(r.size, 0) >= $2)`
		// opened_at + 0 is no index's order: the ranges read from a small set and sorted, the high
		// rings' and the cases not overdue yet, must not be read as a walk of every open case.
		order := `c.opened_at, c.case_id`
		if p.high {
			// The rings large enough, first (the fence keeps the planner from walking the cases).
			from = `(SELECT ring_key, ring_id, size, open_alerts FROM rings WHERE $2 > 0 AND size >= $2 OFFSET 0) r
    JOIN cases c ON c.ring_key = r.ring_key`
			severity, order = `true`, `c.opened_at + interval '0', c.case_id`
		}
		due := `c.due_at <= $1`
		if !p.overdue {
			// The youngest cases: a range of cases_queue_idx.
			due, order = `c.due_at > $1 AND c.status IN ('open', 'in_review')`, `c.opened_at + interval '0', c.case_id`
		}
		parts = append(parts, `(SELECT `+caseColumns+`
FROM `+from+`
WHERE c.status IN ('open', 'in_review') AND c.status = ANY ($3::text[]) AND `+due+` AND `+severity+`
  AND ($4 = '' OR $4 = ANY (c.regions))
  AND ($5 = '' OR c.assignee = $5)
  AND (NOT $6 OR c.assignee IS NULL)
  AND ($7 = '' OR ($7 = 'high') = `+strconv.FormatBool(p.high)+`)
  AND (c.snoozed_until IS NULL OR c.snoozed_until <= $1 OR $5 <> '')`+cursor+`
ORDER BY `+order+`
LIMIT $8)`)
	}
	if len(parts) == 0 {
		return "", false // a cursor past every range the severity keeps: nothing more
	}
	return `SELECT * FROM (
` + strings.Join(parts, "\nUNION ALL\n") + `
) page
ORDER BY NOT overdue, NOT high, opened_at, case_id
LIMIT $8`, withCursor
}

// compareQueueParts orders two ranges as the queue does: overdue first, then high severity.
func compareQueueParts(a, b queuePart) int {
	key := func(p queuePart) int {
		k := 0
		if !p.overdue {
			k += 2
		}
		if !p.high {
			k++
		}
		return k
	}
	return key(a) - key(b)
}

// caseIDOf checks id's shape: a malformed caseId is a 400, not a 404.
func caseIDOf(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 {
		return "", duplicate.Invalid("caseId", "caseId must be a UUID such as 8abc1463-cea7-4c06-9255-77650933ca25")
	}
	return u.String(), nil
}

func unknownCase(id string) error {
	return duplicate.Errorf(duplicate.ENOTFOUND, "no case %s", id)
}

// liveCase returns the case id answers for: id itself, or the case it was merged into (followed
// to the end).
func liveCase(ctx context.Context, q querier, id string) (string, error) {
	for range 64 {
		var into *string
		err := q.QueryRow(ctx, `SELECT merged_into::text FROM cases WHERE case_id = $1`, id).Scan(&into)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", unknownCase(id)
		}
		if err != nil {
			return "", fmt.Errorf("select case: %w", err)
		}
		if into == nil {
			return id, nil
		}
		id = *into
	}
	return "", fmt.Errorf("case %s: merge chain too long", id)
}

// Case returns a case (or the case it was merged into) with its ring's members and its history.
func (s *Store) Case(ctx context.Context, id string) (duplicate.CaseDetail, error) {
	id, err := caseIDOf(id)
	if err != nil {
		return duplicate.CaseDetail{}, err
	}
	var d duplicate.CaseDetail
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		live, err := liveCase(ctx, tx, id)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+caseColumns+` FROM cases c LEFT JOIN LATERAL (`+caseRingSQL+`) r ON true WHERE c.case_id = $3`,
			time.Now(), s.policy.HighSeverityRingSize, live)
		if err != nil {
			return fmt.Errorf("select case: %w", err)
		}
		if d.Case, err = pgx.CollectExactlyOneRow(rows, scanCase); err != nil {
			return fmt.Errorf("select case: %w", err)
		}
		var splitFrom *string
		if err := tx.QueryRow(ctx, `SELECT split_from::text FROM cases WHERE case_id = $1`, live).Scan(&splitFrom); err != nil {
			return fmt.Errorf("select case: %w", err)
		}
		if splitFrom != nil {
			d.SplitFrom = *splitFrom
		}
		rows, err = tx.Query(ctx, `
SELECT m.user_id FROM cases c JOIN ring_members m ON m.ring_key = c.ring_key
WHERE c.case_id = $1 ORDER BY m.user_id LIMIT $2`, live, duplicate.MaxCaseMembers+1)
		if err != nil {
			return fmt.Errorf("select case members: %w", err)
		}
		if d.Members, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("select case members: %w", err)
		}
		if len(d.Members) > duplicate.MaxCaseMembers {
			d.Members, d.Truncated = d.Members[:duplicate.MaxCaseMembers], true
		}
		rows, err = tx.Query(ctx, `SELECT kind, author, text, at FROM case_events WHERE case_id = $1 ORDER BY event_id LIMIT 1000`, live)
		if err != nil {
			return fmt.Errorf("select case history: %w", err)
		}
		events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.CaseEvent, error) {
			var e duplicate.CaseEvent
			err := row.Scan(&e.Kind, &e.Author, &e.Text, &e.At)
			e.At = e.At.UTC()
			return e, err
		})
		if err != nil {
			return fmt.Errorf("select case history: %w", err)
		}
		d.Notes, d.History = []duplicate.CaseEvent{}, events
		for _, e := range events {
			if e.Kind == "note" {
				d.Notes = append(d.Notes, e)
			}
		}
		return nil
	})
	return d, err
}

// CaseOfRing returns the caseId of the ring ringID's case, "" when it has none.
func (s *Store) CaseOfRing(ctx context.Context, ringID string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `
SELECT c.case_id::text FROM rings r JOIN cases c ON c.ring_key = r.ring_key WHERE r.ring_id = $1 LIMIT 1`, ringID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("select the ring's case: %w", err)
	}
	return id, nil
}

// caseLock serialises the claims of one analyst, so that two claims at once cannot pass the cap.
func lockAnalystClaims(ctx context.Context, tx pgx.Tx, who string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('doppel-case-claims:' || $1, 0))`, who)
	if err != nil {
		return fmt.Errorf("lock claims: %w", err)
	}
	return nil
}

// checkCap answers ECASECAP when who already holds limit claimed cases (0: no cap).
func checkCap(ctx context.Context, tx pgx.Tx, who string, limit int) error {
	if limit <= 0 {
		return nil
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM cases WHERE assignee = $1 AND status = 'in_review'`, who).Scan(&n); err != nil {
		return fmt.Errorf("count claimed cases: %w", err)
	}
	if n >= limit {
		return duplicate.Errorf(duplicate.ECASECAP, "%s already holds %d claimed cases (DOPPEL_CASE_CAP is %d): decide or hand one over first", who, n, limit)
	}
	return nil
}

// lockCase returns case id (or the one it merged into) locked for update, with its status and
// assignee.
func lockCase(ctx context.Context, tx pgx.Tx, id string) (live, status, assignee string, err error) {
	if id, err = caseIDOf(id); err != nil {
		return "", "", "", err
	}
	if live, err = liveCase(ctx, tx, id); err != nil {
		return "", "", "", err
	}
	err = tx.QueryRow(ctx, `SELECT status, coalesce(assignee, '') FROM cases WHERE case_id = $1 FOR UPDATE`, live).Scan(&status, &assignee)
	if err != nil {
		return "", "", "", fmt.Errorf("lock case: %w", err)
	}
	return live, status, assignee, nil
}

func addCaseEvent(ctx context.Context, tx pgx.Tx, id, kind, author, text string) error {
	_, err := tx.Exec(ctx, `INSERT INTO case_events (case_id, from_case_id, kind, author, text) VALUES ($1, $1, $2, $3, $4)`,
		id, kind, author, text)
	if err != nil {
		return fmt.Errorf("record case %s: %w", kind, err)
	}
	return nil
}

// ClaimCase gives case id to who, refused (ECASECLAIMED) when another holds it; who's claimed
// cases are capped at limit (0: no cap). It returns the caseId that answered (the case it merged
// into, for a merged one).
func (s *Store) ClaimCase(ctx context.Context, id, who string, limit int) (string, error) {
	return s.assignCase(ctx, id, who, who, limit, true)
}

// AssignCase gives case id to assignee, recorded as done by by (a lead): it may take the case
// from whoever holds it. The assignee's claimed cases are capped at limit.
func (s *Store) AssignCase(ctx context.Context, id, assignee, by string, limit int) (string, error) {
	return s.assignCase(ctx, id, assignee, by, limit, false)
}

func (s *Store) assignCase(ctx context.Context, id, assignee, by string, limit int, claim bool) (string, error) {
	var live string
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockAnalystClaims(ctx, tx, assignee); err != nil {
			return err
		}
		var status, holder string
		var err error
		if live, status, holder, err = lockCase(ctx, tx, id); err != nil {
			return err
		}
		if status == duplicate.CaseClosed || status == duplicate.CaseMerged {
			return duplicate.Errorf(duplicate.ECASECLOSED, "case %s is %s: there is nothing to claim", live, status)
		}
		if holder == assignee {
			return nil
		}
		if claim && holder != "" {
			return duplicate.Errorf(duplicate.ECASECLAIMED, "case %s is claimed by %s: a lead can reassign it", live, holder)
		}
		if err := checkCap(ctx, tx, assignee, limit); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE cases SET assignee = $2, claimed_at = now(), status = 'in_review' WHERE case_id = $1`,
			live, assignee); err != nil {
			return fmt.Errorf("assign case: %w", err)
		}
		kind, text := "claimed", assignee+" claimed the case"
		if !claim {
			kind, text = "assigned", "assigned to "+assignee
			if holder != "" {
				text += " (was " + holder + ")"
			}
		}
		return addCaseEvent(ctx, tx, live, kind, by, text)
	})
	return live, err
}

// NextCase claims for who the top unclaimed, unsnoozed open case of the queue and returns its
// caseId; ENOCASE when none waits.
func (s *Store) NextCase(ctx context.Context, who string, limit int) (string, error) {
	var id string
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockAnalystClaims(ctx, tx, who); err != nil {
			return err
		}
		if err := checkCap(ctx, tx, who, limit); err != nil {
			return err
		}
		// The queue's top unclaimed open cases, a page at a time, and the first of them no other
		// claim holds (one being claimed at the same moment is skipped, not waited for).
		q := duplicate.CaseQuery{AsOf: time.Now(), Statuses: []string{duplicate.CaseOpen}, NoAssignee: true, Limit: nextCasePage}
		for id == "" {
			page, err := s.casePage(ctx, tx, q)
			if err != nil {
				return fmt.Errorf("select the next case: %w", err)
			}
			if len(page) == 0 {
				return duplicate.Errorf(duplicate.ENOCASE, "no unclaimed case is waiting")
			}
			rows, err := tx.Query(ctx, `SELECT case_id::text FROM cases
WHERE case_id = ANY ($1::uuid[]) AND status = 'open' AND assignee IS NULL FOR UPDATE SKIP LOCKED`, caseIDsOf(page))
			if err != nil {
				return fmt.Errorf("select the next case: %w", err)
			}
			free, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("select the next case: %w", err)
			}
			for _, c := range page {
				if slices.Contains(free, c.CaseID) {
					id = c.CaseID
					break
				}
			}
			last := page[len(page)-1]
			q.After = &duplicate.CaseCursor{Overdue: last.Overdue, High: last.Severity == duplicate.SeverityHigh,
				Oldest: last.OldestOpenAlertAt, CaseID: last.CaseID}
		}
		if _, err := tx.Exec(ctx, `UPDATE cases SET assignee = $2, claimed_at = now(), status = 'in_review' WHERE case_id = $1`,
			id, who); err != nil {
			return fmt.Errorf("claim case: %w", err)
		}
		return addCaseEvent(ctx, tx, id, "claimed", who, who+" claimed the case (next case)")
	})
	return id, err
}

// nextCasePage is how many of the queue's top cases NextCase looks at at once.
const nextCasePage = 20

func caseIDsOf(cases []duplicate.Case) []string {
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = c.CaseID
	}
	return ids
}

// AddCaseNote appends a note by author to case id and returns it.
func (s *Store) AddCaseNote(ctx context.Context, id, author, text string) (duplicate.CaseEvent, error) {
	var e duplicate.CaseEvent
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		live, _, _, err := lockCase(ctx, tx, id)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO case_events (case_id, from_case_id, kind, author, text) VALUES ($1, $1, 'note', $2, $3)
RETURNING kind, author, text, at`, live, author, text).Scan(&e.Kind, &e.Author, &e.Text, &e.At)
		e.At = e.At.UTC()
		if err != nil {
			return fmt.Errorf("add note: %w", err)
		}
		return nil
	})
	return e, err
}

// SnoozeCase hides case id from the queue until until, recorded as done by by.
func (s *Store) SnoozeCase(ctx context.Context, id string, until time.Time, by string) (string, error) {
	var live string
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		var err error
		if live, status, _, err = lockCase(ctx, tx, id); err != nil {
			return err
		}
		if status == duplicate.CaseClosed || status == duplicate.CaseMerged {
			return duplicate.Errorf(duplicate.ECASECLOSED, "case %s is %s: there is nothing to snooze", live, status)
		}
		if _, err := tx.Exec(ctx, `UPDATE cases SET snoozed_until = $2 WHERE case_id = $1`, live, until); err != nil {
			return fmt.Errorf("snooze case: %w", err)
		}
		return addCaseEvent(ctx, tx, live, "snoozed", by, "snoozed until "+until.UTC().Format(time.RFC3339))
	})
	return live, err
}

// recordRingDecision writes the case history's one entry for a ring decision (its pairs listed)
// and the ring's size at it, in the decision's transaction.
func recordRingDecision(ctx context.Context, tx pgx.Tx, ringKey string, decision duplicate.Decision, by string,
	decided []duplicate.PairKey, skipped int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %d pairs", decision, len(decided))
	if skipped > 0 {
		fmt.Fprintf(&b, " (%d already decided, left as they were)", skipped)
	}
	if len(decided) > 0 {
		b.WriteString(":")
	}
	for i, p := range decided {
		if i == 50 {
			fmt.Fprintf(&b, " and %d more", len(decided)-50)
			break
		}
		fmt.Fprintf(&b, " %s~%s", p.Low, p.High)
	}
	_, err := tx.Exec(ctx, `
WITH c AS (UPDATE cases SET decided_at = now(), decided_size = r.size FROM rings r
           WHERE cases.ring_key = $1 AND r.ring_key = $1 RETURNING cases.case_id)
INSERT INTO case_events (case_id, from_case_id, kind, author, text) SELECT case_id, case_id, 'decided', $2, $3 FROM c`,
		ringKey, by, b.String())
	if err != nil {
		return fmt.Errorf("record the ring decision in its case: %w", err)
	}
	return nil
}
