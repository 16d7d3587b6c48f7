package erasure_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// mentions returns, for every text, text[] and jsonb column of every table of the schema, the
// rows that contain s: what a scan for a userId must find nowhere.
func mentions(t *testing.T, b bundle, s string) []string {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `
SELECT c.table_name, c.column_name FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
  AND (c.data_type IN ('text', 'jsonb', 'json', 'character varying') OR (c.data_type = 'ARRAY' AND c.udt_name = '_text'))`)
	require.NoError(t, err)
	type col struct{ table, column string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
		var c col
		return c, r.Scan(&c.table, &c.column)
	})
	require.NoError(t, err)
	require.Greater(t, len(cols), 40, "the scan reads every text column")
	var found []string
	for _, c := range cols {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE strpos(%s::text, $1) > 0`,
			pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.column}.Sanitize()), s).Scan(&n))
		if n > 0 {
			found = append(found, fmt.Sprintf("%s.%s (%d rows)", c.table, c.column, n))
		}
	}
	return found
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
