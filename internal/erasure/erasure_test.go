package erasure_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/erasure"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
	"github.com/doppelhq/doppel/internal/topic"
)

var key = pseudonym.NewKey([]byte("0123456789abcdef0123456789abcdef"))

type bundle struct {
	ctx     context.Context
	pool    *pgxpool.Pool
	store   *postgres.Store
	batcher *postgres.Batcher
	topic   string
	pub     *topic.Publisher
}

func setup(t *testing.T) bundle {
	t.Helper()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithTombstones(key))
	name := testinfra.Topics(t, 1, "erasures")[0]
	pub := topic.NewPublisher(testinfra.Brokers(t), name, "test")
	t.Cleanup(func() { _ = pub.Close() })
	return bundle{ctx: context.Background(), pool: pool, store: store, batcher: postgres.NewBatcher(store, 64, 2, 0),
		topic: name, pub: pub}
}

func (b bundle) runner(hook func(string) error) *erasure.Runner {
	return erasure.New(erasure.Config{Store: b.store, Publisher: b.pub, Hook: hook})
}

func check(sig, user string, matched ...string) duplicate.Check {
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	now := time.Now()
	return duplicate.Check{SignatureID: sig, UserID: user, EventType: duplicate.EventTypeCompleted, Region: "ph",
		Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched, VendorTransactionID: "tx-" + sig,
		OccurredAt: &now, CheckedAt: now}
}

func (b bundle) save(t *testing.T, c duplicate.Check) duplicate.Saved {
	t.Helper()
	saved, err := b.batcher.SaveCheck(b.ctx, c)
	require.NoError(t, err)
	return saved
}

// ringOfFour stores, through the group commit, alice-bob, carol-bob, dave-bob and dave-carol: a
// ring of four whose only bridge to alice is bob. Erin and frank are outside it (their pairs are
// cleared), with reviews that name bob in a pair and in a note. Every alert of the ring is open.
func (b bundle) ringOfFour(t *testing.T) {
	t.Helper()
	b.save(t, check("sig-1", "alice"))
	b.save(t, check("sig-2", "bob", "alice"))
	b.save(t, check("sig-3", "carol", "bob"))
	b.save(t, check("sig-4", "dave", "bob", "carol"))
	b.save(t, check("sig-5", "erin", "bob"))
	b.save(t, check("sig-6", "frank", "erin"))
	for _, r := range []duplicate.Review{
		{UserID: "erin", DuplicateUserID: "bob", Decision: duplicate.DecisionFalsePositive, Note: "bob's sister erin"},
		{UserID: "frank", DuplicateUserID: "erin", Decision: duplicate.DecisionSamePerson, Note: "asked bob about erin"},
	} {
		r.ReviewedBy = "analyst"
		_, err := b.store.AddReview(b.ctx, r)
		require.NoError(t, err)
	}
}

// mentions lists the text, text[] and jsonb columns of every table that still contain s, with
// their row counts: what a scan for a userId must find nowhere.
func mentions(t *testing.T, b bundle, s string) []string {
	t.Helper()
	return testinfra.Mentions(t, b.pool, s)
}

// summariesAgree requires every ring's stored summary to equal a count from scratch, and the
// open-alert counter the number of open alerts: an erasure keeps the read model true.
func summariesAgree(t *testing.T, b bundle) {
	t.Helper()
	var wrong, counter, open int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM rings r, doppel_ring_summary(r.ring_key) s
WHERE (r.link_count, r.open_alerts, r.first_seen_at, r.last_seen_at, r.newest_user_id, r.newest_at)
    IS DISTINCT FROM (s.link_count, s.open_alerts, s.first_seen_at, s.last_seen_at, s.newest_user_id, s.newest_at)`).Scan(&wrong))
	require.Zero(t, wrong, "rings whose summary disagrees with a recount")
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT (SELECT value FROM counters WHERE name = 'open_alerts'),
    (SELECT count(*) FROM alerts WHERE open)`).Scan(&counter, &open))
	require.Equal(t, open, counter, "the open-alert counter")
}

func members(t *testing.T, b bundle, user string) []string {
	t.Helper()
	ring, err := b.store.Ring(b.ctx, user)
	require.NoError(t, err)
	return ring.Members
}

func request(t *testing.T, b bundle, user string, override string) duplicate.Erasure {
	t.Helper()
	e, _, err := b.store.RequestErasure(b.ctx, duplicate.ErasureRequest{UserID: user, Reason: "request by " + user,
		RequestedBy: "privacy-officer", Override: override})
	require.NoError(t, err)
	return e
}

// After erasing bob from a ring of four, his id is in no text, text[] or jsonb column of any
// table; the others' rings are what the ring rule makes of the links left; the reviews keep their
// decisions and notes with bob's pseudonym; his erasure is published, keyed by his id, and its
// record keeps only the pseudonym; erasing him again answers the same erasure.
func TestAnErasedMemberOfARingOfFourIsNowhereAndTheRingIsRecomputed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ringOfFour(t)
	require.Equal(t, []string{"alice", "bob", "carol", "dave"}, members(t, b, "carol"))
	require.NotEmpty(t, mentions(t, b, "bob"))

	// The ring's alerts are open: bob is on legal hold, and only the override erases him.
	_, _, err := b.store.RequestErasure(b.ctx, duplicate.ErasureRequest{UserID: "bob", Reason: "r", RequestedBy: "x"})
	var held *duplicate.ErrLegalHold
	require.ErrorAs(t, err, &held)
	require.Equal(t, duplicate.RingID("alice"), held.Hold.RingID)
	require.Equal(t, duplicate.HoldOpenAlert, held.Hold.Reasons[0].Kind)

	e := request(t, b, "bob", duplicate.OverrideLegalHold)
	require.Equal(t, duplicate.ErasureStatusPending, e.Status)
	require.Equal(t, "ring "+duplicate.RingID("alice")+": 0 confirmed_fraud pairs, 3 open alerts", e.LegalHoldOverride)
	require.NoError(t, b.runner(nil).Finish(b.ctx, e.ID))

	require.Empty(t, mentions(t, b, "bob"), "bob's id is nowhere")
	require.Equal(t, []string{"carol", "dave"}, members(t, b, "carol"), "carol and dave keep their ring")
	require.Equal(t, []string{"alice"}, members(t, b, "alice"), "alice lost her bridge: a ring of one")
	summariesAgree(t, b)
	done, err := b.store.Erasure(b.ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, duplicate.ErasureStatusDone, done.Status)
	require.Empty(t, done.UserID)
	require.Equal(t, "erased:"+key.Hash("bob"), done.Pseudonym)
	require.Equal(t, "request by "+done.Pseudonym, done.Reason)
	require.Equal(t, int64(1), done.Removed["idv_checks"])
	require.Equal(t, int64(4), done.Removed["duplicate_links"])
	require.Equal(t, []duplicate.VendorSignature{{SignatureID: "sig-2", Region: "ph"}}, done.VendorSignatures)

	var notes []string
	rows, err := b.pool.Query(b.ctx, `SELECT user_id_low || '|' || user_id_high || '|' || decision || '|' || note FROM link_reviews ORDER BY review_id`)
	require.NoError(t, err)
	notes, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	p := done.Pseudonym
	require.Equal(t, []string{
		p + "|erin|false_positive|" + p + "'s sister erin",
		"erin|frank|same_person|asked " + p + " about erin",
	}, notes)

	// The others' alerts stay, without bob in their lists.
	var alerts int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM alerts`).Scan(&alerts))
	require.Equal(t, 4, alerts, "carol's, dave's, erin's and frank's alerts stay; bob's own is gone")

	msgs := testinfra.ReadAll(t, b.topic, 1, 30*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, "bob", string(msgs[0].Key))
	var ev map[string]any
	require.NoError(t, json.Unmarshal(msgs[0].Value, &ev))
	require.Equal(t, "subject_erased", ev["type"])
	require.Equal(t, e.ID, ev["erasureId"])
	require.Equal(t, "bob", ev["userId"])
	require.Nil(t, ev["region"])
	require.NotEmpty(t, ev["erasedAt"])

	again := request(t, b, "bob", "")
	require.Equal(t, e.ID, again.ID, "the same userId again answers the erasure done")
	require.Equal(t, duplicate.ErasureStatusDone, again.Status)
}

// An erasure stopped inside its transaction (a crash, here an error between two steps) leaves
// nothing half-erased: every row is as before and the job pending. One stopped after the removal
// committed (no topic to publish to) keeps its progress. A restart finishes both.
func TestAnErasureStoppedHalfWayLeavesNothingHalfErasedAndARestartFinishesIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ringOfFour(t)
	e := request(t, b, "bob", duplicate.OverrideLegalHold)
	before := mentions(t, b, "bob")

	for _, step := range []string{"read", "deleted", "pseudonymised", "rings", "recorded"} {
		crash := errors.New("killed at " + step)
		err := b.runner(func(s string) error {
			if s == step {
				return crash
			}
			return nil
		}).Finish(b.ctx, e.ID)
		require.ErrorIs(t, err, crash)
		require.Equal(t, before, mentions(t, b, "bob"), "stopped at %s: nothing changed", step)
		require.Equal(t, []string{"alice", "bob", "carol", "dave"}, members(t, b, "alice"))
		got, err := b.store.Erasure(b.ctx, e.ID)
		require.NoError(t, err)
		require.Equal(t, duplicate.ErasureStatusPending, got.Status)
	}

	// The removal commits, the publish cannot happen: the job is removed, not done.
	err := erasure.New(erasure.Config{Store: b.store}).Finish(b.ctx, e.ID)
	require.ErrorContains(t, err, "no erasures topic")
	got, err := b.store.Erasure(b.ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, duplicate.ErasureStatusRemoved, got.Status)
	require.Equal(t, []string{"erasures.user_id (1 rows)"}, mentions(t, b, "bob"), "only the job keeps the id, to publish it")

	// The restart.
	b.runner(nil).FinishAll(b.ctx)
	got, err = b.store.Erasure(b.ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, duplicate.ErasureStatusDone, got.Status)
	require.Empty(t, mentions(t, b, "bob"))
	require.Len(t, testinfra.ReadAll(t, b.topic, 1, 30*time.Second), 1)
}

// countingVendor is a vendor that counts its calls and answers every face search with similar.
type countingVendor struct {
	calls   atomic.Int64
	similar []string
}

func (v *countingVendor) FaceSearch(context.Context, string) (duplicate.SearchResult, error) {
	v.calls.Add(1)
	return duplicate.SearchResult{SimilarUserIDs: v.similar, TransactionID: "tx"}, nil
}

func (v *countingVendor) Verification(context.Context, string) (duplicate.Verification, error) {
	v.calls.Add(1)
	return duplicate.Verification{OverallResult: duplicate.VerdictPass}, nil
}

// After the erasure: an event for one of bob's signatureIds is skipped with no vendor call and
// nothing stored; a face search naming bob links only the others; a check of bob's that completed
// before the erasure (an event in flight) is not stored; one completed after it is a new customer
// relationship, stored and linked as any other, and searches naming bob link him again.
func TestTheTombstoneKeepsTheErasedPersonFromComingBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ringOfFour(t)
	beforeErasure := time.Now().Add(-time.Second)
	e := request(t, b, "bob", duplicate.OverrideLegalHold)
	require.NoError(t, b.runner(nil).Finish(b.ctx, e.ID))

	outcome, final, err := b.batcher.FinalOutcome(b.ctx, "sig-2")
	require.NoError(t, err)
	require.Equal(t, duplicate.OutcomeErased, outcome)
	require.True(t, final)
	vendor := &countingVendor{similar: []string{"alice"}}
	res, err := duplicate.NewDetector(b.batcher, nil).Handle(b.ctx,
		duplicate.Event{SignatureID: "sig-2", Type: duplicate.EventTypeCompleted, UserID: "bob", Region: "ph"}, vendor, duplicate.Source{})
	require.NoError(t, err)
	require.True(t, res.AlreadyStored)
	require.Zero(t, vendor.calls.Load(), "no vendor call for a tombstoned signatureId")

	// A later search naming bob (the vendor still has his face) links only the others.
	saved := b.save(t, check("sig-7", "gina", "bob", "carol"))
	require.Equal(t, []string{"carol"}, saved.NewLinks)
	require.Empty(t, mentions(t, b, "bob"))
	stored, err := b.store.Check(b.ctx, "sig-7")
	require.NoError(t, err)
	require.Equal(t, []string{"carol"}, stored.MatchedUserIDs)
	// Through the path without a group commit too, with nothing but bob matched.
	saved, err = b.store.SaveCheck(b.ctx, check("sig-8", "hank", "bob"))
	require.NoError(t, err)
	require.Empty(t, saved.NewLinks)
	stored, err = b.store.Check(b.ctx, "sig-8")
	require.NoError(t, err)
	require.Equal(t, duplicate.OutcomeNoDuplicates, stored.Outcome)
	require.Empty(t, mentions(t, b, "bob"))

	// An event of bob's that completed before the erasure, stored after it: not stored.
	late := check("sig-9", "bob", "alice")
	late.OccurredAt = &beforeErasure
	saved = b.save(t, late)
	require.False(t, saved.Stored)
	late = check("sig-10", "bob")
	late.OccurredAt = &beforeErasure
	require.False(t, b.save(t, late).Stored)
	require.Empty(t, mentions(t, b, "bob"))

	// Bob verifies again after the erasure: a new customer relationship.
	saved = b.save(t, check("sig-11", "bob", "alice"))
	require.True(t, saved.Stored)
	require.Equal(t, []string{"alice"}, saved.NewLinks)
	saved = b.save(t, check("sig-12", "ivan", "bob"))
	require.Equal(t, []string{"bob"}, saved.NewLinks, "bob is back: searches naming him link him")
}

// Events of bob's racing his erasure (new verifications that completed before it, and other
// people's searches naming him) cannot bring a row of his back, whichever commits first.
func TestEventsRacingAnErasureCannotBringARowBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ringOfFour(t)
	e := request(t, b, "bob", duplicate.OverrideLegalHold)
	occurred := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				own := check(fmt.Sprintf("race-%d-%d", w, i), "bob", "alice")
				own.OccurredAt = &occurred
				if i%2 == 0 {
					own.MatchedUserIDs, own.SimilarUserIDs, own.Outcome = nil, nil, duplicate.OutcomeNoDuplicates
				}
				_, err := b.batcher.SaveCheck(b.ctx, own)
				require.NoError(t, err)
				_, err = b.batcher.SaveCheck(b.ctx, check(fmt.Sprintf("other-%d-%d", w, i), fmt.Sprintf("user-%d-%d", w, i), "bob", "dave"))
				require.NoError(t, err)
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, b.runner(nil).Finish(b.ctx, e.ID))
	wg.Wait()
	require.Empty(t, mentions(t, b, "bob"))
	var links int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM duplicate_links WHERE user_id_low = 'dave' AND user_id_high LIKE 'user-%'`).Scan(&links))
	require.Equal(t, 100, links, "the others' searches linked everyone else")
}

// A started event of an erased person's verification (a late one, or a replay) is not recorded,
// so it is never polled (no get-result call for it).
func TestAStartedEventOfAnErasedPersonIsNotRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.save(t, check("sig-1", "alice"))
	started := time.Now().Add(-time.Minute)
	require.NoError(t, b.store.RecordStarted(b.ctx, duplicate.Started{SignatureID: "sig-2", UserID: "alice", StartedAt: &started}, time.Minute, duplicate.Source{}))
	e := request(t, b, "alice", "")
	require.NoError(t, b.runner(nil).Finish(b.ctx, e.ID))
	require.Empty(t, mentions(t, b, "alice"))
	done, err := b.store.Erasure(b.ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), done.Removed["started_verifications"])

	require.NoError(t, b.store.RecordStarted(b.ctx, duplicate.Started{SignatureID: "sig-2"}, time.Minute, duplicate.Source{}))
	require.NoError(t, b.store.RecordStarted(b.ctx, duplicate.Started{SignatureID: "sig-3", UserID: "alice", StartedAt: &started}, time.Minute, duplicate.Source{}))
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*) FROM started_verifications`).Scan(&n))
	require.Zero(t, n)
}
