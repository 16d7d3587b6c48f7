package analyst

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAPasswordIsHashedWithArgon2idInPHCFormAndVerified(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse battery staple")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
	require.NotContains(t, h, "correct horse")
	require.True(t, VerifyPassword(h, "correct horse battery staple"))
	require.False(t, VerifyPassword(h, "correct horse battery stapl"))
	require.False(t, VerifyPassword(h, ""))

	again, err := HashPassword("correct horse battery staple")
	require.NoError(t, err)
	require.NotEqual(t, h, again, "a fresh salt each time")
	require.False(t, NeedsRehash(h))
}

// The costs are read from the hash: a hash made under lower costs still verifies, and is due for a
// re-hash under the current ones; raising DefaultParams needs no migration.
func TestTheCostsInTheHashAreTheOnesItIsVerifiedWith(t *testing.T) {
	t.Parallel()
	old, err := hashWith("an older stronger one", Params{MemoryKiB: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(old, "$argon2id$v=19$m=8192,t=1,p=1$"))
	require.True(t, VerifyPassword(old, "an older stronger one"))
	require.True(t, NeedsRehash(old))

	// Tampering with the recorded costs breaks the match rather than weakening it.
	require.False(t, VerifyPassword(strings.Replace(old, "t=1", "t=2", 1), "an older stronger one"))
}

func TestAMalformedHashMatchesNothing(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"", "plaintext", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=0,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA"} {
		require.False(t, VerifyPassword(h, ""), h)
		require.True(t, NeedsRehash(h), h)
	}
}

func TestWeakPasswordsAreRefusedSayingWhy(t *testing.T) {
	t.Parallel()
	for pw, why := range map[string]string{
		"":                          "empty",
		"short-1":                   "shorter than 12",
		"aaaaaaaaaaaaaaaa":          "fewer than 5 different",
		"abababcabcabcabc":          "fewer than 5 different",
		"alice-rocks-2026":          "name",
		"Password1234!":             "guessing list",
		strings.Repeat("xyzuv", 60): "longer than 256",
	} {
		err := CheckPassword("alice", pw)
		require.Error(t, err, pw)
		require.Contains(t, err.Error(), why, pw)
	}
	require.NoError(t, CheckPassword("alice", "violet tractor umbrella"))
}
