package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Store is the PostgreSQL implementation of duplicate.Store plus the outbox the relay drains.
type Store struct {
	pool *pgxpool.Pool
	// newAlertID is replaceable so tests can pin ids; production uses random UUIDs.
	newAlertID func() string
	policy     duplicate.AlertPolicy
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
	err := s.pool.QueryRow(ctx, `SELECT outcome FROM idv_checks WHERE signature_id = $1`, signatureID).Scan(&outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("select check: %w", err)
	}
	o := duplicate.Outcome(outcome)
	return o, o.Final(), nil
}

// SaveCheck stores the check, one link per matched user and, when a link is new, an alert row in the
// outbox, all in one transaction. A signatureId with a final outcome is left as it is (Stored false),
// which makes a redelivered event harmless; a non-final one (skipped, incomplete, failed) is
// overwritten by a later event.
//
// A transaction chosen as a deadlock victim (possible when it overlaps a group-commit batch, whose
// checks lock their links in check order) was rolled back whole, so it is simply run again.
func (s *Store) SaveCheck(ctx context.Context, check duplicate.Check) (duplicate.Saved, error) {
	var saved duplicate.Saved
	err := retryConflicts(ctx, func() error {
		return inTx(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			saved, err = s.saveCheckTx(ctx, tx, check)
			return err
		})
	})
	if err != nil {
		return duplicate.Saved{}, err
	}
	return saved, nil
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

func (s *Store) saveCheckTx(ctx context.Context, tx pgx.Tx, check duplicate.Check) (duplicate.Saved, error) {
	stored, err := insertCheck(ctx, tx, check)
	if err != nil || !stored {
		return duplicate.Saved{}, err
	}
	return s.linkAndAlert(ctx, tx, check)
}

// linkAndAlert upserts the check's links and, when some are new and no review cleared them, writes
// the alert with the user's ring. It is the part of storing a check that a re-run shares.
func (s *Store) linkAndAlert(ctx context.Context, tx pgx.Tx, check duplicate.Check) (duplicate.Saved, error) {
	saved := duplicate.Saved{Stored: true}
	if len(check.MatchedUserIDs) == 0 {
		return saved, nil
	}
	var err error
	saved.NewLinks, err = upsertLinks(ctx, tx, check)
	if err != nil {
		return duplicate.Saved{}, err
	}
	if len(saved.NewLinks) == 0 {
		return saved, nil
	}
	latest, err := latestDecisions(ctx, tx, check.UserID, saved.NewLinks)
	if err != nil {
		return duplicate.Saved{}, err
	}
	alertable := duplicate.AlertableLinks(saved.NewLinks, latest)
	if len(alertable) == 0 {
		return saved, nil
	}
	ring, err := ringOf(ctx, tx, check.UserID, false)
	if err != nil {
		return duplicate.Saved{}, err
	}
	saved.Alert = duplicate.NewAlert(s.newAlertID(), check, alertable, ring, s.policy)
	if err := insertAlert(ctx, tx, saved.Alert); err != nil {
		return duplicate.Saved{}, err
	}
	return saved, nil
}

// insertCheckSQL stores a check unless a final outcome exists; it returns a row only when it
// stored. The outcomes it replaces are those duplicate.Outcome.Final reports as not final (a
// notice, a verdict still to come, a failure); TestStoredOutcomesAreReplacedExactlyWhenNotFinal
// keeps the two in step.
const insertCheckSQL = `
INSERT INTO idv_checks (signature_id, user_id, event_type, outcome, overall_result, similar_user_ids,
    matched_user_ids, vendor_transaction_id, failure_reason, event_id, occurred_at,
    source_topic, source_partition, source_offset, checked_at)
VALUES ($1, NULLIF($2, ''), $3, $4, NULLIF($5, ''), $6, $7, NULLIF($8, ''), NULLIF($9, ''), NULLIF($10, ''), $11,
    NULLIF($12, ''), $13, $14, $15)
ON CONFLICT (signature_id) DO UPDATE SET
    user_id = EXCLUDED.user_id, event_type = EXCLUDED.event_type, outcome = EXCLUDED.outcome,
    overall_result = EXCLUDED.overall_result, similar_user_ids = EXCLUDED.similar_user_ids,
    matched_user_ids = EXCLUDED.matched_user_ids, vendor_transaction_id = EXCLUDED.vendor_transaction_id,
    failure_reason = EXCLUDED.failure_reason, event_id = EXCLUDED.event_id, occurred_at = EXCLUDED.occurred_at,
    source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition,
    source_offset = EXCLUDED.source_offset, checked_at = EXCLUDED.checked_at
WHERE idv_checks.outcome IN ('skipped', 'incomplete', 'failed')
RETURNING 1`

func insertCheckArgs(c duplicate.Check) []any {
	return []any{c.SignatureID, c.UserID, c.EventType, string(c.Outcome), c.OverallResult,
		nonNil(c.SimilarUserIDs), nonNil(c.MatchedUserIDs), c.VendorTransactionID, c.FailureReason, c.EventID,
		c.OccurredAt, c.Source.Topic, c.Source.Partition, c.Source.Offset, c.CheckedAt}
}

func insertCheck(ctx context.Context, tx pgx.Tx, c duplicate.Check) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, insertCheckSQL, insertCheckArgs(c)...).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // a final outcome already exists
	}
	if err != nil {
		return false, fmt.Errorf("insert check %s: %w", c.SignatureID, err)
	}
	return true, nil
}

// insertChecks stores many checks in one round trip (a pipelined pgx.Batch) and reports which were
// stored.
func insertChecks(ctx context.Context, tx pgx.Tx, checks []duplicate.Check) ([]bool, error) {
	batch := &pgx.Batch{}
	for _, c := range checks {
		batch.Queue(insertCheckSQL, insertCheckArgs(c)...)
	}
	results := tx.SendBatch(ctx, batch)
	stored := make([]bool, len(checks))
	for i, c := range checks {
		var one int
		err := results.QueryRow().Scan(&one)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			_ = results.Close()
			return nil, fmt.Errorf("insert check %s: %w", c.SignatureID, err)
		default:
			stored[i] = true
		}
	}
	return stored, results.Close()
}

// upsertLinks inserts or refreshes one link per matched user and returns the matched users whose link
// is new, in the check's order.
func upsertLinks(ctx context.Context, tx pgx.Tx, c duplicate.Check) ([]string, error) {
	q, args := upsertLinksQuery(c)
	rows, err := tx.Query(ctx, q, args...)
	return readNewLinks(rows, err, c)
}

// upsertLinksSQL inserts or refreshes the links of one check and returns, per matched user, whether
// its link is new.
const upsertLinksSQL = `
INSERT INTO duplicate_links AS l (user_id_low, user_id_high, first_seen_at, last_seen_at, seen_count,
    first_signature_id, last_signature_id, reaches_failed_attempt)
SELECT least($1::text, m), greatest($1::text, m), $2, $2, 1, $3, $3, m = ANY($5::text[])
FROM unnest($4::text[]) WITH ORDINALITY AS u(m, ord)
ORDER BY ord
ON CONFLICT (user_id_low, user_id_high) DO UPDATE SET
    last_seen_at = greatest(l.last_seen_at, EXCLUDED.last_seen_at),
    seen_count = l.seen_count + 1,
    last_signature_id = EXCLUDED.last_signature_id,
    reaches_failed_attempt = l.reaches_failed_attempt OR EXCLUDED.reaches_failed_attempt
RETURNING CASE WHEN l.user_id_low = $1::text THEN l.user_id_high ELSE l.user_id_low END, (xmax = 0)`

func upsertLinksQuery(c duplicate.Check) (string, []any) {
	// Rows are locked in canonical pair order so that two checks touching the same pairs cannot
	// deadlock each other.
	others := slices.Clone(c.MatchedUserIDs)
	slices.SortFunc(others, func(a, b string) int {
		al, ah := duplicate.Pair(c.UserID, a)
		bl, bh := duplicate.Pair(c.UserID, b)
		if al != bl {
			return compare(al, bl)
		}
		return compare(ah, bh)
	})
	return upsertLinksSQL, []any{c.UserID, c.CheckedAt, c.SignatureID, others, nonNil(c.MatchedFailedUserIDs)}
}

// readNewLinks reads upsertLinksSQL's rows and returns the matched users whose link is new, in the
// check's order.
func readNewLinks(rows pgx.Rows, err error, c duplicate.Check) ([]string, error) {
	if err != nil {
		return nil, fmt.Errorf("upsert links of %s: %w", c.SignatureID, err)
	}
	inserted := make(map[string]bool, len(c.MatchedUserIDs))
	var other string
	var isNew bool
	_, err = pgx.ForEachRow(rows, []any{&other, &isNew}, func() error {
		inserted[other] = isNew
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upsert links of %s: %w", c.SignatureID, err)
	}
	var newLinks []string
	for _, m := range c.MatchedUserIDs {
		if inserted[m] {
			newLinks = append(newLinks, m)
		}
	}
	return newLinks, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

const insertAlertSQL = `
INSERT INTO alerts (alert_id, signature_id, user_id, matched_user_ids, new_matched_user_ids,
    vendor_transaction_id, detected_at, ring_id, ring_size, severity, matched_failed_user_ids)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, NULLIF($8, ''), $9, $10, $11)`

func insertAlertArgs(a *duplicate.Alert) []any {
	return []any{a.AlertID, a.SignatureID, a.UserID, a.MatchedUserIDs, a.NewMatchedUserIDs, a.VendorTransactionID,
		a.DetectedAt, a.RingID, a.RingSize, a.Severity, nonNil(a.MatchedFailedUserIDs)}
}

func insertAlert(ctx context.Context, tx pgx.Tx, a *duplicate.Alert) error {
	if _, err := tx.Exec(ctx, insertAlertSQL, insertAlertArgs(a)...); err != nil {
		return fmt.Errorf("insert alert for %s: %w", a.SignatureID, err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// PublishAlerts claims up to limit unpublished alerts (oldest first, skipping rows another relay
// holds), hands them to publish and marks them published when publish returns nil, all in one
// transaction. If publish fails nothing is marked, so the alerts go out again later with the same
// alertId: delivery is at least once. It returns how many alerts were published.
func (s *Store) PublishAlerts(ctx context.Context, limit int, publish func(context.Context, []duplicate.Alert) error) (int, error) {
	var n int
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT `+alertColumns+`
FROM alerts
WHERE published_at IS NULL
ORDER BY detected_at, alert_id
LIMIT $1
FOR UPDATE SKIP LOCKED`, limit)
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
		if _, err := tx.Exec(ctx, `
UPDATE alerts SET published_at = now(), publish_attempts = publish_attempts + 1
WHERE alert_id = ANY($1::uuid[])`, ids); err != nil {
			return fmt.Errorf("mark alerts published: %w", err)
		}
		n = len(alerts)
		return nil
	})
	return n, err
}

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
