package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/analyst"
)

// CreateSession records a console sign-in under the SHA-256 of its token.
func (s *Store) CreateSession(ctx context.Context, tokenSHA256 []byte, keyName, csrf string, now, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO console_sessions (token_sha256, key_name, csrf, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)`, tokenSHA256, keyName, csrf, now, expires)
	if err != nil {
		return fmt.Errorf("create console session: %w", err)
	}
	return nil
}

// Session returns the session whose token hashes to tokenSHA256, with its analyst's role and
// state read now, and false when there is none or it ended by now.
func (s *Store) Session(ctx context.Context, tokenSHA256 []byte, now time.Time) (analyst.Session, bool, error) {
	var out analyst.Session
	var keyName, name, role *string
	err := s.pool.QueryRow(ctx, `SELECT s.key_name, s.analyst, a.role, a.disabled_at IS NOT NULL, s.csrf, s.flash
FROM console_sessions s LEFT JOIN analysts a ON a.name = s.analyst
WHERE s.token_sha256 = $1 AND s.expires_at > $2`, tokenSHA256, now).Scan(&keyName, &name, &role, &out.Disabled, &out.CSRF, &out.Flash)
	if errors.Is(err, pgx.ErrNoRows) {
		return analyst.Session{}, false, nil
	}
	if err != nil {
		return analyst.Session{}, false, fmt.Errorf("read console session: %w", err)
	}
	if keyName != nil {
		out.KeyName = *keyName
	}
	if name != nil {
		out.Analyst = *name
	}
	if role != nil {
		out.Role = analyst.Role(*role)
	}
	return out, true, nil
}

// SetSessionFlash leaves msg for the session's next page.
func (s *Store) SetSessionFlash(ctx context.Context, tokenSHA256 []byte, msg string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE console_sessions SET flash = $2 WHERE token_sha256 = $1`, tokenSHA256, msg); err != nil {
		return fmt.Errorf("set console flash: %w", err)
	}
	return nil
}

// TakeSessionFlash returns the session's message and clears it, in one statement: two pages
// loading at once show it once.
func (s *Store) TakeSessionFlash(ctx context.Context, tokenSHA256 []byte) (string, error) {
	var msg string
	err := s.pool.QueryRow(ctx, `
UPDATE console_sessions n SET flash = ''
FROM (SELECT token_sha256, flash FROM console_sessions WHERE token_sha256 = $1 AND flash <> '' FOR UPDATE) o
WHERE n.token_sha256 = o.token_sha256
RETURNING o.flash`, tokenSHA256).Scan(&msg)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("take console flash: %w", err)
	}
	return msg, nil
}

// EndSession deletes a session (sign-out).
func (s *Store) EndSession(ctx context.Context, tokenSHA256 []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE token_sha256 = $1`, tokenSHA256); err != nil {
		return fmt.Errorf("end console session: %w", err)
	}
	return nil
}

// EndSessionsBefore deletes the sessions that ended by now and returns how many.
func (s *Store) EndSessionsBefore(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("sweep console sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
