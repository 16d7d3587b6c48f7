package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// Store is the PostgreSQL implementation of duplicate.Store plus the outbox the relay drains.
type Store struct {
	pool *pgxpool.Pool
	// newAlertID is replaceable so tests can pin ids; production uses random UUIDs.
	newAlertID func() string
	policy     duplicate.AlertPolicy
	// sla sets a new case's due time (WithCases).
	sla duplicate.CaseSLA
	// tomb is the key of the tombstones' keyed hash (WithTombstones); nil: no tombstone is checked.
	tomb *pseudonym.Key
	// onErasedMatch counts the mentions of erased people dropped from face-search answers; may be nil.
	onErasedMatch func(n int)
	log           *slog.Logger
}

// WithErasureLog sets where the store logs (pseudonymised) the erased people a face search named,
// and what counts them (the metric); either may be nil.
func WithErasureLog(log *slog.Logger, onErasedMatch func(n int)) Option {
	return func(s *Store) { s.log, s.onErasedMatch = log, onErasedMatch }
}

// Option configures a Store.
type Option func(*Store)

// WithAlertPolicy sets what alerts say beyond the check itself (the ring size that makes an alert
// high severity). Without it no alert is high severity.
func WithAlertPolicy(p duplicate.AlertPolicy) Option {
	return func(s *Store) { s.policy = p }
}

// NewStore returns a Store on pool.
func NewStore(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, newAlertID: func() string { return uuid.NewString() }}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Pool returns the underlying pool, for health checks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// FinalOutcome returns the stored outcome of signatureID and whether it is final (see
// duplicate.Outcome.Final).
func (s *Store) FinalOutcome(ctx context.Context, signatureID string) (duplicate.Outcome, bool, error) {
	var outcome string
	err := s.pool.QueryRow(ctx, `SELECT outcome FROM (
    SELECT 'erased' AS outcome, 0 AS o FROM erased_signatures WHERE signature_hash = $2
    UNION ALL SELECT outcome, 1 FROM idv_checks WHERE signature_id = $1) x ORDER BY o LIMIT 1`,
		signatureID, s.hash(signatureID)).Scan(&outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("select check: %w", err)
	}
	o := duplicate.Outcome(outcome)
	return o, o.Final(), nil
}

// SaveCheck stores the check, one link per matched user, the ring index and, when a link is new and
// no review cleared it, an alert row in the outbox, all in one transaction. A signatureId with a
// final outcome is left as it is (Stored false), which makes a redelivered event harmless; a
// non-final one (skipped, incomplete, failed) is overwritten by a later event. It is a batch of one:
// see saveBatch.
func (s *Store) SaveCheck(ctx context.Context, check duplicate.Check) (duplicate.Saved, error) {
	saved, err := s.saveBatch(ctx, []duplicate.Check{check})
	if err != nil {
		return duplicate.Saved{}, markRefused(err)
	}
	return saved[0], nil
}

// markRefused wraps err in duplicate.ErrCheckRefused when PostgreSQL refused the data itself
// (refusedData), so the caller dead-letters the message instead of waiting for a database that is
// up (duplicate.StoreFailure).
func markRefused(err error) error {
	if refusedData(err) {
		return fmt.Errorf("%w: %w", duplicate.ErrCheckRefused, err)
	}
	return err
}

// refusedData reports whether PostgreSQL refused the data itself, which no retry changes: a data
// exception (class 22: a NUL in a text, a value out of range) or a CHECK or NOT NULL violation. A
// unique or foreign-key violation can be a race with another writer, and is not one.
func refusedData(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || pgErr.Code == "23514" || pgErr.Code == "23502"
}

// saveBatch stores checks with distinct signatureIds, their links, ring changes and alerts, in one
// transaction; saved[i] answers checks[i]. A batch that names no matched account (most: most
// people have one account) is one INSERT, which PostgreSQL runs as a transaction of its own, one
// round trip instead of three; any other is saveLinkedBatch. A transaction chosen as a deadlock
// victim was rolled back whole, so it is simply run again.
func (s *Store) saveBatch(ctx context.Context, checks []duplicate.Check) ([]duplicate.Saved, error) {
	if !anyMatches(checks) {
		stored, err := s.insertChecksAlone(ctx, checks)
		if err != nil {
			return nil, err
		}
		saved := make([]duplicate.Saved, len(checks))
		for i := range saved {
			saved[i].Stored = stored[i]
		}
		return saved, nil
	}
	var saved []duplicate.Saved
	err := retryConflicts(ctx, func() error {
		var err error
		saved, err = s.saveLinkedBatch(ctx, checks)
		return err
	})
	return saved, err
}

// anyMatches reports whether a check of the batch names a matched account, and so may link a pair.
func anyMatches(checks []duplicate.Check) bool {
	for _, c := range checks {
		if len(c.MatchedUserIDs) > 0 {
			return true
		}
	}
	return false
}

// conflictAttempts bounds the runs of a transaction that keeps losing deadlocks.
const conflictAttempts = 4

// retryConflicts runs fn again, after a short random pause, when PostgreSQL rolled it back for a
// deadlock or a serialization failure: nothing of it was committed.
func retryConflicts(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range conflictAttempts {
		if err = fn(); err == nil || !isConflict(err) || attempt == conflictAttempts-1 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(1+rand.IntN(10*(attempt+1))) * time.Millisecond):
		}
	}
	return err
}

func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// linkAll writes what stored checks change: it reads the state of every pair they link and the
// rings of the accounts they may join, lets the domain decide (decideLinks), and writes the links,
// the ring index and the alerts, one statement per table. A few round trips per batch, whatever
// its size. The batch path does the same in fewer round trips (saveLinkedBatch); this is the one
// for a check re-run inside a transaction of its own.
//
// The ring-index lock serializes this step between transactions, so the pair states and rings read
// are still true when the decision is written: two batches cannot both find one pair new (two
// alerts) or both grow one ring from stale sizes.
func (s *Store) linkAll(ctx context.Context, tx pgx.Tx, checks []duplicate.Check) ([]duplicate.Saved, error) {
	pairs := duplicate.Pairs(checks)
	if len(pairs) == 0 {
		return storedOnly(len(checks)), nil
	}
	if err := lockRingIndex(ctx, tx); err != nil {
		return nil, err
	}
	if hashes, byHash := s.matchedHashes(checks); len(hashes) > 0 {
		rows, err := tx.Query(ctx, matchedTombstonesSQL, hashes)
		erased, err := readErasedMatches(rows, err, byHash)
		if err != nil {
			return nil, err
		}
		if checks, _, err = s.dropErasedMatches(ctx, tx, checks, erased); err != nil {
			return nil, err
		}
		if pairs = duplicate.Pairs(checks); len(pairs) == 0 {
			return storedOnly(len(checks)), nil
		}
	}
	states, err := pairStates(ctx, tx, pairReadsOf(checks, pairs), pairs)
	if err != nil {
		return nil, err
	}
	d, err := s.decideLinks(checks, states, func(users []string) (map[string]duplicate.RingState, error) {
		return ringsOf(ctx, tx, users)
	})
	if err != nil {
		return nil, err
	}
	if err := insertNewLinks(ctx, tx, d.Plan.Links); err != nil {
		return nil, err
	}
	writes := &pgx.Batch{}
	d.queueWrites(s, writes, false)
	if err := tx.SendBatch(ctx, writes).Close(); err != nil {
		return nil, d.writeError(err)
	}
	return d.Saved, nil
}

// linkDecision is the domain's decision (duplicate.DecideLinks) about a batch of stored checks,
// with the writes that carry it out.
type linkDecision struct {
	duplicate.LinkDecision
	// checks are the checks decided about (the ring summaries' newest member comes from them).
	checks []duplicate.Check
}

// decideLinks asks the domain what stored checks change, given the states of their pairs; rings
// reads the rings of the accounts the rule may join. The store decides nothing itself: it read
// the state before and writes the decision after.
func (s *Store) decideLinks(checks []duplicate.Check, states map[duplicate.PairKey]duplicate.PairState,
	rings func(users []string) (map[string]duplicate.RingState, error)) (linkDecision, error) {
	d, err := duplicate.DecideLinks(checks, states, rings, s.newAlertID, s.policy)
	return linkDecision{LinkDecision: d, checks: checks}, err
}

// queueWrites queues the decision's writes: the new links too unless they are copied separately
// (insertNewLinks), the links seen again, the ring index and the alerts.
func (d linkDecision) queueWrites(s *Store, b *pgx.Batch, withNewLinks bool) {
	if withNewLinks {
		queueNewLinks(b, d.Plan.Links)
	}
	queueSeenAgain(b, d.Plan.Links)
	queueRingChanges(b, d.Changes)
	queueAlerts(b, d.Alerts)
	queueSummaryDeltas(b, d.checks, d.Plan.Links, d.Changes.Joined, d.Alerts)
	s.queueOpenCases(b, d.Alerts)
	if len(d.Overflows) > 0 {
		sigs, ids := make([]string, len(d.Overflows)), make([]string, len(d.Overflows))
		for i, o := range d.Overflows {
			sigs[i], ids[i] = o.SignatureID, arrayLiteral(o.UserIDs)
		}
		b.Queue(insertOverflowSQL, sigs, ids)
	}
}

// insertOverflowSQL stores each check's overflow as one array (sent as a literal: arrays of
// arrays must be rectangular); a check stored again (a re-run) gets its new answer's. Aggregating
// the ids in SQL instead cost about 2.4 µs an id, as much as half a link row.
const insertOverflowSQL = `
INSERT INTO check_overflow (signature_id, user_ids)
SELECT u.sig, u.ids::text[] FROM unnest($1::text[], $2::text[]) AS u(sig, ids)
ON CONFLICT (signature_id) DO UPDATE SET user_ids = EXCLUDED.user_ids`

func (d linkDecision) writeError(err error) error {
	return fmt.Errorf("write %d links, rings and %d alerts: %w", len(d.Plan.Links), len(d.Alerts), err)
}

// storedOnly returns n answers that say "stored" and nothing else.
func storedOnly(n int) []duplicate.Saved {
	saved := make([]duplicate.Saved, n)
	for i := range saved {
		saved[i].Stored = true
	}
	return saved
}

// insertChecksSQL stores a batch of checks unless a final outcome exists, or the check belongs to
// an erased person (its signatureId's tombstone, or its user's erased after it completed: see
// tombstone.go); it returns the
// signatureIds it stored. The outcomes it replaces are those duplicate.Outcome.Final reports as not
// final (a notice, a verdict still to come, a failure); TestStoredOutcomesAreReplacedExactlyWhenNotFinal
// keeps the two in step. The id lists are sent as array literals
// (arrays of arrays must be rectangular) and kept to duplicate.MaxListedUserIDs ids.
const insertChecksSQL = `
INSERT INTO idv_checks (signature_id, user_id, event_type, outcome, overall_result, similar_user_ids,
    matched_user_ids, similar_count, matched_count, vendor_transaction_id, failure_reason, event_id,
    occurred_at, source_topic, source_partition, source_offset, checked_at, region)
SELECT u.sig, NULLIF(u.uid, ''), u.typ, u.outcome, NULLIF(u.overall, ''), u.sim::text[], u.mat::text[],
    u.nsim, u.nmat, NULLIF(u.tx, ''), NULLIF(u.failure, ''), NULLIF(u.event, ''), u.occurred,
    NULLIF(u.topic, ''), u.part, u.off, u.at, u.region
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[],
    $9::int[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::text[], $15::int[], $16::bigint[],
    $17::timestamptz[], $18::text[], $19::text[], $20::text[])
    AS u(sig, uid, typ, outcome, overall, sim, mat, nsim, nmat, tx, failure, event, occurred,
         topic, part, off, at, region, sig_hash, user_hash)
WHERE NOT EXISTS (SELECT 1 FROM erased_signatures e WHERE e.signature_hash = u.sig_hash)
  AND NOT EXISTS (SELECT 1 FROM erased_users e WHERE e.user_hash = u.user_hash AND e.erased_at > coalesce(u.occurred, u.at))
ON CONFLICT (signature_id) DO UPDATE SET
    user_id = EXCLUDED.user_id, event_type = EXCLUDED.event_type, outcome = EXCLUDED.outcome,
    overall_result = EXCLUDED.overall_result, similar_user_ids = EXCLUDED.similar_user_ids,
    matched_user_ids = EXCLUDED.matched_user_ids, similar_count = EXCLUDED.similar_count,
    matched_count = EXCLUDED.matched_count, vendor_transaction_id = EXCLUDED.vendor_transaction_id,
    failure_reason = EXCLUDED.failure_reason, event_id = EXCLUDED.event_id, occurred_at = EXCLUDED.occurred_at,
    source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition,
    source_offset = EXCLUDED.source_offset, checked_at = EXCLUDED.checked_at, region = EXCLUDED.region
WHERE idv_checks.outcome IN ('skipped', 'incomplete', 'failed')
RETURNING signature_id`

// insertChecksAlone stores checks (distinct signatureIds) that link nothing and reports which it
// stored: one round trip, the per-person locks and the insert in one transaction (see tombstone.go).
func (s *Store) insertChecksAlone(ctx context.Context, checks []duplicate.Check) ([]bool, error) {
	if s.tomb == nil {
		rows, err := s.pool.Query(ctx, insertChecksSQL, s.insertChecksArgs(checks)...)
		return readStored(rows, err, checks)
	}
	var stored []bool
	err := s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		conn := c.Conn()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(lockSubjectsSQL, checkUsers(checks))
		b.Queue(insertChecksSQL, s.insertChecksArgs(checks)...)
		b.Queue("COMMIT")
		res := conn.SendBatch(ctx, b)
		var err error
		if _, err = res.Exec(); err == nil {
			if _, err = res.Exec(); err == nil {
				rows, qerr := res.Query()
				if stored, err = readStored(rows, qerr, checks); err == nil {
					_, err = res.Exec()
				}
			}
		}
		if closeErr := res.Close(); err == nil {
			err = closeErr
		}
		if err != nil && conn.PgConn().TxStatus() != 'I' {
			if _, rbErr := conn.Exec(ctx, "ROLLBACK"); rbErr != nil {
				return fmt.Errorf("%w (and roll back: %v)", err, rbErr)
			}
		}
		return err
	})
	return stored, err
}

// insertChecksArgs returns insertChecksSQL's arguments for checks.
func (s *Store) insertChecksArgs(checks []duplicate.Check) []any {
	n := len(checks)
	sig, uid, typ, outcome, overall := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	similar, matched, nsimilar, nmatched := make([]string, n), make([]string, n), make([]int32, n), make([]int32, n)
	txID, failure, event, topic := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	occurred, at := make([]*time.Time, n), make([]time.Time, n)
	part, off, region := make([]int32, n), make([]int64, n), make([]string, n)
	sigHash, userHash := make([]string, n), make([]string, n)
	for i, c := range checks {
		sigHash[i], userHash[i] = s.hash(c.SignatureID), s.hash(c.UserID)
		sig[i], uid[i], typ[i], outcome[i], overall[i] = c.SignatureID, c.UserID, c.EventType, string(c.Outcome), c.OverallResult
		similar[i], matched[i] = arrayLiteral(duplicate.Listed(c.SimilarUserIDs)), arrayLiteral(duplicate.Listed(c.MatchedUserIDs))
		nsimilar[i], nmatched[i] = int32(len(c.SimilarUserIDs)), int32(len(c.MatchedUserIDs))
		txID[i], failure[i], event[i], occurred[i] = c.VendorTransactionID, c.FailureReason, c.EventID, c.OccurredAt
		topic[i], part[i], off[i], at[i] = c.Source.Topic, int32(c.Source.Partition), c.Source.Offset, c.CheckedAt
		region[i] = duplicate.RegionOf(c)
	}
	return []any{sig, uid, typ, outcome, overall, similar, matched, nsimilar, nmatched,
		txID, failure, event, occurred, topic, part, off, at, region, sigHash, userHash}
}

// readStored reads insertChecksSQL's answer: which of checks it stored.
func readStored(rows pgx.Rows, err error, checks []duplicate.Check) ([]bool, error) {
	if err != nil {
		return nil, fmt.Errorf("insert %d checks: %w", len(checks), err)
	}
	storedSigs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("insert %d checks: %w", len(checks), err)
	}
	index := make(map[string]int, len(checks))
	for i, c := range checks {
		index[c.SignatureID] = i
	}
	stored := make([]bool, len(checks))
	for _, s := range storedSigs {
		stored[index[s]] = true
	}
	return stored, nil
}

// arrayLiteral writes ids as a PostgreSQL text[] literal, every element quoted.
func arrayLiteral(ids []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range id {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// ringIndexLock is the transaction-level advisory lock that serializes reading and writing links
// and the ring index (see linkAll); the value is arbitrary but fixed ("doppel" in ASCII).
const ringIndexLock = 0x646f7070656c

func lockRingIndex(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(ringIndexLock)); err != nil {
		return fmt.Errorf("lock ring index: %w", err)
	}
	return nil
}

// probePairsUpTo is the most pairs of one check whose links are looked up pair by pair; the links
// of a check naming more are read as one index range of its user. Either way a check costs about
// one index descent per pair it names, except where the user has far more links than its answer
// names pairs: a face farm's early member, handled after the later members that matched it, has
// hundreds of links and names a few. Reading its whole range there returned 154,627 unneeded
// links over a farm of 1,000 (1.3 s of PostgreSQL, serialized under the ring-index lock).
const probePairsUpTo = 64

// pairReads says how a batch's pair states are read: the pairs looked up one by one (probeLow and
// probeHigh, in step), the users whose links are read whole, and the users whose reviews are read
// (every user with a pair: reviews are few, one index range each).
type pairReads struct {
	probeLow, probeHigh []string
	rangeUsers          []string
	reviewUsers         []string
}

// pairReadsOf returns how the states of pairs, duplicate.Pairs(checks), are read: the links of the
// users of checks naming more than probePairsUpTo accounts as ranges, every other pair by look-up
// (a pair touching a range user is in that user's range already).
func pairReadsOf(checks []duplicate.Check, pairs []duplicate.PairKey) pairReads {
	var r pairReads
	ranged := map[string]bool{}
	for _, c := range checks {
		if len(c.MatchedUserIDs) == 0 {
			continue
		}
		r.reviewUsers = append(r.reviewUsers, c.UserID)
		if len(c.MatchedUserIDs) > probePairsUpTo && !ranged[c.UserID] {
			ranged[c.UserID] = true
			r.rangeUsers = append(r.rangeUsers, c.UserID)
		}
	}
	for _, k := range pairs {
		if !ranged[k.Low] && !ranged[k.High] {
			r.probeLow, r.probeHigh = append(r.probeLow, k.Low), append(r.probeHigh, k.High)
		}
	}
	return r
}

// pairLinksSQL returns the links among the probed pairs and every link of the range users: each
// probe is one primary-key look-up (LIMIT 1 keeps it a nested loop: as a join of the whole arrays it
// was once planned as a hash join over all of duplicate_links), each range user's links are one
// index range (user_id_low first in the primary key, user_id_high in the other index), read in
// order.
const pairLinksSQL = `
SELECT l.lo, l.hi FROM unnest($1::text[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT user_id_low, user_id_high FROM duplicate_links WHERE user_id_low = u.id
    UNION ALL
    SELECT user_id_low, user_id_high FROM duplicate_links WHERE user_id_high = u.id
) AS l(lo, hi)
UNION ALL
SELECT l.user_id_low, l.user_id_high FROM unnest($2::text[], $3::text[]) AS p(lo, hi)
CROSS JOIN LATERAL (
    SELECT user_id_low, user_id_high FROM duplicate_links WHERE user_id_low = p.lo AND user_id_high = p.hi LIMIT 1
) AS l`

// pairReviewsSQL returns the latest decision of every review of the given users.
const pairReviewsSQL = `
SELECT DISTINCT ON (r.lo, r.hi) r.lo, r.hi, r.decision FROM unnest($1::text[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT user_id_low, user_id_high, decision, reviewed_at, review_id FROM link_reviews WHERE user_id_low = u.id
    UNION ALL
    SELECT user_id_low, user_id_high, decision, reviewed_at, review_id FROM link_reviews WHERE user_id_high = u.id
) AS r(lo, hi, decision, reviewed_at, review_id)
ORDER BY r.lo, r.hi, r.reviewed_at DESC, r.review_id DESC`

// pairStates returns the state of those of pairs that are linked or reviewed; reads must cover
// every pair (pairReadsOf).
func pairStates(ctx context.Context, tx pgx.Tx, reads pairReads, pairs []duplicate.PairKey) (map[duplicate.PairKey]duplicate.PairState, error) {
	b := &pgx.Batch{}
	queuePairStates(b, reads)
	res := tx.SendBatch(ctx, b)
	states, err := readPairStates(res, pairs)
	if closeErr := res.Close(); err == nil {
		err = closeErr
	}
	return states, err
}

// queuePairStates queues the reads readPairStates answers.
func queuePairStates(b *pgx.Batch, reads pairReads) {
	b.Queue(pairLinksSQL, reads.rangeUsers, reads.probeLow, reads.probeHigh)
	b.Queue(pairReviewsSQL, reads.reviewUsers)
}

// readPairStates reads the answers of queuePairStates's reads: the links among pairs, and the
// latest review of every pair of the users whose reviews were read.
func readPairStates(res pgx.BatchResults, pairs []duplicate.PairKey) (map[duplicate.PairKey]duplicate.PairState, error) {
	wanted := make(map[duplicate.PairKey]bool, len(pairs))
	for _, p := range pairs {
		wanted[p] = true
	}
	out := map[duplicate.PairKey]duplicate.PairState{}
	var k duplicate.PairKey
	rows, err := res.Query()
	if err == nil {
		_, err = pgx.ForEachRow(rows, []any{&k.Low, &k.High}, func() error {
			if wanted[k] {
				st := out[k]
				st.Linked = true
				out[k] = st
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("read links of %d pairs: %w", len(pairs), err)
	}
	var decision string
	rows, err = res.Query()
	if err == nil {
		// Every review of the checks' users is kept, not only those of pairs: a check's overflow
		// (duplicate.SplitMatches) has no pair to look up, and a cleared one must not join the ring.
		_, err = pgx.ForEachRow(rows, []any{&k.Low, &k.High, &decision}, func() error {
			st := out[k]
			st.Latest = duplicate.Decision(decision)
			out[k] = st
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("read reviews of %d pairs: %w", len(pairs), err)
	}
	return out, nil
}

// insertNewLinks copies the batch's new pairs into duplicate_links. COPY is the cheapest way in
// (a face farm's batch holds hundreds of thousands of them) and is safe here: the pairs were read
// as unlinked under the ring-index lock, which every writer of links holds.
func insertNewLinks(ctx context.Context, tx copier, links []duplicate.LinkWrite) error {
	var fresh []int
	for i, l := range links {
		if l.New {
			fresh = append(fresh, i)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	// One row buffer, refilled per row (pgx encodes a row before asking for the next), instead of
	// a slice of hundreds of thousands of rows built up front.
	row := make([]any, 9)
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"duplicate_links"}, []string{"user_id_low", "user_id_high",
		"first_seen_at", "last_seen_at", "seen_count", "first_signature_id", "last_signature_id", "reaches_failed_attempt",
		"regions"},
		pgx.CopyFromSlice(len(fresh), func(i int) ([]any, error) {
			l := &links[fresh[i]]
			row[0], row[1], row[2], row[3], row[4], row[5], row[6] = l.Low, l.High, l.FirstSeenAt, l.LastSeenAt,
				int32(l.Seen), l.FirstSignatureID, l.LastSignatureID
			row[7], row[8] = l.ReachesFailedAttempt, l.Regions
			return row, nil
		}))
	if err != nil {
		return fmt.Errorf("insert %d new links: %w", len(fresh), err)
	}
	return nil
}

// copier is what COPY runs on: a transaction, or a connection inside one.
type copier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
}

// newLinksSQL inserts new links where a COPY is not worth its own round trips (a few links).
const newLinksSQL = `
INSERT INTO duplicate_links (user_id_low, user_id_high, first_seen_at, last_seen_at, seen_count,
    first_signature_id, last_signature_id, reaches_failed_attempt, regions)
SELECT u.lo, u.hi, u.first_seen, u.last_seen, u.seen, u.first_sig, u.last_sig, u.failed, u.regions::text[]
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::text[], $7::text[],
    $8::bool[], $9::text[]) AS u(lo, hi, first_seen, last_seen, seen, first_sig, last_sig, failed, regions)`

func queueNewLinks(b *pgx.Batch, links []duplicate.LinkWrite) {
	var lows, highs, firstSigs, lastSigs, regions []string
	var firsts, lasts []time.Time
	var seen []int32
	var failed []bool
	for _, l := range links {
		if l.New {
			lows, highs = append(lows, l.Low), append(highs, l.High)
			firsts, lasts, seen = append(firsts, l.FirstSeenAt), append(lasts, l.LastSeenAt), append(seen, int32(l.Seen))
			firstSigs, lastSigs = append(firstSigs, l.FirstSignatureID), append(lastSigs, l.LastSignatureID)
			failed, regions = append(failed, l.ReachesFailedAttempt), append(regions, arrayLiteral(l.Regions))
		}
	}
	if len(lows) > 0 {
		b.Queue(newLinksSQL, lows, highs, firsts, lasts, seen, firstSigs, lastSigs, failed, regions)
	}
}

// seenAgainSQL refreshes the links a batch saw again.
const seenAgainSQL = `
UPDATE duplicate_links AS l SET
    last_seen_at = greatest(l.last_seen_at, u.last_seen),
    seen_count = l.seen_count + u.seen,
    last_signature_id = u.last_sig,
    reaches_failed_attempt = l.reaches_failed_attempt OR u.failed,
    regions = l.regions || ARRAY(SELECT r FROM unnest(u.regions::text[]) AS r WHERE NOT r = ANY (l.regions))
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[], $6::bool[], $7::text[])
    AS u(lo, hi, last_seen, seen, last_sig, failed, regions)
WHERE l.user_id_low = u.lo AND l.user_id_high = u.hi`

func queueSeenAgain(b *pgx.Batch, links []duplicate.LinkWrite) {
	var lows, highs, lastSigs, regions []string
	var lasts []time.Time
	var seen []int32
	var failed []bool
	for _, l := range links {
		if !l.New {
			lows, highs, lastSigs = append(lows, l.Low), append(highs, l.High), append(lastSigs, l.LastSignatureID)
			lasts, seen = append(lasts, l.LastSeenAt), append(seen, int32(l.Seen))
			failed = append(failed, l.ReachesFailedAttempt)
			regions = append(regions, arrayLiteral(l.Regions))
		}
	}
	if len(lows) > 0 {
		b.Queue(seenAgainSQL, lows, highs, lasts, seen, lastSigs, failed, regions)
	}
}

const insertAlertsSQL = `
INSERT INTO alerts (alert_id, signature_id, user_id, matched_user_ids, new_matched_user_ids, matched_count,
    new_matched_count, vendor_transaction_id, detected_at, ring_id, ring_size, severity, matched_failed_user_ids, region, open)
SELECT u.id::uuid, u.sig, u.uid, u.mat::text[], u.fresh::text[], u.nmat, u.nfresh, NULLIF(u.tx, ''), u.at,
    NULLIF(u.ring, ''), u.size, u.severity, u.failed::text[], u.region, doppel_alert_open(u.uid, u.fresh::text[])
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::text[],
    $9::timestamptz[], $10::text[], $11::int[], $12::text[], $13::text[], $14::text[])
    AS u(id, sig, uid, mat, fresh, nmat, nfresh, tx, at, ring, size, severity, failed, region)`

func queueAlerts(b *pgx.Batch, alerts []*duplicate.Alert) {
	if len(alerts) == 0 {
		return
	}
	n := len(alerts)
	ids, sigs, uids, matched, fresh := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	nmatched, nnew, sizes := make([]int32, n), make([]int32, n), make([]int32, n)
	txs, ringIDs, severities, at := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
	failed, regions := make([]string, n), make([]string, n)
	for i, a := range alerts {
		failed[i] = arrayLiteral(a.MatchedFailedUserIDs)
		ids[i], sigs[i], uids[i] = a.AlertID, a.SignatureID, a.UserID
		matched[i], fresh[i] = arrayLiteral(a.MatchedUserIDs), arrayLiteral(a.NewMatchedUserIDs)
		nmatched[i], nnew[i], sizes[i] = int32(a.MatchedCount), int32(a.NewMatchedCount), int32(a.RingSize)
		txs[i], ringIDs[i], severities[i], at[i] = a.VendorTransactionID, a.RingID, a.Severity, a.DetectedAt
		regions[i] = a.Region
	}
	b.Queue(insertAlertsSQL, ids, sigs, uids, matched, fresh, nmatched, nnew, txs, at, ringIDs, sizes, severities, failed, regions)
}

// PublishAlerts claims up to limit unpublished alerts (oldest first, skipping rows another relay
// holds), hands them to publish and marks them published when publish returns nil, all in one
// transaction. If publish fails nothing is marked, so the alerts go out again later with the same
// alertId: delivery is at least once. It returns how many alerts were published.
func (s *Store) PublishAlerts(ctx context.Context, limit int, publish func(context.Context, []duplicate.Alert) error) (int, error) {
	return s.PublishSettledAlerts(ctx, limit, 0, nil, publish)
}

// PublishSettledAlerts is PublishAlerts for alerts detected at least settledFor ago and not in
// exclude: the relay's poll, which leaves alerts on their way through a relay alone.
func (s *Store) PublishSettledAlerts(ctx context.Context, limit int, settledFor time.Duration, exclude []string,
	publish func(context.Context, []duplicate.Alert) error) (int, error) {
	if exclude == nil {
		exclude = []string{}
	}
	var n int
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT `+alertColumns+`
FROM alerts
WHERE published_at IS NULL AND detected_at <= now() - $2::interval AND NOT alert_id = ANY($3::uuid[])
ORDER BY detected_at, alert_id
LIMIT $1
FOR UPDATE SKIP LOCKED`, limit, settledFor, exclude)
		if err != nil {
			return fmt.Errorf("claim alerts: %w", err)
		}
		alerts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.Alert, error) {
			sa, err := scanAlert(row)
			return sa.Alert, err
		})
		if err != nil {
			return fmt.Errorf("read claimed alerts: %w", err)
		}
		if len(alerts) == 0 {
			return nil
		}
		if err := publish(ctx, alerts); err != nil {
			return fmt.Errorf("publish %d alerts: %w", len(alerts), err)
		}
		ids := make([]string, len(alerts))
		for i, a := range alerts {
			ids[i] = a.AlertID
		}
		if err := markPublished(ctx, tx, ids); err != nil {
			return err
		}
		n = len(alerts)
		return nil
	})
	return n, err
}

// MarkPublished marks alerts published that were published without being claimed (the relay's
// handed-over alerts). An alert already marked keeps its first publication time.
func (s *Store) MarkPublished(ctx context.Context, alertIDs []string) error {
	return markPublished(ctx, s.pool, alertIDs)
}

// markPublishedSQL marks alerts published. It runs on the relay's connections, prepared once per
// connection like the group commit's statements (see KeyLookUpPlans).
const markPublishedSQL = `
UPDATE alerts SET published_at = coalesce(published_at, now()), publish_attempts = publish_attempts + 1
WHERE alert_id = ANY($1::uuid[])`

func markPublished(ctx context.Context, q querier, ids []string) error {
	if _, err := q.Exec(ctx, markPublishedSQL, ids); err != nil {
		return fmt.Errorf("mark %d alerts published: %w", len(ids), err)
	}
	return nil
}

// MarkFoundPublished marks published the alerts of alertIDs still unmarked in the outbox, having
// found them on the alert topic (a process died between publishing and marking them). It skips the
// rows another transaction holds (a poll claiming them) rather than wait for it, and returns how
// many it marked and the ids of those it skipped: they are on the topic and still unmarked.
func (s *Store) MarkFoundPublished(ctx context.Context, alertIDs []string) (int, []string, error) {
	var marked int
	var held []string
	for chunk := range slices.Chunk(alertIDs, markFoundChunk) {
		rows, err := s.pool.Query(ctx, markFoundPublishedSQL, chunk)
		if err != nil {
			return 0, nil, fmt.Errorf("mark %d alerts found on the topic published: %w", len(chunk), err)
		}
		type result struct {
			id     string
			marked bool
		}
		results, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (result, error) {
			var r result
			return r, row.Scan(&r.id, &r.marked)
		})
		if err != nil {
			return 0, nil, fmt.Errorf("mark %d alerts found on the topic published: %w", len(chunk), err)
		}
		for _, r := range results {
			if r.marked {
				marked++
			} else {
				held = append(held, r.id)
			}
		}
	}
	return marked, held, nil
}

// markFoundChunk bounds the ids of one MarkFoundPublished statement: a read-back can find every
// alert of several minutes of traffic.
const markFoundChunk = 5000

// markFoundPublishedSQL marks the unmarked, unheld alerts of $1 and returns them with true, and the
// unmarked ones it could not take with false. The last SELECT sees the rows as they were before
// the UPDATE (one snapshot for the whole statement), hence "not among those it marked".
// publish_attempts is left alone: this process did not publish them.
const markFoundPublishedSQL = `
WITH free AS (
    SELECT alert_id FROM alerts
    WHERE alert_id = ANY($1::uuid[]) AND published_at IS NULL
    FOR UPDATE SKIP LOCKED
), marked AS (
    UPDATE alerts a SET published_at = now()
    FROM free WHERE a.alert_id = free.alert_id
    RETURNING a.alert_id
)
SELECT alert_id::text, true FROM marked
UNION ALL
SELECT alert_id::text, false FROM alerts
WHERE alert_id = ANY($1::uuid[]) AND published_at IS NULL
  AND alert_id NOT IN (SELECT alert_id FROM marked)`

// OutboxBacklog returns how many alerts wait to be published and the age of the oldest one.
func (s *Store) OutboxBacklog(ctx context.Context) (int64, time.Duration, error) {
	var count int64
	var oldest *time.Time
	err := s.pool.QueryRow(ctx,
		`SELECT count(*), min(detected_at) FROM alerts WHERE published_at IS NULL`).Scan(&count, &oldest)
	if err != nil {
		return 0, 0, fmt.Errorf("read outbox backlog: %w", err)
	}
	if oldest == nil {
		return count, 0, nil
	}
	return count, time.Since(*oldest), nil
}
