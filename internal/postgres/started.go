package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/reconcile"
)

var (
	_ reconcile.Store       = (*Store)(nil)
	_ reconcile.EnrollStore = (*Store)(nil)
)

// RecordStarted stores a started verification, first due for a poll after the given delay from its
// startedAt (or from now, when the event had none). The same event again changes nothing, and so
// does one of an erased person (its signatureId's tombstone, or its user's erased after it started):
// it is never polled. With tombstones the insert runs under the person's lock (see tombstone.go).
func (s *Store) RecordStarted(ctx context.Context, ev duplicate.Started, after time.Duration, src duplicate.Source) error {
	args := []any{ev.SignatureID, ev.UserID, ev.Region, after, src.Topic, src.Partition, src.Offset, ev.StartedAt,
		s.hash(ev.SignatureID), s.hash(ev.UserID)}
	var err error
	if s.tomb == nil || ev.UserID == "" {
		_, err = s.pool.Exec(ctx, recordStartedSQL, args...)
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockSubjectsSQL, []string{ev.UserID}); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, recordStartedSQL, args...)
			return err
		})
	}
	if err != nil {
		return markRefused(fmt.Errorf("record started verification %s: %w", ev.SignatureID, err))
	}
	return nil
}

const recordStartedSQL = `
INSERT INTO started_verifications (signature_id, user_id, region, started_at, next_poll_at,
    source_topic, source_partition, source_offset)
SELECT $1, NULLIF($2, ''), NULLIF($3, ''), t.at, t.at + $4::interval, NULLIF($5, ''), $6, $7
FROM (SELECT coalesce($8::timestamptz, now()) AS at) t
WHERE NOT EXISTS (SELECT 1 FROM erased_signatures e WHERE e.signature_hash = $9)
  AND NOT EXISTS (SELECT 1 FROM erased_users e WHERE e.user_hash = $10 AND e.erased_at > t.at)
ON CONFLICT (signature_id) DO NOTHING`

// SettleFinished settles every pending verification whose check has one of the outcomes, in one
// statement: recovered when polling found its verdict (and its check marked found by polling,
// with that verdict as its overall result when the check has none: a PASS's polled event carries
// its userId, so the main path did not ask get-result), completed otherwise.
func (s *Store) SettleFinished(ctx context.Context, outcomes []string) (completed, recovered int, err error) {
	rows, err := s.pool.Query(ctx, `
WITH settled AS (
    UPDATE started_verifications s
    SET status = CASE WHEN s.verdict IS NULL THEN 'completed' ELSE 'recovered' END, settled_at = now()
    FROM idv_checks c
    WHERE c.signature_id = s.signature_id AND s.status = 'pending' AND c.outcome = ANY($1)
    RETURNING s.signature_id, s.status, s.verdict
), marked AS (
    UPDATE idv_checks c SET found_by = 'polling', overall_result = coalesce(c.overall_result, settled.verdict)
    FROM settled WHERE settled.signature_id = c.signature_id AND settled.status = 'recovered'
)
SELECT status, count(*) FROM settled GROUP BY status`, outcomes)
	if err != nil {
		return 0, 0, fmt.Errorf("settle started verifications: %w", err)
	}
	var status string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		switch reconcile.Status(status) {
		case reconcile.StatusCompleted:
			completed = n
		case reconcile.StatusRecovered:
			recovered = n
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("settle started verifications: %w", err)
	}
	return completed, recovered, nil
}

// ExpireStartedBefore records pending verifications started before cutoff as expired.
func (s *Store) ExpireStartedBefore(ctx context.Context, cutoff time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `
UPDATE started_verifications SET status = 'expired', settled_at = now()
WHERE status = 'pending' AND started_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("expire started verifications: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// pruneBatch bounds the rows one pruning statement deletes, so that a first prune of a long
// history is many short transactions rather than one that holds its locks and WAL for minutes.
const pruneBatch = 10_000

// PruneSettledBefore deletes the verifications settled (completed, recovered or expired) before
// cutoff and returns how many. Pending ones are never deleted.
func (s *Store) PruneSettledBefore(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, `
DELETE FROM started_verifications WHERE signature_id IN (
    SELECT signature_id FROM started_verifications
    WHERE status <> 'pending' AND settled_at < $1
    LIMIT $2)`, cutoff, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune settled verifications: %w", err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}

// ClaimDue claims up to limit due verifications, skipping rows another instance is claiming, and
// moves their next poll one interval on in the same statement: that move is the lease.
func (s *Store) ClaimDue(ctx context.Context, owner string, limit int, interval time.Duration, skip []string) ([]reconcile.Due, error) {
	rows, err := s.pool.Query(ctx, `
UPDATE started_verifications s
SET next_poll_at = now() + $3::interval, polls = s.polls + 1, last_polled_at = now(), polled_by = $1
FROM (
    SELECT signature_id FROM started_verifications
    WHERE status = 'pending' AND next_poll_at <= now() AND coalesce(region, '') <> ALL($4::text[])
    ORDER BY next_poll_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) due
WHERE s.signature_id = due.signature_id
RETURNING s.signature_id, coalesce(s.user_id, ''), coalesce(s.region, ''), s.started_at, s.polls`,
		owner, limit, interval, nonNil(skip))
	if err != nil {
		return nil, fmt.Errorf("claim due verifications: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (reconcile.Due, error) {
		var d reconcile.Due
		err := row.Scan(&d.SignatureID, &d.UserID, &d.Region, &d.StartedAt, &d.Polls)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim due verifications: %w", err)
	}
	return due, nil
}

// RecordPoll stores what a poll found; a verdict, once found, is kept.
func (s *Store) RecordPoll(ctx context.Context, signatureID, verdict, note string) error {
	_, err := s.pool.Exec(ctx, `
UPDATE started_verifications SET verdict = coalesce(NULLIF($2, ''), verdict), last_poll_result = left($3, 500)
WHERE signature_id = $1`, signatureID, verdict, note)
	if err != nil {
		return fmt.Errorf("record poll of %s: %w", signatureID, err)
	}
	return nil
}

// ReleaseClaim makes a claimed verification due again at once; the claim does not count as a poll.
func (s *Store) ReleaseClaim(ctx context.Context, signatureID string) error {
	_, err := s.pool.Exec(ctx, `
UPDATE started_verifications SET next_poll_at = now(), polls = greatest(polls - 1, 0)
WHERE signature_id = $1 AND status = 'pending'`, signatureID)
	if err != nil {
		return fmt.Errorf("release claim of %s: %w", signatureID, err)
	}
	return nil
}

// RecentCounts returns how many verifications are pending, and how many were recovered and settled
// since since (Completed, Recovered and Expired are left zero). Both use partial indexes: it costs
// the window's rows, not the table's.
func (s *Store) RecentCounts(ctx context.Context, since time.Time) (reconcile.Counts, error) {
	var c reconcile.Counts
	err := s.pool.QueryRow(ctx, `
SELECT (SELECT count(*) FROM started_verifications WHERE status = 'pending'),
       count(*) FILTER (WHERE status = 'recovered'),
       count(*) FILTER (WHERE status IN ('completed', 'recovered'))
FROM started_verifications WHERE status <> 'pending' AND settled_at >= $1`, since).Scan(
		&c.Pending, &c.RecoveredRecent, &c.SettledRecent)
	if err != nil {
		return reconcile.Counts{}, fmt.Errorf("count recent started verifications: %w", err)
	}
	return c, nil
}

// Counts is RecentCounts plus the totals by status of every settled row kept (see
// PruneSettledBefore), which read them all: for the API, not for every poller round.
func (s *Store) Counts(ctx context.Context, since time.Time) (reconcile.Counts, error) {
	c, err := s.RecentCounts(ctx, since)
	if err != nil {
		return c, err
	}
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM started_verifications WHERE status <> 'pending' GROUP BY status`)
	if err != nil {
		return reconcile.Counts{}, fmt.Errorf("count started verifications: %w", err)
	}
	var status string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		switch reconcile.Status(status) {
		case reconcile.StatusCompleted:
			c.Completed = n
		case reconcile.StatusRecovered:
			c.Recovered = n
		case reconcile.StatusExpired:
			c.Expired = n
		}
		return nil
	})
	if err != nil {
		return reconcile.Counts{}, fmt.Errorf("count started verifications: %w", err)
	}
	return c, nil
}

// RaiseCallbacksMissing writes the alert to the outbox unless one was raised within the alert
// window; instances serialise on an advisory lock, so only one raises it.
func (s *Store) RaiseCallbacksMissing(ctx context.Context, a *reconcile.CallbacksMissing) (bool, error) {
	payload, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("encode callbacks_missing alert: %w", err)
	}
	var raised bool
	err = inTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('doppel.reconcile_alerts'))`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
INSERT INTO reconcile_alerts (alert_id, type, raised_at, payload)
SELECT $1, $2, $3, $4
WHERE NOT EXISTS (SELECT 1 FROM reconcile_alerts WHERE type = $2 AND raised_at > $3::timestamptz - $5::interval)`,
			a.AlertID, a.Type, a.DetectedAt, payload, reconcile.AlertWindow)
		raised = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("raise callbacks_missing alert: %w", err)
	}
	return raised, nil
}

// PublishReconcileAlerts hands unpublished callbacks_missing alerts to publish and marks them
// published when it returns nil, in one transaction (at least once, the alertId kept).
func (s *Store) PublishReconcileAlerts(ctx context.Context, publish func(ctx context.Context, alertID, alertType string, payload []byte) error) error {
	return inTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT alert_id::text, type, payload::text FROM reconcile_alerts WHERE published_at IS NULL
ORDER BY raised_at LIMIT 100 FOR UPDATE SKIP LOCKED`)
		if err != nil {
			return fmt.Errorf("claim callbacks_missing alerts: %w", err)
		}
		type row struct{ id, typ, payload string }
		pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.typ, &x.payload)
		})
		if err != nil {
			return fmt.Errorf("claim callbacks_missing alerts: %w", err)
		}
		for _, x := range pending {
			if err := publish(ctx, x.id, x.typ, []byte(x.payload)); err != nil {
				return fmt.Errorf("publish %s alert %s: %w", x.typ, x.id, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE reconcile_alerts SET published_at = now() WHERE alert_id = $1`, x.id); err != nil {
				return fmt.Errorf("mark alert %s published: %w", x.id, err)
			}
		}
		return nil
	})
}

// EnrollFailed claims final FAIL checks never enrolled, calls enroll for each while holding their
// rows (so no other instance enrols them at the same time), and records each answer. A failing
// enroll stops the batch; what was recorded before it is committed.
func (s *Store) EnrollFailed(ctx context.Context, limit int, skip []string,
	enroll func(ctx context.Context, signatureID, region string) (string, error)) (int, error) {
	var n int
	var stop error
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT signature_id, coalesce(region, '') FROM idv_checks
WHERE overall_result = 'FAIL' AND outcome = $1 AND enrolled_at IS NULL AND enroll_error IS NULL
  AND coalesce(region, '') <> ALL($3::text[])
ORDER BY checked_at
LIMIT $2
FOR UPDATE SKIP LOCKED`, string(duplicate.OutcomeNotPassed), limit, nonNil(skip))
		if err != nil {
			return fmt.Errorf("claim failed verifications: %w", err)
		}
		type failed struct{ sig, region string }
		claimed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (failed, error) {
			var f failed
			return f, r.Scan(&f.sig, &f.region)
		})
		if err != nil {
			return fmt.Errorf("claim failed verifications: %w", err)
		}
		for _, f := range claimed {
			sig := f.sig
			refused, err := enroll(ctx, sig, f.region)
			if err != nil {
				stop = err
				return nil // commit what was recorded
			}
			if _, err := tx.Exec(ctx, `
UPDATE idv_checks SET enrolled_at = CASE WHEN $2 = '' THEN now() END, enroll_error = NULLIF(left($2, 500), '')
WHERE signature_id = $1`, sig, refused); err != nil {
				return fmt.Errorf("record enrolment of %s: %w", sig, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if stop != nil {
		return n, stop
	}
	return n, nil
}

var _ duplicate.FailedAttempts = (*Store)(nil)

// FailedAttemptUsers returns those of userIDs known only by a failed verification enrolled in face
// search: an enrolled FAIL check and no check whose face search ran (which needs a PASS).
func (s *Store) FailedAttemptUsers(ctx context.Context, userIDs []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT f.user_id FROM idv_checks f
WHERE f.user_id = ANY($1) AND f.enrolled_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM idv_checks p WHERE p.user_id = f.user_id AND p.outcome = ANY($2))`,
		userIDs, []string{string(duplicate.OutcomeDuplicatesFound), string(duplicate.OutcomeNoDuplicates)})
	if err != nil {
		return nil, fmt.Errorf("look up failed attempts: %w", err)
	}
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up failed attempts: %w", err)
	}
	return users, nil
}
