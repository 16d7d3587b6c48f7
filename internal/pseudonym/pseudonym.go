// Package pseudonym turns a person's userId into a keyed hash: HMAC-SHA-256 under
// DOPPEL_PSEUDONYM_KEY. The same id always gives the same pseudonym, so the log lines about one
// person can still be followed and compared, but nobody without the key can tell whose they are
// or test a guess. Log lines carry pseudonyms instead of userIds (DOPPEL_LOG_PSEUDONYMIZE, on by
// default): a log is copied to more places, and kept longer, than the database it describes.
package pseudonym

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"slices"
)

// Key is the secret of the keyed hash.
type Key struct{ secret []byte }

// NewKey returns the key whose secret is secret.
func NewKey(secret []byte) Key { return Key{secret: slices.Clone(secret)} }

// RandomKey returns a key nobody knows, for a process started without DOPPEL_PSEUDONYM_KEY: its
// pseudonyms are stable for its life only, and differ from another instance's.
func RandomKey() Key {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (Go 1.24+)
	return Key{secret: b}
}

// Hash returns the keyed hash of id, in hex (64 characters).
func (k Key) Hash(id string) string {
	m := hmac.New(sha256.New, k.secret)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// Of returns the pseudonym a log line shows for userId: "p_" and the first 24 hex characters of
// its keyed hash (96 bits: no two people of a realistic population share one).
func (k Key) Of(userID string) string { return "p_" + k.Hash(userID)[:24] }

// UserIDKeys are the log attribute keys whose value is a userId or a list of them. A log line that
// names a person uses one of these keys, so that ReplaceAttr finds it.
var UserIDKeys = []string{"user_id", "duplicate_user_id", "first_user_id", "user_ids", "matched_user_ids"}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that replaces the value of every attribute
// named in UserIDKeys (a string, or a list of strings) by its pseudonym.
func (k Key) ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	if !slices.Contains(UserIDKeys, a.Key) {
		return a
	}
	switch v := a.Value.Any().(type) {
	case string:
		return slog.String(a.Key, k.Of(v))
	case []string:
		out := make([]string, len(v))
		for i, id := range v {
			out[i] = k.Of(id)
		}
		return slog.Any(a.Key, out)
	default:
		return slog.String(a.Key, "p_?") // a userId key with an unexpected value: never printed as it is
	}
}
