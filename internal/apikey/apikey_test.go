package apikey_test

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/apikey"
)

func TestMatchFindsTheKeyByItsHashOnly(t *testing.T) {
	t.Parallel()
	keys := []apikey.Key{
		{Name: "dashboard", Scopes: []string{apikey.ScopeRead}, SHA256: sha256.Sum256([]byte("read-key"))},
		{Name: "analyst", Scopes: []string{apikey.ScopeRead, apikey.ScopeReview}, SHA256: sha256.Sum256([]byte("review-key"))},
	}
	key, ok := apikey.Match(keys, "review-key")
	require.True(t, ok)
	require.Equal(t, "analyst", key.Name)
	require.True(t, key.HasScope(apikey.ScopeReview))
	require.False(t, key.HasScope(apikey.ScopeReplay))

	_, ok = apikey.Match(keys, "unknown-key")
	require.False(t, ok)
	_, ok = apikey.Match(keys, "")
	require.False(t, ok, "an empty token matches nothing, even a key configured with the hash of nothing")
	_, ok = apikey.Match(append(keys, apikey.Key{Name: "empty", SHA256: sha256.Sum256(nil)}), "")
	require.False(t, ok)
}
