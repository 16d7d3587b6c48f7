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
    created_at, disabled_at, last_sign_in_at`

func scanAnalyst(row pgx.CollectableRow) (analyst.Account, error) {
	var a analyst.Account
	var role string
	err := row.Scan(&a.Name, &role, &a.PasswordHash, &a.OIDCIssuer, &a.OIDCSubject, &a.CreatedAt, &a.DisabledAt, &a.LastSignInAt)
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

// DisableAnalyst marks the account disabled and ends its console sessions in one transaction.
func (s *Store) DisableAnalyst(ctx context.Context, name string, now time.Time) (int64, error) {
	var ended int64
	err := inTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE analysts SET disabled_at = coalesce(disabled_at, $2) WHERE name = $1`, name, now)
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

// SignInFailures returns the failure counts of keys whose window started after since.
func (s *Store) SignInFailures(ctx context.Context, keys []string, since time.Time) ([]analyst.Failures, error) {
	rows, _ := s.pool.Query(ctx, `SELECT throttle_key, window_start, failures FROM console_sign_in_failures
WHERE throttle_key = ANY($1) AND window_start > $2`, keys, since)
	fs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (analyst.Failures, error) {
		var f analyst.Failures
		return f, row.Scan(&f.Key, &f.WindowStart, &f.Count)
	})
	if err != nil {
		return nil, fmt.Errorf("read sign-in failures: %w", err)
	}
	return fs, nil
}

// RecordSignInFailure counts one failure for each key, in one statement per call (so instances
// counting at once lose none), and drops the rows of windows that ended: the table holds one
// window's worth.
func (s *Store) RecordSignInFailure(ctx context.Context, keys []string, now time.Time, window time.Duration) error {
	_, err := s.pool.Exec(ctx, `
WITH swept AS (DELETE FROM console_sign_in_failures WHERE window_start <= $2::timestamptz - $3::interval AND throttle_key <> ALL($1))
INSERT INTO console_sign_in_failures (throttle_key, window_start, failures)
SELECT k, $2, 1 FROM unnest($1::text[]) AS k
ON CONFLICT (throttle_key) DO UPDATE SET
    window_start = CASE WHEN console_sign_in_failures.window_start <= $2::timestamptz - $3::interval THEN $2 ELSE console_sign_in_failures.window_start END,
    failures     = CASE WHEN console_sign_in_failures.window_start <= $2::timestamptz - $3::interval THEN 1 ELSE console_sign_in_failures.failures + 1 END`,
		keys, now, window)
	if err != nil {
		return fmt.Errorf("count sign-in failure: %w", err)
	}
	return nil
}

// ClearSignInFailures forgets key's failures.
func (s *Store) ClearSignInFailures(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sign_in_failures WHERE throttle_key = $1`, key); err != nil {
		return fmt.Errorf("clear sign-in failures: %w", err)
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
