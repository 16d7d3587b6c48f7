// Package analyst is the people who work the review console: their accounts (a name, a role, and
// either a local password or a single sign-on identity), the argon2id hashing of local passwords,
// the password rules, the throttle on failed sign-ins, and the one table that maps a role to the
// scopes the console and the API check. The console signs people in with it, `doppel analyst`
// manages the accounts, and postgres.Store keeps them.
package analyst

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Account is one analyst as stored.
type Account struct {
	Name string
	Role Role
	// PasswordHash is the argon2id hash in PHC form of a local account; "" for single sign-on.
	PasswordHash string
	// OIDCIssuer and OIDCSubject name a single-sign-on account at its provider; "" for a local one.
	OIDCIssuer, OIDCSubject string
	CreatedAt               time.Time
	DisabledAt              *time.Time
	// DisabledBy is who disabled the account: an admin's name, or "command line".
	DisabledBy   string
	LastSignInAt *time.Time
}

// Local reports whether the account signs in with a password kept here.
func (a Account) Local() bool { return a.PasswordHash != "" }

// Disabled reports whether the account may no longer sign in.
func (a Account) Disabled() bool { return a.DisabledAt != nil }

// ErrNotFound is returned for a name no account has.
var ErrNotFound = errors.New("no analyst has that name")

// ErrExists is returned when adding a name an account already has.
var ErrExists = errors.New("an analyst already has that name")

// Store keeps the accounts; postgres.Store implements it.
type Store interface {
	AddAnalyst(ctx context.Context, a Account) error
	Analyst(ctx context.Context, name string) (Account, error)
	Analysts(ctx context.Context) ([]Account, error)
	// DisableAnalyst marks the account disabled at now by whom and ends its console sessions, in
	// one transaction; it returns how many sessions ended.
	DisableAnalyst(ctx context.Context, name, by string, now time.Time) (sessions int64, err error)
	// EnableAnalyst undoes DisableAnalyst.
	EnableAnalyst(ctx context.Context, name string) error
	// UpsertSSOAnalyst records a single-sign-on account as the provider describes it now (its role
	// follows the provider's claim at each sign-in) and returns it as stored.
	UpsertSSOAnalyst(ctx context.Context, a Account) (Account, error)
	SetLastSignIn(ctx context.Context, name string, at time.Time) error
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,63}$`)

// NormalizeName returns name as accounts are keyed: trimmed and lower-case, so "Alice" and "alice"
// are one person. It fails for a name outside 1-64 of a-z 0-9 . _ @ - (starting with a letter or
// digit), which is what the audit and the logs can show without escaping.
func NormalizeName(name string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if !validName.MatchString(n) {
		return "", fmt.Errorf("analyst name %q: use 1 to 64 of a-z, 0-9, '.', '_', '@', '-', starting with a letter or digit", name)
	}
	return n, nil
}

// Session is a console sign-in as stored: an API key's (KeyName) or an analyst's (Analyst, with
// the account's role and state read at each request, so a role changed or an account disabled
// applies at once).
type Session struct {
	KeyName  string
	Analyst  string
	Role     Role
	Disabled bool
	CSRF     string
	Flash    string
}
