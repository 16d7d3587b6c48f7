package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/migrations"
)

type bundle struct {
	pool  *pgxpool.Pool
	store *postgres.Store
	ctx   context.Context
}

func setup(t *testing.T) bundle {
	t.Helper()
	_, pool := testinfra.Database(t)
	return bundle{pool: pool, store: postgres.NewStore(pool), ctx: context.Background()}
}

func check(sig, user string, matched ...string) duplicate.Check {
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	return duplicate.Check{SignatureID: sig, UserID: user, EventType: duplicate.EventTypeCompleted,
		Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched, VendorTransactionID: "tx-" + sig,
		Source: duplicate.Source{Topic: "idv.completed", Partition: 1, Offset: 7}, CheckedAt: time.Now()}
}

func linkRows(t *testing.T, b bundle) map[string]int {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT user_id_low || '-' || user_id_high, seen_count FROM duplicate_links`)
	require.NoError(t, err)
	out := map[string]int{}
	var pair string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&pair, &n}, func() error { out[pair] = n; return nil })
	require.NoError(t, err)
	return out
}

func TestSaveCheckStoresLinksOncePerPairAndAlertsOnNewOnes(t *testing.T) {
	t.Parallel()
	b := setup(t)

	saved, err := b.store.SaveCheck(b.ctx, check("s1", "carol", "alice", "bob"))
	require.NoError(t, err)
	require.True(t, saved.Stored)
	require.Equal(t, []string{"alice", "bob"}, saved.NewLinks)
	require.NotNil(t, saved.Alert)

	// The same check again (a redelivered event) changes nothing.
	saved, err = b.store.SaveCheck(b.ctx, check("s1", "carol", "alice", "bob"))
	require.NoError(t, err)
	require.False(t, saved.Stored)
	require.Nil(t, saved.Alert)

	// Alice's own check sees carol (known) and dave (new), from the other side of the pair.
	saved, err = b.store.SaveCheck(b.ctx, check("s2", "alice", "carol", "dave"))
	require.NoError(t, err)
	require.Equal(t, []string{"dave"}, saved.NewLinks)
	require.Equal(t, []string{"carol", "dave"}, saved.Alert.MatchedUserIDs)

	require.Equal(t, map[string]int{"alice-carol": 2, "bob-carol": 1, "alice-dave": 1}, linkRows(t, b))

	var alerts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM alerts`).Scan(&alerts))
	require.Equal(t, 2, alerts)

	outcome, final, err := b.store.FinalOutcome(b.ctx, "s1")
	require.NoError(t, err)
	require.True(t, final)
	require.Equal(t, duplicate.OutcomeDuplicatesFound, outcome)
	_, final, err = b.store.FinalOutcome(b.ctx, "unknown")
	require.NoError(t, err)
	require.False(t, final)
}

func TestDuplicateAccountsViewHasBothDirections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.SaveCheck(b.ctx, check("s1", "u2", "u1", "u3"))
	require.NoError(t, err)

	linked := func(user string) []string {
		rows, err := b.pool.Query(b.ctx,
			`SELECT duplicate_user_id FROM duplicate_accounts WHERE user_id = $1 ORDER BY 1`, user)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return ids
	}
	require.Equal(t, []string{"u1", "u3"}, linked("u2"))
	require.Equal(t, []string{"u2"}, linked("u1"))
	require.Equal(t, []string{"u2"}, linked("u3"))
}

func TestAFailedCheckIsReplacedButAFinalOneIsNot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	failed := duplicate.Check{SignatureID: "s1", EventType: "COMPLETED", Outcome: duplicate.OutcomeFailed,
		FailureReason: "vendor_rejected: PARAMETER_ERROR", CheckedAt: time.Now()}
	saved, err := b.store.SaveCheck(b.ctx, failed)
	require.NoError(t, err)
	require.True(t, saved.Stored)
	_, final, err := b.store.FinalOutcome(b.ctx, "s1")
	require.NoError(t, err)
	require.False(t, final)

	saved, err = b.store.SaveCheck(b.ctx, check("s1", "u1", "u2"))
	require.NoError(t, err)
	require.True(t, saved.Stored, "a later success replaces the failure")

	saved, err = b.store.SaveCheck(b.ctx, failed)
	require.NoError(t, err)
	require.False(t, saved.Stored, "a failure never replaces a final outcome")
	var reason *string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT failure_reason FROM idv_checks WHERE signature_id='s1'`).Scan(&reason))
	require.Nil(t, reason)
}

// TestStoredOutcomesAreReplacedExactlyWhenNotFinal keeps the store's SQL and Outcome.Final in
// step: every stored outcome that is not final is replaced by the next check of its signatureId, one
// by one and in a group-commit batch, and a final one never is.
func TestStoredOutcomesAreReplacedExactlyWhenNotFinal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batcher := postgres.NewBatcher(b.store, 16, 1, 0)
	all := []duplicate.Outcome{duplicate.OutcomeDuplicatesFound, duplicate.OutcomeNoDuplicates,
		duplicate.OutcomeNotPassed, duplicate.OutcomeSkipped, duplicate.OutcomeIncomplete, duplicate.OutcomeFailed}
	var later []duplicate.Check
	for _, o := range all {
		for _, path := range []string{"alone", "batch"} {
			sig := string(o) + "-" + path
			first := check(sig, "u-"+sig)
			first.Outcome = o
			saved, err := b.store.SaveCheck(b.ctx, first)
			require.NoError(t, err)
			require.True(t, saved.Stored)
			stored, final, err := batcher.FinalOutcome(b.ctx, sig)
			require.NoError(t, err)
			require.Equal(t, o, stored)
			require.Equal(t, o.Final(), final, "%s: the look-up agrees with Outcome.Final", o)

			next := check(sig, "u-"+sig, "u-other")
			if path == "alone" {
				saved, err = b.store.SaveCheck(b.ctx, next)
				require.NoError(t, err)
				require.Equal(t, !o.Final(), saved.Stored, "%s replaced by the next check", o)
			} else {
				later = append(later, next)
			}
		}
	}
	// The batch path: every replacement at once, in one transaction.
	var wg sync.WaitGroup
	stored := make([]bool, len(later))
	for i, c := range later {
		wg.Go(func() {
			saved, err := batcher.SaveCheck(b.ctx, c)
			require.NoError(t, err)
			stored[i] = saved.Stored
		})
	}
	wg.Wait()
	for i, c := range later {
		o := all[i]
		require.Equal(t, !o.Final(), stored[i], "%s replaced in a batch", c.SignatureID)
	}
	rows, err := b.pool.Query(b.ctx, `SELECT signature_id, outcome FROM idv_checks`)
	require.NoError(t, err)
	var sig, outcome string
	_, err = pgx.ForEachRow(rows, []any{&sig, &outcome}, func() error {
		o := duplicate.Outcome(sig[:strings.LastIndex(sig, "-")])
		want := o
		if !o.Final() {
			want = duplicate.OutcomeDuplicatesFound
		}
		require.Equal(t, string(want), outcome, sig)
		return nil
	})
	require.NoError(t, err)
}

func TestConcurrentChecksOnOneRingNeitherDeadlockNorDoubleLinks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	users := []string{"a", "b", "c", "d", "e", "f"}
	var wg sync.WaitGroup
	newLinks := make(chan string, 100)
	for i, u := range users {
		others := make([]string, 0, len(users)-1)
		for _, o := range users {
			if o != u {
				others = append(others, o)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; ; attempt++ {
				saved, err := b.store.SaveCheck(b.ctx, check(fmt.Sprintf("s%d", i), u, others...))
				if err != nil && attempt < 5 {
					continue // a serialization failure is retried, as the pipeline does
				}
				require.NoError(t, err)
				for _, n := range saved.NewLinks {
					lo, hi := duplicate.Pair(u, n)
					newLinks <- lo + "-" + hi
				}
				return
			}
		}()
	}
	wg.Wait()
	close(newLinks)
	seen := map[string]int{}
	for p := range newLinks {
		seen[p]++
	}
	require.Len(t, seen, 15, "6 users make 15 pairs")
	for p, n := range seen {
		require.Equal(t, 1, n, "pair %s reported new twice", p)
	}
	for p, n := range linkRows(t, b) {
		require.Equal(t, 2, n, "pair %s seen from both sides", p)
	}
}

func TestPublishAlertsMarksOnlyWhatWasPublished(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 5 {
		_, err := b.store.SaveCheck(b.ctx, check(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i), "shared"))
		require.NoError(t, err)
	}
	// Only s0 links u0-shared first... every check links a new pair: five alerts.
	backlog, _, err := b.store.OutboxBacklog(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, backlog)

	n, err := b.store.PublishAlerts(b.ctx, 3, func(context.Context, []duplicate.Alert) error {
		return errors.New("broker down")
	})
	require.Error(t, err)
	require.Zero(t, n)
	backlog, _, err = b.store.OutboxBacklog(b.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, backlog, "a failed publish marks nothing")

	var first []duplicate.Alert
	n, err = b.store.PublishAlerts(b.ctx, 3, func(_ context.Context, a []duplicate.Alert) error {
		first = a
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.Equal(t, "s0", first[0].SignatureID, "oldest first")
	require.Equal(t, duplicate.AlertType, first[0].Type)
	require.Equal(t, []string{"shared"}, first[0].NewMatchedUserIDs)

	n, err = b.store.PublishAlerts(b.ctx, 10, func(_ context.Context, a []duplicate.Alert) error {
		for _, x := range a {
			for _, y := range first {
				require.NotEqual(t, x.AlertID, y.AlertID, "a published alert was claimed again")
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	backlog, _, err = b.store.OutboxBacklog(b.ctx)
	require.NoError(t, err)
	require.Zero(t, backlog)
}

// Alerts found on the alert topic are marked without waiting for a poll that holds one of them
// (the poll itself may be asking): that one is returned, still unmarked, and the poll marks it.
func TestMarkFoundPublishedSkipsTheAlertsAPollHolds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 4 {
		saved, err := b.store.SaveCheck(b.ctx, check(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i), "shared"))
		require.NoError(t, err)
		ids = append(ids, saved.Alert.AlertID)
	}
	notAnAlert := uuid.NewString() // a callbacks_missing alert, or one already gone

	n, err := b.store.PublishAlerts(b.ctx, 1, func(ctx context.Context, claimed []duplicate.Alert) error {
		require.Equal(t, ids[0], claimed[0].AlertID)
		marked, held, err := b.store.MarkFoundPublished(ctx, []string{ids[0], ids[1], ids[2], notAnAlert})
		require.NoError(t, err)
		require.Equal(t, 2, marked)
		require.Equal(t, []string{ids[0]}, held, "held by this poll, which marks it")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 1, n)

	rows, err := b.pool.Query(b.ctx, `SELECT alert_id::text FROM alerts WHERE published_at IS NULL`)
	require.NoError(t, err)
	unmarked, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{ids[3]}, unmarked, "only the alert nobody published is left")
	var attempts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT publish_attempts FROM alerts WHERE alert_id = $1`, ids[1]).Scan(&attempts))
	require.Zero(t, attempts, "found on the topic, not published by this process")

	marked, held, err := b.store.MarkFoundPublished(b.ctx, ids[:3])
	require.NoError(t, err)
	require.Zero(t, marked, "already marked")
	require.Empty(t, held)
}

func TestMigrateDownAndUpAgain(t *testing.T) {
	t.Parallel()
	dbURL, _ := testinfra.Database(t)
	m, err := postgres.NewMigrator(dbURL)
	require.NoError(t, err)
	defer m.Close()
	v, dirty, ok, err := m.Version()
	require.NoError(t, err)
	require.True(t, ok)
	require.False(t, dirty)
	latest := v
	// Every migration goes down cleanly, newest first, until none is applied.
	for steps := 0; ok; steps++ {
		require.Less(t, steps, int(latest), "more down steps than migrations")
		require.NoError(t, m.Down())
		_, _, ok, err = m.Version()
		require.NoError(t, err)
	}
	require.NoError(t, m.Up())
	v, _, _, err = m.Version()
	require.NoError(t, err)
	require.Equal(t, latest, v)
	require.NoError(t, m.Up(), "up with nothing to do is not an error")
}

// migrateTo steps the schema down to version v.
func migrateTo(t *testing.T, m *postgres.Migrator, v uint) {
	t.Helper()
	for {
		got, _, _, err := m.Version()
		require.NoError(t, err)
		if got <= v {
			require.EqualValues(t, v, got)
			return
		}
		require.NoError(t, m.Down())
	}
}

// Before migration 3 a verdict still to come was stored as not_passed, which counted as final: the
// migration makes those checks incomplete, so their next COMPLETED is checked.
func TestMigration3TurnsVerdictsStillToComeIntoIncomplete(t *testing.T) {
	t.Parallel()
	dbURL, pool := testinfra.Database(t)
	ctx := context.Background()
	m, err := postgres.NewMigrator(dbURL)
	require.NoError(t, err)
	defer m.Close()
	outcomes := func() map[string]string {
		rows, err := pool.Query(ctx, `SELECT signature_id, outcome FROM idv_checks`)
		require.NoError(t, err)
		out := map[string]string{}
		var sig, o string
		_, err = pgx.ForEachRow(rows, []any{&sig, &o}, func() error { out[sig] = o; return nil })
		require.NoError(t, err)
		return out
	}

	migrateTo(t, m, 2)
	_, err = pool.Exec(ctx, `
INSERT INTO idv_checks (signature_id, user_id, event_type, outcome, overall_result) VALUES
    ('waiting', 'u1', 'COMPLETED', 'not_passed', 'INCOMPLETE'),
    ('refused', 'u2', 'COMPLETED', 'not_passed', 'FAIL'),
    ('notice', 'u3', 'SUBMIT_COMPLETED', 'skipped', NULL)`)
	require.NoError(t, err)
	require.NoError(t, m.Up())
	require.Equal(t, map[string]string{"waiting": "incomplete", "refused": "not_passed", "notice": "skipped"}, outcomes())

	migrateTo(t, m, 2)
	require.Equal(t, map[string]string{"waiting": "not_passed", "refused": "not_passed", "notice": "skipped"}, outcomes())
	_, err = pool.Exec(ctx, `INSERT INTO idv_checks (signature_id, event_type, outcome) VALUES ('x', 'COMPLETED', 'incomplete')`)
	require.Error(t, err, "version 2 does not know the outcome")
	require.NoError(t, m.Up())
}

func TestAStartUpErrorNeverShowsAQueryPassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := postgres.Connect(ctx, "postgres://doppel@127.0.0.1:1/doppel?password=hunter4&connect_timeout=2", 1)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter4")
	_, err = postgres.NewMigrator("postgres://doppel@127.0.0.1:1/doppel?password=hunter4&connect_timeout=2")
	if err != nil {
		require.NotContains(t, err.Error(), "hunter4")
	}
}

func TestBatcherStoresConcurrentChecksExactlyAsOneByOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	batcher := postgres.NewBatcher(b.store, 16, 2, 0)
	const rings = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	newPairs := map[string]int{}
	for r := range rings {
		for m := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user := fmt.Sprintf("r%d-m%d", r, m)
				var others []string
				for o := range 3 {
					if o != m {
						others = append(others, fmt.Sprintf("r%d-m%d", r, o))
					}
				}
				saved, err := batcher.SaveCheck(b.ctx, check("sig-"+user, user, others...))
				require.NoError(t, err)
				require.True(t, saved.Stored)
				mu.Lock()
				for _, n := range saved.NewLinks {
					lo, hi := duplicate.Pair(user, n)
					newPairs[lo+"-"+hi]++
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	require.Len(t, newPairs, rings*3, "three pairs per ring")
	for p, n := range newPairs {
		require.Equal(t, 1, n, "pair %s announced as new twice", p)
	}
	links := linkRows(t, b)
	require.Len(t, links, rings*3)
	for p, n := range links {
		require.Equal(t, 2, n, "pair %s", p)
	}

	// A check that cannot be stored fails alone; its batch neighbours are stored.
	bad := check("sig-bad", "u-bad", "u-bad-2")
	bad.Outcome = "not-an-outcome"
	var wg2 sync.WaitGroup
	errs := make([]error, 5)
	for i := range 5 {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			c := check(fmt.Sprintf("sig-ok-%d", i), fmt.Sprintf("u-ok-%d", i))
			if i == 2 {
				c = bad
			}
			_, errs[i] = batcher.SaveCheck(b.ctx, c)
		}()
	}
	wg2.Wait()
	for i, err := range errs {
		if i == 2 {
			require.Error(t, err)
		} else {
			require.NoError(t, err)
		}
	}
}

// A linking batch is one transaction spread over pipelined round trips: when a statement of it
// fails, nothing of it is stored and its connection is rolled back and reused, not left inside a
// failed transaction (which the pool would close, or the next batch would inherit).
func TestAFailedLinkingBatchStoresNothingAndLeavesItsConnectionUsable(t *testing.T) {
	t.Parallel()
	dbURL, _ := testinfra.Database(t)
	ctx := context.Background()
	pool, err := postgres.Connect(ctx, dbURL, 1)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := postgres.NewStore(pool)

	// PostgreSQL refuses a NUL byte in text: the check insert fails inside the pipeline.
	_, err = store.SaveCheck(ctx, check("bad", "mallory\x00", "bob"))
	require.Error(t, err)

	saved, err := store.SaveCheck(ctx, check("good", "alice", "bob"))
	require.NoError(t, err)
	require.True(t, saved.Stored)
	require.NotNil(t, saved.Alert)
	require.EqualValues(t, 1, pool.Stat().NewConnsCount(), "the one connection was reused")

	var checks, links int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM idv_checks), (SELECT count(*) FROM duplicate_links)`).Scan(&checks, &links))
	require.Equal(t, 1, checks, "only the good check")
	require.Equal(t, 1, links, "only alice-bob")
}

// overflowOf returns the stored overflow of a check (nil when it has none).
func overflowOf(t *testing.T, b bundle, sig string) []string {
	t.Helper()
	var ids []string
	err := b.pool.QueryRow(b.ctx, `SELECT user_ids FROM check_overflow WHERE signature_id = $1`, sig).Scan(&ids)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	require.NoError(t, err)
	return ids
}

// A face farm as the vendor answers it, each member naming every member before it: a check
// links its first duplicate.MaxPairsPerCheck accounts pair by pair and joins the rest to its ring,
// on the single-check and on the batch path; the rest is stored once per check; a re-verification
// stays quiet unless its answer brings an account new to the ring.
func TestAFaceFarmPastTheBoundLinksTheFirstAccountsAndJoinsTheRestToTheRing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const k = duplicate.MaxPairsPerCheck + 30
	members := make([]string, k)
	for i := range members {
		members[i] = fmt.Sprintf("farm-%03d", i)
	}
	alerts := make([]*duplicate.Alert, k)
	for i := range k - 10 {
		saved, err := b.store.SaveCheck(b.ctx, check(fmt.Sprintf("s%03d", i), members[i], members[:i]...))
		require.NoError(t, err)
		alerts[i] = saved.Alert
	}
	batcher := postgres.NewBatcher(b.store, 16, 1, 50*time.Millisecond)
	var wg sync.WaitGroup
	for i := k - 10; i < k; i++ {
		wg.Go(func() {
			// Each of the last ten is named by none of the others: the vendor answers a search
			// with what completed before it, and these complete together.
			saved, err := batcher.SaveCheck(b.ctx, check(fmt.Sprintf("s%03d", i), members[i], members[:k-10]...))
			require.NoError(t, err)
			alerts[i] = saved.Alert
		})
	}
	wg.Wait()

	wantLinks := 0
	for i := range k {
		wantLinks += min(min(i, k-10), duplicate.MaxPairsPerCheck)
	}
	require.Len(t, linkRows(t, b), wantLinks, "no pair row past each check's bound")
	size, ringMembers := ringOf(t, b, members[0])
	require.Equal(t, k, size)
	require.Equal(t, members, ringMembers, "every account is in the ring")
	for i := 1; i < k; i++ {
		require.NotNil(t, alerts[i], "member %d raised an alert", i)
		require.Equal(t, min(i, k-10), alerts[i].MatchedCount)
	}
	largest := 0
	for _, a := range alerts[k-10:] {
		largest = max(largest, a.RingSize)
	}
	require.Equal(t, k, largest, "the last of the batch to be decided saw the whole ring")
	require.Nil(t, overflowOf(t, b, "s050"))
	require.Equal(t, members[duplicate.MaxPairsPerCheck:k-10], overflowOf(t, b, fmt.Sprintf("s%03d", k-1)))

	// As the detector stores an answer: without the user's own id.
	answer := duplicate.MatchedUsers(members[5], members[:k-1])
	again, err := b.store.SaveCheck(b.ctx, check("again", members[5], answer...))
	require.NoError(t, err)
	require.Nil(t, again.Alert, "every account it names is in its ring already")
	stranger, err := b.store.SaveCheck(b.ctx, check("stranger", members[5], append(members[:k-1:k-1], "stranger")...))
	require.NoError(t, err)
	require.NotNil(t, stranger.Alert, "an account new to the ring past the bound raises the alert")
	require.Equal(t, []string{"stranger"}, stranger.Alert.NewMatchedUserIDs)
	require.Equal(t, k+1, stranger.Alert.RingSize)
	size, _ = ringOf(t, b, "stranger")
	require.Equal(t, k+1, size, "an account only an overflow named is known, with its ring")
	linked, err := b.store.UserDuplicates(b.ctx, "stranger", "")
	require.NoError(t, err, "and answered, with no pair of its own")
	require.Empty(t, linked)

	// A pair cleared in advance joins no ring and raises nothing, past the bound too.
	_, err = b.store.SaveCheck(b.ctx, check("s-cleared-one", "cleared-one"))
	require.NoError(t, err)
	_, err = b.store.AddReview(b.ctx, review(members[5], "cleared-one", duplicate.DecisionFalsePositive))
	require.NoError(t, err)
	cleared, err := b.store.SaveCheck(b.ctx, check("cleared", members[5], append(members[:k-1:k-1], "cleared-one")...))
	require.NoError(t, err)
	require.Nil(t, cleared.Alert)
	size, _ = ringOf(t, b, members[0])
	require.Equal(t, k+1, size)
	require.Contains(t, overflowOf(t, b, "cleared"), "cleared-one", "the answer is kept whole")

	// A re-run compares its answer with the whole stored one, overflow included.
	replayedAt := time.Now()
	same := check("again", members[5], answer...)
	same.ReplayedAt = &replayedAt
	_, previous, err := b.store.ReplaceCheck(b.ctx, same)
	require.NoError(t, err)
	require.Equal(t, answer, previous)

	rerun := check("stranger", members[5], members[:3]...)
	rerun.ReplayedAt = &replayedAt
	_, _, err = b.store.ReplaceCheck(b.ctx, rerun)
	require.NoError(t, err)
	require.Nil(t, overflowOf(t, b, "stranger"), "a re-run's answer replaces the stored overflow")
}

// Every migration applies to a database holding data, not only to an empty one: the store fills
// the latest schema as the pipeline, the API and reconciliation would (a ring with reviews, a face
// farm's overflow, a started verification, a console session), the schema goes down to migration 1
// and then up again one migration at a time, each step with the data the previous ones kept, and
// what migration 1's tables hold comes through whole.
func TestEveryMigrationAppliesToADatabaseHoldingData(t *testing.T) {
	t.Parallel()
	dbURL, pool := testinfra.Database(t)
	ctx := context.Background()
	store := postgres.NewStore(pool)
	at := time.Now().Add(-time.Hour)
	save := func(sig, user string, matched ...string) {
		outcome := duplicate.OutcomeNoDuplicates
		if len(matched) > 0 {
			outcome = duplicate.OutcomeDuplicatesFound
		}
		_, err := store.SaveCheck(ctx, duplicate.Check{SignatureID: sig, UserID: user, EventType: duplicate.EventTypeCompleted,
			Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched, CheckedAt: at, Region: "ph",
			Source: duplicate.Source{Topic: "idv.completed", Partition: 1, Offset: 7}})
		require.NoError(t, err)
	}
	save("m-1", "ring-a")
	save("m-2", "ring-b", "ring-a")
	save("m-3", "ring-c", "ring-a", "ring-b")
	farm := make([]string, 150) // past duplicate.MaxPairsPerCheck: an overflow row
	for i := range farm {
		farm[i] = fmt.Sprintf("farm-%03d", i)
	}
	save("m-4", "farm-x", farm...)
	_, err := store.AddReview(ctx, duplicate.Review{UserID: "ring-a", DuplicateUserID: "ring-b",
		Decision: duplicate.DecisionFalsePositive, Note: "same person, new phone", ReviewedBy: "analyst"})
	require.NoError(t, err)
	_, err = store.AddReview(ctx, duplicate.Review{UserID: "ring-a", DuplicateUserID: "ring-c",
		Decision: duplicate.DecisionConfirmedFraud, ReviewedBy: "analyst"})
	require.NoError(t, err)
	require.NoError(t, store.RecordStarted(ctx, duplicate.Started{SignatureID: "m-5", UserID: "late", Region: "ph"},
		time.Minute, duplicate.Source{Topic: "idv.started"}))
	_, err = pool.Exec(ctx, `INSERT INTO replay_quota (key_name, day, searches) VALUES ('analyst', current_date, 3)`)
	require.NoError(t, err)
	count := func(table string) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n))
		return n
	}
	checks, links, alerts := count("idv_checks"), count("duplicate_links"), count("alerts")
	require.Positive(t, alerts)

	m, err := postgres.NewMigrator(dbURL)
	require.NoError(t, err)
	defer m.Close()
	latest, _, _, err := m.Version()
	require.NoError(t, err)
	migrateTo(t, m, 1)
	for _, v := range migrationVersions(t) {
		if v > 1 {
			require.NoError(t, m.Goto(v), "migration %d on a database holding data", v)
		}
	}
	v, _, _, err := m.Version()
	require.NoError(t, err)
	require.Equal(t, latest, v)
	require.Equal(t, checks, count("idv_checks"))
	require.Equal(t, links, count("duplicate_links"))
	require.Equal(t, alerts, count("alerts"))
	// The ring index is rebuilt from the links: the cleared pair holds no ring together.
	ring, err := store.Ring(ctx, "ring-c")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"ring-a", "ring-b", "ring-c"}, ring.Members)
}

// migrationVersions lists the versions of the embedded migrations, in order.
func migrationVersions(t *testing.T) []uint {
	t.Helper()
	entries, err := fs.Glob(migrations.FS, "*.up.sql")
	require.NoError(t, err)
	var out []uint
	for _, name := range entries {
		n, err := strconv.ParseUint(strings.SplitN(name, "_", 2)[0], 10, 32)
		require.NoError(t, err)
		out = append(out, uint(n))
	}
	slices.Sort(out)
	return out
}
