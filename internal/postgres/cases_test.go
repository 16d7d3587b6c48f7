package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// caseInvariants checks what the case upkeep promises after any change: every ring with an open
// alert has a live case (open or in review) following it, no live case's ring is without an open
// alert, no case follows a ring that is gone, and a merged case points at the case it joined.
func caseInvariants(t *testing.T, b bundle, step string) {
	t.Helper()
	var missing, orphans, merged, idle int
	require.NoError(t, b.pool.QueryRow(b.ctx, `
SELECT
    (SELECT count(*) FROM cases c JOIN rings r ON r.ring_key = c.ring_key
     WHERE c.status IN ('open', 'in_review') AND r.open_alerts = 0),
    (SELECT count(*) FROM rings r WHERE r.open_alerts > 0
       AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.ring_key = r.ring_key AND c.status IN ('open', 'in_review'))),
    (SELECT count(*) FROM cases c WHERE c.ring_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM rings r WHERE r.ring_key = c.ring_key)),
    (SELECT count(*) FROM cases c WHERE c.status = 'merged' AND (c.ring_key IS NOT NULL OR c.merged_into IS NULL))`).
		Scan(&idle, &missing, &orphans, &merged))
	require.Zero(t, idle, "%s: live cases whose ring has no open alert", step)
	require.Zero(t, missing, "%s: rings with open alerts and no live case", step)
	require.Zero(t, orphans, "%s: cases following a ring that is gone", step)
	require.Zero(t, merged, "%s: merged cases still on a ring or merged into nothing", step)
}

func caseOf(t *testing.T, b bundle, user string) string {
	t.Helper()
	var id string
	require.NoError(t, b.pool.QueryRow(b.ctx, `
SELECT c.case_id::text FROM ring_members m JOIN cases c ON c.ring_key = m.ring_key WHERE m.user_id = $1`, user).Scan(&id))
	return id
}

// A case follows its ring: when a larger ring absorbs it, its notes and assignee move to the
// survivor's case (both cases' notes visible, the survivor's assignee kept) and its old caseId
// answers with the survivor; when the ring splits, the part holding the ring's key keeps the case,
// notes and assignee intact, and the other part gets a new case that says where it came from.
func TestACaseFollowsItsRingThroughAMergeAndASplit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Ring A: a1-a2-a3 (key a1: the first account); ring B: b1-b2.
	_, err := b.store.SaveChecks(b.ctx, []duplicate.Check{check("s1", "a2", "a1"), check("s2", "a3", "a2"), check("s3", "b2", "b1")})
	require.NoError(t, err)
	caseInvariants(t, b, "two rings")
	caseA, caseB := caseOf(t, b, "a1"), caseOf(t, b, "b1")
	require.NotEqual(t, caseA, caseB)

	_, err = b.store.ClaimCase(b.ctx, caseA, "alice", 10)
	require.NoError(t, err)
	_, err = b.store.AddCaseNote(b.ctx, caseA, "alice", "a's note")
	require.NoError(t, err)
	_, err = b.store.ClaimCase(b.ctx, caseB, "bob", 10)
	require.NoError(t, err)
	_, err = b.store.AddCaseNote(b.ctx, caseB, "bob", "b's note")
	require.NoError(t, err)

	// b2 matches a3: ring A (3) absorbs ring B (2).
	_, err = b.store.SaveChecks(b.ctx, []duplicate.Check{check("s4", "b2", "a3")})
	require.NoError(t, err)
	caseInvariants(t, b, "merged")
	require.Equal(t, caseA, caseOf(t, b, "b1"), "the merged ring's case is the survivor's")
	d, err := b.store.Case(b.ctx, caseB)
	require.NoError(t, err)
	require.Equal(t, caseA, d.CaseID, "the absorbed case's id answers with the case it merged into")
	require.Equal(t, "alice", d.Assignee, "the survivor's assignee is kept")
	require.Equal(t, 5, d.Size)
	require.ElementsMatch(t, []string{"a's note", "b's note"}, texts(d.Notes))
	require.Contains(t, kinds(d.History), "merged")

	// Clearing b2~a3 splits the ring again: a1's side keeps the key and the case.
	_, err = b.store.AddReview(b.ctx, review("b2", "a3", duplicate.DecisionFalsePositive))
	require.NoError(t, err)
	caseInvariants(t, b, "split")
	require.Equal(t, caseA, caseOf(t, b, "a1"))
	d, err = b.store.Case(b.ctx, caseA)
	require.NoError(t, err)
	require.Equal(t, "alice", d.Assignee)
	require.Equal(t, []string{"a1", "a2", "a3"}, d.Members)
	require.ElementsMatch(t, []string{"a's note", "b's note"}, texts(d.Notes), "no note lost in the split")
	other := caseOf(t, b, "b1")
	require.NotEqual(t, caseA, other)
	od, err := b.store.Case(b.ctx, other)
	require.NoError(t, err)
	require.Equal(t, caseA, od.SplitFrom)
	require.Equal(t, []string{"b1", "b2"}, od.Members)
	require.Contains(t, texts(od.History), "split from case "+caseA)
}

// The cap on claimed cases, claims of a held case, and the next case.
func TestClaimsAreCappedAndNextCaseTakesTheTopUnclaimed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.SaveChecks(b.ctx, []duplicate.Check{check("s1", "a2", "a1"), check("s2", "b2", "b1"), check("s3", "c2", "c1")})
	require.NoError(t, err)
	ca, cb := caseOf(t, b, "a1"), caseOf(t, b, "b1")
	_, err = b.store.ClaimCase(b.ctx, ca, "alice", 1)
	require.NoError(t, err)
	_, err = b.store.ClaimCase(b.ctx, ca, "alice", 1)
	require.NoError(t, err, "claiming one's own case again changes nothing")
	_, err = b.store.ClaimCase(b.ctx, cb, "alice", 1)
	require.Equal(t, duplicate.ECASECAP, duplicate.ErrorCode(err))
	_, err = b.store.ClaimCase(b.ctx, ca, "bob", 1)
	require.Equal(t, duplicate.ECASECLAIMED, duplicate.ErrorCode(err))
	_, err = b.store.AssignCase(b.ctx, ca, "bob", "lead", 1)
	require.NoError(t, err, "a lead reassigns")
	_, err = b.store.AssignCase(b.ctx, ca, "lead", "lead", 1)
	require.NoError(t, err, "a lead may take a case another holds")
	_, err = b.store.AssignCase(b.ctx, ca, "bob", "lead", 1)
	require.NoError(t, err)
	_, err = b.store.NextCase(b.ctx, "bob", 1)
	require.Equal(t, duplicate.ECASECAP, duplicate.ErrorCode(err))
	id, err := b.store.NextCase(b.ctx, "carol", 5)
	require.NoError(t, err)
	first, err := b.store.Cases(b.ctx, duplicate.CaseQuery{NoAssignee: true, AsOf: time.Now(), Limit: 10})
	require.NoError(t, err)
	require.NotContains(t, caseIDs(first), id)
	_, err = b.store.NextCase(b.ctx, "carol", 5)
	require.NoError(t, err)
	_, err = b.store.NextCase(b.ctx, "carol", 5)
	require.Equal(t, duplicate.ENOCASE, duplicate.ErrorCode(err))
	_, err = b.store.Case(b.ctx, "00000000-0000-0000-0000-000000000000")
	require.Equal(t, duplicate.ENOTFOUND, duplicate.ErrorCode(err))
}

// The queue's order: overdue first, then high severity, then oldest; and its filters.
func TestTheQueueIsOverdueFirstThenSeverityThenOldest(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	b := bundle{pool: pool, ctx: t.Context(), store: postgres.NewStore(pool,
		postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 3}),
		postgres.WithCases(duplicate.CaseSLA{Default: 24 * time.Hour, Regions: map[string]time.Duration{"th": time.Hour}}))}
	now := time.Now().UTC().Truncate(time.Second)
	at := func(c duplicate.Check, region string, ago time.Duration) duplicate.Check {
		c.Region, c.CheckedAt = region, now.Add(-ago)
		return c
	}
	_, err := b.store.SaveChecks(b.ctx, []duplicate.Check{
		at(check("s1", "n2", "n1"), "ph", 10*time.Hour),       // normal, not overdue, older
		at(check("s2", "h2", "h1", "h3"), "ph", 2*time.Hour),  // high, not overdue
		at(check("s3", "o2", "o1"), "th", 2*time.Hour),        // overdue: th's SLA is an hour
		at(check("s4", "m2", "m1"), "ph", 1*time.Hour),        // normal, newest
		at(check("s5", "p2", "p1", "p3"), "ph", 30*time.Hour), // high and overdue
	})
	require.NoError(t, err)
	cases, err := b.store.Cases(b.ctx, duplicate.CaseQuery{AsOf: now, Limit: 10})
	require.NoError(t, err)
	var order []string
	for _, c := range cases {
		d, err := b.store.Case(b.ctx, c.CaseID)
		require.NoError(t, err)
		order = append(order, d.Members[0])
	}
	require.Equal(t, []string{"p1", "o1", "h1", "n1", "m1"}, order)
	require.True(t, cases[0].Overdue && cases[0].Severity == duplicate.SeverityHigh)
	require.Equal(t, []string{"th"}, cases[1].Regions)
	require.Equal(t, now.Add(-2*time.Hour+time.Hour), cases[1].DueAt, "th's own SLA")
	require.Equal(t, now.Add(-10*time.Hour+24*time.Hour), cases[3].DueAt, "the default SLA")

	// Paging by the sort key gives the same order.
	var paged []string
	q := duplicate.CaseQuery{AsOf: now, Limit: 2}
	for {
		page, err := b.store.Cases(b.ctx, q)
		require.NoError(t, err)
		paged = append(paged, caseIDs(page)...)
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.After = &duplicate.CaseCursor{Overdue: last.Overdue, High: last.Severity == duplicate.SeverityHigh,
			Oldest: last.OldestOpenAlertAt, CaseID: last.CaseID}
	}
	require.Equal(t, caseIDs(cases), paged)

	high, err := b.store.Cases(b.ctx, duplicate.CaseQuery{AsOf: now, Limit: 10, Severity: duplicate.SeverityHigh})
	require.NoError(t, err)
	require.Len(t, high, 2)
	th, err := b.store.Cases(b.ctx, duplicate.CaseQuery{AsOf: now, Limit: 10, Region: "th"})
	require.NoError(t, err)
	require.Equal(t, []string{cases[1].CaseID}, caseIDs(th))

	// A snoozed case leaves the queue until its time.
	_, err = b.store.SnoozeCase(b.ctx, cases[0].CaseID, now.Add(time.Hour), "alice")
	require.NoError(t, err)
	after, err := b.store.Cases(b.ctx, duplicate.CaseQuery{AsOf: now, Limit: 10})
	require.NoError(t, err)
	require.NotContains(t, caseIDs(after), cases[0].CaseID)
}

// A ring decision leaves pairs already decided as they were unless asked, writes one history
// entry, and closes the case once no alert is open.
func TestARingDecisionSkipsDecidedPairsAndClosesTheCase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.SaveChecks(b.ctx, []duplicate.Check{check("s1", "a2", "a1"), check("s2", "a3", "a2", "a1")})
	require.NoError(t, err)
	_, err = b.store.AddReview(b.ctx, review("a1", "a2", duplicate.DecisionSamePerson))
	require.NoError(t, err)
	id := caseOf(t, b, "a1")
	d, err := b.store.Case(b.ctx, id)
	require.NoError(t, err)
	n, err := b.store.DecideRing(b.ctx, d.RingID, duplicate.DecisionConfirmedFraud, "ring", "alice", false)
	require.NoError(t, err)
	require.Equal(t, 2, n, "a1~a2 was decided already")
	var latest string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT decision FROM link_reviews WHERE user_id_low = 'a1' AND user_id_high = 'a2'
ORDER BY review_id DESC LIMIT 1`).Scan(&latest))
	require.Equal(t, string(duplicate.DecisionSamePerson), latest)
	d, err = b.store.Case(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, duplicate.CaseClosed, d.Status)
	var decided []string
	for _, e := range d.History {
		if e.Kind == "decided" {
			decided = append(decided, e.Author+": "+e.Text)
		}
	}
	require.Equal(t, []string{"alice: confirmed_fraud on 2 pairs (1 already decided, left as they were): a1~a3 a2~a3"}, decided)
	caseInvariants(t, b, "decided")

	// Closed cases are listed newest first, paged by the same cursor.
	_, err = b.store.SaveChecks(b.ctx, []duplicate.Check{check("s3", "b2", "b1")})
	require.NoError(t, err)
	newer := caseOf(t, b, "b1")
	_, err = b.store.AddReview(b.ctx, review("b1", "b2", duplicate.DecisionConfirmedFraud))
	require.NoError(t, err)
	closed, err := b.store.Cases(b.ctx, duplicate.CaseQuery{Statuses: []string{duplicate.CaseClosed}, AsOf: time.Now(), Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []string{newer}, caseIDs(closed))
	closed, err = b.store.Cases(b.ctx, duplicate.CaseQuery{Statuses: []string{duplicate.CaseClosed}, AsOf: time.Now(), Limit: 5,
		After: &duplicate.CaseCursor{Oldest: closed[0].OldestOpenAlertAt, CaseID: closed[0].CaseID}})
	require.NoError(t, err)
	require.Equal(t, []string{id}, caseIDs(closed))
}

func texts(es []duplicate.CaseEvent) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Text)
	}
	return out
}

func kinds(es []duplicate.CaseEvent) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

func caseIDs(cs []duplicate.Case) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.CaseID)
	}
	return out
}

// The queue's page reads the open cases through cases_queue_idx and each one's ring by primary
// key: never the alerts, never the closed cases or the rings whole. Measured on 200,000 rings and
// cases (the rings of about a million checks), 2,000 of them open.
func TestTheCaseQueueIsAnIndexScanAtScale(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// 200,000 cases, 50,000 of them open and nearly all overdue (a year's backlog); one ring in a
	// thousand is high severity.
	_, err := b.pool.Exec(b.ctx, `
INSERT INTO rings (ring_key, smallest_user_id, size, open_alerts)
SELECT 'u' || i, 'u' || i, CASE WHEN i % 1000 = 0 THEN 9 ELSE 2 END, CASE WHEN i % 4 = 0 THEN 1 ELSE 0 END FROM generate_series(1, 200000) AS i;
INSERT INTO cases (case_id, ring_key, status, regions, opened_at, due_at)
SELECT gen_random_uuid(), 'u' || i, CASE WHEN i % 4 = 0 THEN 'open' ELSE 'closed' END, '{ph}',
    now() - (i * 60 || ' seconds')::interval, now() - (i * 60 || ' seconds')::interval + interval '24 hours'
FROM generate_series(1, 200000) AS i;
ANALYZE rings; ANALYZE cases;`)
	require.NoError(t, err)
	explain := func(name string, sql string, args ...any) string {
		rows, err := b.pool.Query(b.ctx, "EXPLAIN (ANALYZE, COSTS OFF) "+sql, append([]any{pgx.QueryExecModeExec}, args...)...)
		require.NoError(t, err)
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		text := strings.Join(plan, "\n")
		t.Logf("%s:\n%s", name, text)
		require.NotContains(t, text, "Seq Scan", name)
		require.NotContains(t, text, "alerts", name)
		return text
	}
	now := time.Now()
	open := []string{duplicate.CaseOpen, duplicate.CaseInReview}
	first, _ := postgres.QueueSQL(duplicate.CaseQuery{})
	plan := explain("the queue's first page", first, now, 5, open, "", "", false, "", 51)
	for _, index := range []string{"cases_queue_opened_idx", "cases_queue_idx", "rings_size_idx"} {
		require.Contains(t, plan, index, "each range by its index")
	}
	require.Equal(t, 2, strings.Count(plan, "rings_size_idx"), "both high ranges from the large rings")
	// The overdue normal cases are read oldest first and no further than the page: not the 49,000
	// overdue ones sorted.
	require.NotRegexp(t, `rows=([1-9][0-9]{3,})`, plan, "no step handles thousands of rows")
	next, withCursor := postgres.QueueSQL(duplicate.CaseQuery{After: &duplicate.CaseCursor{Overdue: true, High: false,
		Oldest: now.Add(-100 * 24 * time.Hour), CaseID: "00000000-0000-0000-0000-000000000000"}})
	require.True(t, withCursor)
	plan = explain("a later page, from inside the overdue normal cases", next, now, 5, open, "", "", false, "", 51,
		now.Add(-100*24*time.Hour), "00000000-0000-0000-0000-000000000000")
	require.Equal(t, 1, strings.Count(plan, "rings_size_idx"), "the overdue high cases come before the cursor: not read; the others high are")
	require.NotRegexp(t, `rows=([1-9][0-9]{3,})`, plan, "no step handles thousands of rows")
	require.Contains(t, explain("the closed cases' second page", postgres.CasesSQL(true, true),
		now, 5, []string{duplicate.CaseClosed}, "", "", false, "", 51, false, false, now.Add(-time.Hour), "00000000-0000-0000-0000-000000000000"),
		"cases_closed_idx")
}

// A split that leaves the open alerts on the part without the ring's key: the case that stays
// with the key closes, the new case of the other part is open.
func TestASplitClosesTheCaseOfAPartWithNoOpenAlert(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.SaveChecks(b.ctx, []duplicate.Check{check("s1", "a2", "a1"), check("s2", "a3", "a2"), check("s3", "a4", "a3")})
	require.NoError(t, err)
	id := caseOf(t, b, "a1")
	_, err = b.store.AddReview(b.ctx, review("a1", "a2", duplicate.DecisionConfirmedFraud))
	require.NoError(t, err)
	_, err = b.store.AddReview(b.ctx, review("a2", "a3", duplicate.DecisionFalsePositive))
	require.NoError(t, err)
	caseInvariants(t, b, "split")
	d, err := b.store.Case(b.ctx, id)
	require.NoError(t, err)
	require.Equal(t, []string{"a1", "a2"}, d.Members)
	require.Equal(t, duplicate.CaseClosed, d.Status)
	other, err := b.store.Case(b.ctx, caseOf(t, b, "a4"))
	require.NoError(t, err)
	require.Equal(t, duplicate.CaseOpen, other.Status)
	require.Equal(t, id, other.SplitFrom)
}
