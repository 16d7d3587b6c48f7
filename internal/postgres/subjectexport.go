package postgres

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// SubjectExport reads everything held about userID in one read-only REPEATABLE READ transaction, so
// that the document is one consistent state even while events, reviews and erasures go on. A
// person Doppel holds nothing about gets an empty document (and a ring of one), not an error: "we
// hold nothing" is an answer a privacy officer must be able to give.
//
// Most parts are index look-ups by userId. Two are not: alerts naming the person among the matches
// and reviews whose note names them read every row of alerts and link_reviews, which is fine for a
// request a privacy officer makes a few times a day, not for a route on a dashboard.
func (s *Store) SubjectExport(ctx context.Context, userID string) (duplicate.SubjectExport, error) {
	out := duplicate.SubjectExport{UserID: userID, Overflow: map[string][]string{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		for _, part := range []func(context.Context, pgx.Tx, string, *duplicate.SubjectExport) error{
			exportChecks, exportNamedIn, exportStarted, exportLinks, exportRing, exportAlerts, exportReviews, exportReads,
		} {
			if err := part(ctx, tx, userID, &out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return duplicate.SubjectExport{}, fmt.Errorf("export user: %w", err)
	}
	return out, nil
}

func exportChecks(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	rows, err := tx.Query(ctx, `SELECT `+checkColumns+` FROM idv_checks WHERE user_id = $1 ORDER BY checked_at, signature_id`, userID)
	if err != nil {
		return fmt.Errorf("select checks: %w", err)
	}
	if out.Checks, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.Check, error) { return scanCheck(row) }); err != nil {
		return fmt.Errorf("select checks: %w", err)
	}
	rows, err = tx.Query(ctx, `
SELECT o.signature_id, o.user_ids FROM check_overflow o JOIN idv_checks c USING (signature_id) WHERE c.user_id = $1`, userID)
	if err != nil {
		return fmt.Errorf("select check overflow: %w", err)
	}
	var sig string
	var ids []string
	_, err = pgx.ForEachRow(rows, []any{&sig, &ids}, func() error {
		out.Overflow[sig] = ids
		return nil
	})
	if err != nil {
		return fmt.Errorf("select check overflow: %w", err)
	}
	return nil
}

// exportNamedIn finds other accounts' checks that named userID. Only an account linked to the
// person or in their ring can hold such a check (a match is a link, or past the per-check bound a
// ring membership), so the user_id index finds them all.
func exportNamedIn(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	rows, err := tx.Query(ctx, `
WITH candidates AS (
    SELECT user_id_high AS user_id FROM duplicate_links WHERE user_id_low = $1
    UNION SELECT user_id_low FROM duplicate_links WHERE user_id_high = $1
    UNION SELECT m.user_id FROM ring_members m
          WHERE m.ring_key = (SELECT ring_key FROM ring_members WHERE user_id = $1)
)
SELECT c.signature_id, c.user_id, c.region, c.checked_at
FROM idv_checks c
LEFT JOIN check_overflow o ON o.signature_id = c.signature_id
WHERE c.user_id IN (SELECT user_id FROM candidates) AND c.user_id <> $1
  AND ($1 = ANY (c.similar_user_ids) OR $1 = ANY (c.matched_user_ids) OR $1 = ANY (coalesce(o.user_ids, '{}')))
ORDER BY c.checked_at, c.signature_id`, userID)
	if err != nil {
		return fmt.Errorf("select checks naming the user: %w", err)
	}
	out.NamedIn, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.NamingCheck, error) {
		var n duplicate.NamingCheck
		err := row.Scan(&n.SignatureID, &n.UserID, &n.Region, &n.CheckedAt)
		n.CheckedAt = n.CheckedAt.UTC()
		return n, err
	})
	if err != nil {
		return fmt.Errorf("select checks naming the user: %w", err)
	}
	return nil
}

func exportStarted(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	rows, err := tx.Query(ctx, `
SELECT signature_id, coalesce(region, ''), started_at, status, coalesce(verdict, ''), settled_at
FROM started_verifications WHERE user_id = $1 ORDER BY started_at, signature_id`, userID)
	if err != nil {
		return fmt.Errorf("select started verifications: %w", err)
	}
	out.Started, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.StartedVerification, error) {
		var v duplicate.StartedVerification
		err := row.Scan(&v.SignatureID, &v.Region, &v.StartedAt, &v.Status, &v.Verdict, &v.SettledAt)
		v.StartedAt = v.StartedAt.UTC()
		if v.SettledAt != nil {
			t := v.SettledAt.UTC()
			v.SettledAt = &t
		}
		return v, err
	})
	if err != nil {
		return fmt.Errorf("select started verifications: %w", err)
	}
	return nil
}

func exportLinks(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	rows, err := tx.Query(ctx, `
SELECT user_id_low, user_id_high, first_seen_at, last_seen_at, seen_count, first_signature_id, last_signature_id, regions
FROM duplicate_links WHERE user_id_low = $1
UNION ALL
SELECT user_id_low, user_id_high, first_seen_at, last_seen_at, seen_count, first_signature_id, last_signature_id, regions
FROM duplicate_links WHERE user_id_high = $1
ORDER BY first_seen_at, user_id_low, user_id_high`, userID)
	if err != nil {
		return fmt.Errorf("select links: %w", err)
	}
	out.Links, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.Link, error) {
		var l duplicate.Link
		err := row.Scan(&l.UserIDLow, &l.UserIDHigh, &l.FirstSeenAt, &l.LastSeenAt, &l.SeenCount, &l.FirstSignatureID,
			&l.LastSignatureID, &l.Regions)
		l.FirstSeenAt, l.LastSeenAt = l.FirstSeenAt.UTC(), l.LastSeenAt.UTC()
		return l, err
	})
	if err != nil {
		return fmt.Errorf("select links: %w", err)
	}
	return nil
}

func exportRing(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	ring, err := ringOf(ctx, tx, userID, noLinks, "")
	if err != nil {
		return err
	}
	ring.Links = nil
	out.Ring = ring
	return nil
}

func exportAlerts(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	rows, err := tx.Query(ctx, `
SELECT `+alertColumns+`, `+alertOpenSQL+` FROM alerts a
WHERE a.user_id = $1 OR $1 = ANY (a.matched_user_ids) OR $1 = ANY (a.new_matched_user_ids) OR $1 = ANY (a.matched_failed_user_ids)
ORDER BY a.detected_at, a.alert_id`, userID)
	if err != nil {
		return fmt.Errorf("select alerts: %w", err)
	}
	if out.Alerts, err = pgx.CollectRows(rows, scanAlertWithStatus); err != nil {
		return fmt.Errorf("select alerts: %w", err)
	}
	return nil
}

func exportReviews(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	rows, err := tx.Query(ctx, `
SELECT `+reviewColumns+` FROM link_reviews
WHERE user_id_low = $1 OR user_id_high = $1 OR strpos(note, $1) > 0
ORDER BY reviewed_at, review_id`, userID)
	if err != nil {
		return fmt.Errorf("select reviews: %w", err)
	}
	reviews, err := pgx.CollectRows(rows, scanReview)
	if err != nil {
		return fmt.Errorf("select reviews: %w", err)
	}
	for _, r := range reviews {
		if r.UserID == userID || r.DuplicateUserID == userID || namesUser(r.Note, userID) {
			out.Reviews = append(out.Reviews, r)
		}
	}
	return nil
}

// namesUser reports whether note names userID as a whole id: not inside a longer one
// ("cust-100" is not named by "cust-1004") nor inside a word.
func namesUser(note, userID string) bool {
	for from := 0; ; {
		i := strings.Index(note[from:], userID)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(userID)
		before, _ := utf8.DecodeLastRuneInString(note[:start])
		after, _ := utf8.DecodeRuneInString(note[end:])
		if !idRune(before) && !idRune(after) {
			return true
		}
		from = start + 1
	}
}

// idRune reports whether r can continue an id: a letter, a digit, '-' or '_'.
func idRune(r rune) bool {
	return r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

func exportReads(ctx context.Context, tx pgx.Tx, userID string, out *duplicate.SubjectExport) error {
	rows, err := tx.Query(ctx, `
SELECT read_at, actor, via, what, coalesce(ring_id, '') FROM access_log
WHERE user_ids @> ARRAY[$1::text] ORDER BY read_at, entry_id`, userID)
	if err != nil {
		return fmt.Errorf("select access log: %w", err)
	}
	out.Reads, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (duplicate.Read, error) {
		var r duplicate.Read
		err := row.Scan(&r.At, &r.Actor, &r.Via, &r.What, &r.RingID)
		r.At = r.At.UTC()
		return r, err
	})
	if err != nil {
		return fmt.Errorf("select access log: %w", err)
	}
	return nil
}
