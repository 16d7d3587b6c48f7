package config_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/config"
)

func hashOf(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func withMinimal(extra map[string]string) map[string]string {
	vals := map[string]string{}
	for k, v := range minimal {
		vals[k] = v
	}
	for k, v := range extra {
		vals[k] = v
	}
	return vals
}

func TestAPIKeysAreParsedFromHashes(t *testing.T) {
	t.Parallel()
	raw := "analyst:read+review:" + hashOf("k1") + "; dashboard:read:" + strings.ToUpper(hashOf("k2")) + ";"
	cfg, err := config.Load("", env(withMinimal(map[string]string{"DOPPEL_API_KEYS": raw,
		"DOPPEL_CALLBACK_TOKEN": "0123456789abcdef", "DOPPEL_RING_HIGH_SEVERITY_SIZE": "4"})))
	require.NoError(t, err)
	keys := cfg.Keys()
	require.Len(t, keys, 2)
	require.Equal(t, "analyst", keys[0].Name)
	require.True(t, keys[0].HasScope(apikey.ScopeReview))
	require.True(t, keys[0].HasScope(apikey.ScopeRead))
	require.Equal(t, sha256.Sum256([]byte("k1")), keys[0].SHA256)
	require.False(t, keys[1].HasScope(apikey.ScopeReview))
	require.Equal(t, 4, cfg.RingHighSeveritySize)

	var out bytes.Buffer
	require.NoError(t, config.Loaded{Config: cfg}.Describe(&out))
	require.NotContains(t, out.String(), hashOf("k1"))
	require.NotContains(t, out.String(), "0123456789abcdef")
	require.Contains(t, out.String(), "DOPPEL_API_KEYS=*****")
	require.Contains(t, out.String(), "DOPPEL_CALLBACK_TOKEN=*****")
	require.Regexp(t, `(?m)^DOPPEL_CALLBACK_HMAC_SECRET= +# default$`, out.String())
}

func TestBadAPIKeysSayHowToFixThemWithoutEchoingSecrets(t *testing.T) {
	t.Parallel()
	secretish := "notahash-" + strings.Repeat("s", 40)
	for _, tc := range []struct{ raw, want string }{
		{"analyst:" + hashOf("k"), "is not name:scopes:sha256hex"},
		{"analyst:admin:" + hashOf("k"), `unknown scope "admin"`},
		{"analyst:read:" + secretish, "SHA-256 as 64 hex digits"},
		{"bad name:read:" + hashOf("k"), "the name must be"},
		{"a:read:" + hashOf("k") + ";a:review:" + hashOf("j"), "used twice"},
		{"a:read:" + hashOf("k") + ";b:review:" + hashOf("k"), "configured twice"},
	} {
		_, err := config.Load("", env(withMinimal(map[string]string{"DOPPEL_API_KEYS": tc.raw})))
		require.ErrorContains(t, err, tc.want, tc.raw)
		require.NotContains(t, err.Error(), secretish)
		require.NotContains(t, err.Error(), hashOf("k"))
	}
}

func TestCallbackAndRingSettingsAreValidated(t *testing.T) {
	t.Parallel()
	_, err := config.Load("", env(withMinimal(map[string]string{"DOPPEL_CALLBACK_TOKEN": "short-token",
		"DOPPEL_CALLBACK_HMAC_SECRET": "short", "DOPPEL_RING_HIGH_SEVERITY_SIZE": "1", "DOPPEL_CALLBACK_TIMEOUT": "-1s"})))
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "DOPPEL_CALLBACK_TOKEN must be at least 16 characters")
	require.Contains(t, msg, "DOPPEL_CALLBACK_HMAC_SECRET must be at least 16 characters")
	require.Contains(t, msg, "DOPPEL_RING_HIGH_SEVERITY_SIZE must be 0")
	require.Contains(t, msg, "DOPPEL_CALLBACK_TIMEOUT must be positive")
	require.NotContains(t, msg, "short-token")

	cfg, err := config.Load("", env(minimal))
	require.NoError(t, err)
	require.Empty(t, cfg.Keys())
	require.Equal(t, 5, cfg.RingHighSeveritySize)
}
