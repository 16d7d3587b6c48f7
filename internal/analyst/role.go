package analyst

import (
	"fmt"
	"slices"

	"github.com/doppelhq/doppel/internal/apikey"
)

// Role is what an analyst may do.
type Role string

// The roles, each able to do what the one before it does and more.
const (
	// Reviewer reads and decides.
	Reviewer Role = "reviewer"
	// Lead also assigns work to others and re-runs searches (billed again by the vendor).
	Lead Role = "lead"
	// Admin also manages analysts and erases people's data.
	Admin Role = "admin"
)

// Roles lists every role, least first.
var Roles = []Role{Reviewer, Lead, Admin}

// roleScopes is the one place a role becomes the scopes the console and the API check (the API
// key scopes of internal/apikey): a check asks for a scope, never for a role, so a key and a
// person are judged alike. A scope added later (erase) is given to the roles here.
var roleScopes = map[Role][]string{
	Reviewer: {apikey.ScopeRead, apikey.ScopeReview},
	Lead:     {apikey.ScopeRead, apikey.ScopeReview, apikey.ScopeReplay, apikey.ScopeAssign},
	Admin:    {apikey.ScopeRead, apikey.ScopeReview, apikey.ScopeReplay, apikey.ScopeAssign, apikey.ScopeErase},
}

// ManagesAnalysts reports whether role may list and disable analysts in the console (no API scope
// grants it: managing people is a person's act).
func (r Role) ManagesAnalysts() bool { return r == Admin }

// Scopes returns the scopes role grants (none for an unknown role).
func (r Role) Scopes() []string { return slices.Clone(roleScopes[r]) }

// Can reports whether role grants scope.
func (r Role) Can(scope string) bool { return slices.Contains(roleScopes[r], scope) }

// AtLeast reports whether r is other or above it (for what no scope names: managing analysts is
// AtLeast(Admin)).
func (r Role) AtLeast(other Role) bool {
	return slices.Index(Roles, r) >= slices.Index(Roles, other) && slices.Contains(Roles, other)
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles, r) }

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("role %q: choose reviewer, lead or admin", s)
	}
	return r, nil
}
