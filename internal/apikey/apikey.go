// Package apikey is the API key as every part of Doppel sees it: a name, the scopes it grants and
// the SHA-256 of its secret, and the one constant-time match of a presented secret against the
// configured keys. config parses DOPPEL_API_KEYS into it, and the HTTP API and the review console
// authenticate with it, so the three agree on one type without any of them importing another.
package apikey

import (
	"crypto/sha256"
	"crypto/subtle"
	"slices"
)

// Scopes an API key can grant.
const (
	// ScopeRead allows the query endpoints (duplicates, checks, rings, alerts) and signing in to
	// the console.
	ScopeRead = "read"
	// ScopeReview allows recording reviews, in the API and the console.
	ScopeReview = "review"
	// ScopeReplay allows re-running face search, which the vendor bills again.
	ScopeReplay = "replay"
	// ScopeAssign allows assigning a case to someone else (a lead's act); claiming one's own needs
	// only review.
	ScopeAssign = "assign"
	// ScopeErase allows erasure requests (POST /v1/erasures) and reading them, reading the access
	// log and exporting a person's data: what removes or shows everything about a person. No other
	// scope implies it.
	ScopeErase = "erase"
)

// Scopes lists every scope a key can grant: the one table that parsing checks against.
var Scopes = []string{ScopeRead, ScopeReview, ScopeReplay, ScopeAssign, ScopeErase}

// Key is one configured API key: its name (recorded as the reviewer), its scopes and the SHA-256
// of its secret. The secret itself is never configured, stored or logged.
type Key struct {
	Name   string
	Scopes []string
	SHA256 [32]byte
}

// HasScope reports whether the key grants scope.
func (k Key) HasScope(scope string) bool { return slices.Contains(k.Scopes, scope) }

// Match finds the key among keys whose SHA-256 matches token. Every key is compared, in constant
// time, whatever matched, so timing tells nothing about the keys.
func Match(keys []Key, token string) (Key, bool) {
	if token == "" {
		return Key{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, k := range keys {
		if subtle.ConstantTimeCompare(sum[:], k.SHA256[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Key{}, false
	}
	return keys[found], true
}
