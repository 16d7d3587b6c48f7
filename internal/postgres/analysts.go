package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/doppelhq/doppel/internal/analyst"
)

const analystColumns = `name, role, coalesce(password_hash, ''), coalesce(oidc_issuer, ''), coalesce(oidc_subject, ''),
    created_at, disabled_at, coalesce(disabled_by, ''), last_sign_in_at`

func scanAnalyst(row pgx.CollectableRow) (analyst.Account, error) {
	var a analyst.Account
	var role string
	err := row.Scan(&a.Name, &role, &a.PasswordHash, &a.OIDCIssuer, &a.OIDCSubject, &a.CreatedAt, &a.DisabledAt, &a.DisabledBy, &a.LastSignInAt)
	a.Role = analyst.Role(role)
	return a, err
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// AddAnalyst stores a new account; analyst.ErrExists when the name is taken.
func (s *Store) AddAnalyst(ctx context.Context, a analyst.Account) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO analysts (name, role, password_hash, oidc_issuer, oidc_subject) VALUES ($1, $2, $3, $4, $5)`,
		a.Name, string(a.Role), nullIfEmpty(a.PasswordHash), nullIfEmpty(a.OIDCIssuer), nullIfEmpty(a.OIDCSubject))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return analyst.ErrExists
	}
	if err != nil {
		return fmt.Errorf("add analyst: %w", err)
	}
	return nil
}

// Analyst returns the account called name; analyst.ErrNotFound when there is none.
func (s *Store) Analyst(ctx context.Context, name string) (analyst.Account, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+analystColumns+` FROM analysts WHERE name = $1`, name)
	a, err := pgx.CollectExactlyOneRow(rows, scanAnalyst)
	if errors.Is(err, pgx.ErrNoRows) {
		return analyst.Account{}, analyst.ErrNotFound
	}
	if err != nil {
		return analyst.Account{}, fmt.Errorf("read analyst: %w", err)
	}
	return a, nil
}

// Analysts lists every account by name.
func (s *Store) Analysts(ctx context.Context) ([]analyst.Account, error) {
	rows, _ := s.pool.Query(ctx, `SELECT `+analystColumns+` FROM analysts ORDER BY name`)
	as, err := pgx.CollectRows(rows, scanAnalyst)
	if err != nil {
		return nil, fmt.Errorf("list analysts: %w", err)
	}
	return as, nil
}

// DisableAnalyst marks the account disabled (by whom, kept from the first time) and ends its console sessions in one transaction.
func (s *Store) DisableAnalyst(ctx context.Context, name, by string, now time.Time) (int64, error) {
	var ended int64
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE analysts SET disabled_at = coalesce(disabled_at, $2), disabled_by = coalesce(disabled_by, $3) WHERE name = $1`,
			name, now, by)
		if err != nil {
			return fmt.Errorf("disable analyst: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return analyst.ErrNotFound
		}
		tag, err = tx.Exec(ctx, `DELETE FROM console_sessions WHERE analyst = $1`, name)
		if err != nil {
			return fmt.Errorf("end analyst's sessions: %w", err)
		}
		ended = tag.RowsAffected()
		return nil
	})
	return ended, err
}

// EnableAnalyst lets a disabled analyst sign in again.
func (s *Store) EnableAnalyst(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE analysts SET disabled_at = NULL, disabled_by = NULL WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("enable analyst: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return analyst.ErrNotFound
	}
	return nil
}

// UpsertSSOAnalyst records a single-sign-on account under its name with the role the provider
// gives now. A name held by a local account, or by another subject of the provider, is refused
// with analyst.ErrExists: the provider cannot sign someone in as another person.
func (s *Store) UpsertSSOAnalyst(ctx context.Context, a analyst.Account) (analyst.Account, error) {
	rows, _ := s.pool.Query(ctx, `
INSERT INTO analysts (name, role, oidc_issuer, oidc_subject) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO UPDATE SET role = excluded.role
WHERE analysts.oidc_issuer = excluded.oidc_issuer AND analysts.oidc_subject = excluded.oidc_subject
RETURNING `+analystColumns, a.Name, string(a.Role), a.OIDCIssuer, a.OIDCSubject)
	stored, err := pgx.CollectExactlyOneRow(rows, scanAnalyst)
	if errors.Is(err, pgx.ErrNoRows) {
		return analyst.Account{}, analyst.ErrExists
	}
	if err != nil {
		return analyst.Account{}, fmt.Errorf("record single-sign-on analyst: %w", err)
	}
	return stored, nil
}

// SetLastSignIn records when the analyst last signed in.
func (s *Store) SetLastSignIn(ctx context.Context, name string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE analysts SET last_sign_in_at = $2 WHERE name = $1`, name, at); err != nil {
		return fmt.Errorf("record sign-in: %w", err)
	}
	return nil
}

// SetPasswordHash replaces a local account's hash (a re-hash under raised costs).
func (s *Store) SetPasswordHash(ctx context.Context, name, hash string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE analysts SET password_hash = $2 WHERE name = $1 AND password_hash IS NOT NULL`, name, hash); err != nil {
		return fmt.Errorf("store password hash: %w", err)
	}
	return nil
}

// TakeSignInAttempt counts one sign-in attempt against every key unless one has used its limit in
// its window, checking and counting in one transaction that holds the keys' rows (locked in the
// order of keys), and drops the rows of windows that ended: the table holds one window's worth.
func (s *Store) TakeSignInAttempt(ctx context.Context, keys []string, limits []int, now time.Time, window time.Duration) (time.Time, error) {
	var blockedUntil time.Time
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sign_in_failures WHERE window_start <= $1::timestamptz - $2::interval AND throttle_key <> ALL($3)`,
			now, window, keys); err != nil {
			return err
		}
		for i, key := range keys {
			var start time.Time
			var count int
			err := tx.QueryRow(ctx, `
INSERT INTO console_sign_in_failures AS f (throttle_key, window_start, failures) VALUES ($1, $2, 0)
ON CONFLICT (throttle_key) DO UPDATE SET
    window_start = CASE WHEN f.window_start <= $2::timestamptz - $3::interval THEN $2 ELSE f.window_start END,
    failures     = CASE WHEN f.window_start <= $2::timestamptz - $3::interval THEN 0 ELSE f.failures END
RETURNING window_start, failures`, key, now, window).Scan(&start, &count)
			if err != nil {
				return err
			}
			if count >= limits[i] {
				blockedUntil = later(blockedUntil, start.Add(window))
			}
		}
		if !blockedUntil.IsZero() {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE console_sign_in_failures SET failures = failures + 1 WHERE throttle_key = ANY($1)`, keys)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("count sign-in attempt: %w", err)
	}
	return blockedUntil, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// RefundSignInAttempt forgets clearKey's count and takes one attempt back from decrementKey's.
func (s *Store) RefundSignInAttempt(ctx context.Context, clearKey, decrementKey string) error {
	_, err := s.pool.Exec(ctx, `
WITH cleared AS (DELETE FROM console_sign_in_failures WHERE throttle_key = $1)
UPDATE console_sign_in_failures SET failures = failures - 1 WHERE throttle_key = $2 AND failures > 0`, clearKey, decrementKey)
	if err != nil {
		return fmt.Errorf("refund sign-in attempt: %w", err)
	}
	return nil
}

// CreateAnalystSession records an analyst's console sign-in under the SHA-256 of its token.
func (s *Store) CreateAnalystSession(ctx context.Context, tokenSHA256 []byte, name, csrf string, now, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO console_sessions (token_sha256, analyst, csrf, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)`, tokenSHA256, name, csrf, now, expires)
	if err != nil {
		return fmt.Errorf("create console session: %w", err)
	}
	return nil
}
