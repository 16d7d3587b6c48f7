package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const checkColumns = `signature_id, coalesce(user_id, ''), event_type, outcome, coalesce(overall_result, ''),
    similar_user_ids, matched_user_ids, coalesce(vendor_transaction_id, ''), coalesce(failure_reason, ''),
    coalesce(event_id, ''), occurred_at, coalesce(source_topic, ''), coalesce(source_partition, 0),
    coalesce(source_offset, 0), checked_at, replay_count, replayed_at, found_by, enrolled_at, region`

func scanCheck(row pgx.Row) (duplicate.Check, error) {
	var c duplicate.Check
	var outcome string
	err := row.Scan(&c.SignatureID, &c.UserID, &c.EventType, &outcome, &c.OverallResult, &c.SimilarUserIDs,
		&c.MatchedUserIDs, &c.VendorTransactionID, &c.FailureReason, &c.EventID, &c.OccurredAt, &c.Source.Topic,
		&c.Source.Partition, &c.Source.Offset, &c.CheckedAt, &c.ReplayCount, &c.ReplayedAt, &c.FoundBy, &c.EnrolledAt, &c.Region)
	c.Outcome = duplicate.Outcome(outcome)
	c.CheckedAt = c.CheckedAt.UTC()
	if c.OccurredAt != nil {
		t := c.OccurredAt.UTC()
		c.OccurredAt = &t
	}
	if c.ReplayedAt != nil {
		t := c.ReplayedAt.UTC()
		c.ReplayedAt = &t
	}
	return c, err
}

// Check returns the stored check of signatureID, or a duplicate.ENOTFOUND error.
func (s *Store) Check(ctx context.Context, signatureID string) (duplicate.Check, error) {
	c, err := scanCheck(s.pool.QueryRow(ctx, `SELECT `+checkColumns+` FROM idv_checks WHERE signature_id = $1`, signatureID))
	if errors.Is(err, pgx.ErrNoRows) {
		return duplicate.Check{}, duplicate.Errorf(duplicate.ENOTFOUND, "no check is stored for signatureId %q", signatureID)
	}
	if err != nil {
		return duplicate.Check{}, fmt.Errorf("select check %s: %w", signatureID, err)
	}
	return c, nil
}

// MissingChecks returns the signatureIds, of those given, that have no stored check, in their order.
func (s *Store) MissingChecks(ctx context.Context, signatureIDs []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
SELECT u.sig FROM unnest($1::text[]) WITH ORDINALITY AS u(sig, ord)
WHERE NOT EXISTS (SELECT 1 FROM idv_checks c WHERE c.signature_id = u.sig)
ORDER BY u.ord`, signatureIDs)
	if err != nil {
		return nil, fmt.Errorf("look up checks: %w", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up checks: %w", err)
	}
	return missing, nil
}

// UserKnown reports whether Doppel has seen userID: in a stored check, in a link or in a ring (an
// account only a face farm's overflow named has neither check nor link).
func (s *Store) UserKnown(ctx context.Context, userID string) (bool, error) {
	return userKnown(ctx, s.pool, userID)
}

func userKnown(ctx context.Context, q querier, userID string) (bool, error) {
	var known bool
	err := q.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM idv_checks WHERE user_id = $1)
    OR EXISTS (SELECT 1 FROM duplicate_links WHERE user_id_low = $1)
    OR EXISTS (SELECT 1 FROM duplicate_links WHERE user_id_high = $1)
    OR EXISTS (SELECT 1 FROM ring_members WHERE user_id = $1)`, userID).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("look up user: %w", err)
	}
	return known, nil
}

func unknownUser(userID string) error {
	return duplicate.Errorf(duplicate.ENOTFOUND, "no check or link mentions userId %q", userID)
}

// UserDuplicates returns the accounts linked to userID (at most duplicate.MaxLinkedAccounts, earliest linked
// first), each with the signatureIds that linked the pair and the pair's review history. An unknown
// user is a duplicate.ENOTFOUND error; a known user without links has none. A region keeps only the
// links that region's face search found; "" keeps all.
func (s *Store) UserDuplicates(ctx context.Context, userID, region string) ([]duplicate.LinkedAccount, error) {
	var out []duplicate.LinkedAccount
	err := s.readKnownUser(ctx, userID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT duplicate_user_id, first_seen_at, last_seen_at, seen_count, first_signature_id, last_signature_id, regions
FROM duplicate_accounts
WHERE user_id = $1 AND ($3 = '' OR $3 = ANY (regions))
ORDER BY first_seen_at, duplicate_user_id
LIMIT $2`, userID, duplicate.MaxLinkedAccounts, region)
		if err != nil {
			return fmt.Errorf("select links of user: %w", err)
		}
		index := map[string]int{}
		var firstSig, lastSig string
		var a duplicate.LinkedAccount
		_, err = pgx.ForEachRow(rows, []any{&a.UserID, &a.FirstSeenAt, &a.LastSeenAt, &a.SeenCount, &firstSig, &lastSig, &a.Regions}, func() error {
			a.FirstSeenAt, a.LastSeenAt = a.FirstSeenAt.UTC(), a.LastSeenAt.UTC()
			a.SignatureIDs = []string{firstSig}
			if lastSig != firstSig {
				a.SignatureIDs = append(a.SignatureIDs, lastSig)
			}
			index[a.UserID] = len(out)
			out = append(out, a)
			return nil
		})
		if err != nil {
			return fmt.Errorf("select links of user: %w", err)
		}
		if len(out) == 0 {
			return nil
		}
		if err := addLinkingSignatures(ctx, tx, userID, out, index); err != nil {
			return err
		}
		return addReviewHistory(ctx, tx, userID, out, index)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// addLinkingSignatures adds every stored check that linked userID to each account: the user's own
// checks that matched it and its checks that matched the user, oldest first.
func addLinkingSignatures(ctx context.Context, tx pgx.Tx, userID string, out []duplicate.LinkedAccount, index map[string]int) error {
	// Only the user's own checks and those of the accounts already linked to it can hold the pair,
	// so the user_id index finds them all.
	users := make([]string, 0, len(out)+1)
	users = append(users, userID)
	for _, a := range out {
		users = append(users, a.UserID)
	}
	rows, err := tx.Query(ctx, `
SELECT CASE WHEN c.user_id = $1 THEN m ELSE c.user_id END, c.signature_id
FROM idv_checks c
CROSS JOIN LATERAL unnest(c.matched_user_ids) AS m
WHERE c.user_id = ANY($2::text[])
  AND (c.user_id = $1 OR m = $1)
ORDER BY c.checked_at, c.signature_id`, userID, users)
	if err != nil {
		return fmt.Errorf("select linking checks: %w", err)
	}
	var other, sig string
	_, err = pgx.ForEachRow(rows, []any{&other, &sig}, func() error {
		if i, ok := index[other]; ok && !slices.Contains(out[i].SignatureIDs, sig) {
			out[i].SignatureIDs = append(out[i].SignatureIDs, sig)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("select linking checks: %w", err)
	}
	return nil
}

func addReviewHistory(ctx context.Context, tx pgx.Tx, userID string, out []duplicate.LinkedAccount, index map[string]int) error {
	rows, err := tx.Query(ctx, `
SELECT `+reviewColumns+`
FROM link_reviews
WHERE user_id_low = $1 OR user_id_high = $1
ORDER BY reviewed_at DESC, review_id DESC`, userID)
	if err != nil {
		return fmt.Errorf("select reviews: %w", err)
	}
	reviews, err := pgx.CollectRows(rows, scanReview)
	if err != nil {
		return fmt.Errorf("select reviews: %w", err)
	}
	for _, r := range reviews {
		r = orient(r, userID)
		if i, ok := index[r.DuplicateUserID]; ok {
			r.Linked = true
			out[i].Reviews = append(out[i].Reviews, r)
		}
	}
	return nil
}

const alertColumns = `alert_id::text, signature_id, user_id, matched_user_ids, new_matched_user_ids,
    coalesce(matched_count, cardinality(matched_user_ids)), coalesce(new_matched_count, cardinality(new_matched_user_ids)),
    coalesce(vendor_transaction_id, ''), detected_at, coalesce(ring_id, ''), coalesce(ring_size, 0), severity,
    published_at, matched_failed_user_ids, region`

func scanAlert(row pgx.CollectableRow) (duplicate.StoredAlert, error) {
	a := duplicate.StoredAlert{Alert: duplicate.Alert{Type: duplicate.AlertType, Version: duplicate.AlertVersion}}
	err := row.Scan(alertDestinations(&a)...)
	normalizeAlert(&a)
	return a, err
}

// alertDestinations are the scan destinations of alertColumns, in order.
func alertDestinations(a *duplicate.StoredAlert) []any {
	return []any{&a.AlertID, &a.SignatureID, &a.UserID, &a.MatchedUserIDs, &a.NewMatchedUserIDs,
		&a.MatchedCount, &a.NewMatchedCount, &a.VendorTransactionID, &a.DetectedAt, &a.RingID, &a.RingSize, &a.Severity, &a.PublishedAt,
		&a.MatchedFailedUserIDs, &a.Region}
}

// normalizeAlert puts a scanned alert's times in UTC.
func normalizeAlert(a *duplicate.StoredAlert) {
	a.DetectedAt = a.DetectedAt.UTC()
	if len(a.MatchedFailedUserIDs) == 0 {
		a.MatchedFailedUserIDs = nil // omitted from the JSON, as when the alert was raised
	}
	if a.PublishedAt != nil {
		t := a.PublishedAt.UTC()
		a.PublishedAt = &t
	}
}

// Alerts returns a page of alerts in (detected_at, alert_id) order (descending with
// q.NewestFirst): beyond q.After when it is set, else from q.Since on, filtered as q says.
func (s *Store) Alerts(ctx context.Context, q duplicate.AlertQuery) ([]duplicate.StoredAlert, error) {
	sql, args := alertsSQL(q)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("select alerts: %w", err)
	}
	alerts, err := pgx.CollectRows(rows, scanAlertWithStatus)
	if err != nil {
		return nil, fmt.Errorf("select alerts: %w", err)
	}
	return alerts, nil
}

// ReplayCandidates returns the signatureIds of checks first stored in [from, to) whose outcome came
// from a face search, oldest first, at most limit.
func (s *Store) ReplayCandidates(ctx context.Context, from, to time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
SELECT signature_id FROM idv_checks
WHERE checked_at >= $1 AND checked_at < $2 AND outcome IN ('duplicates_found', 'no_duplicates')
ORDER BY checked_at, signature_id
LIMIT $3`, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("select checks to replay: %w", err)
	}
	sigs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("select checks to replay: %w", err)
	}
	return sigs, nil
}

// FaceSearchesSince counts the face searches region's stored checks record from since on: each
// check whose outcome came from a search first stored then, and each re-run then (the latest per
// check). It is a region's monthly spend, read back from what is stored so that a restart does not
// reset it.
func (s *Store) FaceSearchesSince(ctx context.Context, region string, since time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
SELECT (SELECT count(*) FROM idv_checks
        WHERE region = $1 AND checked_at >= $2 AND outcome IN ('duplicates_found', 'no_duplicates'))
     + (SELECT count(*) FROM idv_checks WHERE region = $1 AND replayed_at >= $2)`, region, since).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count face searches of region %s: %w", region, err)
	}
	return n, nil
}
