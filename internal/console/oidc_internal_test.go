package console

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTheAnalystsNameComesFromTheUsernameAVerifiedEmailOrTheSubject(t *testing.T) {
	t.Parallel()
	require.Equal(t, "ana", personName(map[string]any{"preferred_username": "ana", "email": "a@x", "sub": "1"}))
	require.Equal(t, "a@x", personName(map[string]any{"email": "a@x", "email_verified": true, "sub": "1"}))
	require.Equal(t, "a@x", personName(map[string]any{"email": "a@x", "sub": "1"}), "a provider that does not say")
	require.Equal(t, "1", personName(map[string]any{"email": "a@x", "email_verified": false, "sub": "1"}))
	require.Equal(t, "x", claimAt(map[string]any{"realm_access": map[string]any{"roles": "x"}}, "realm_access.roles"))
	require.Equal(t, "y", claimAt(map[string]any{"realm_access.roles": "y"}, "realm_access.roles"), "a flat name first")
	require.Nil(t, claimAt(map[string]any{"a": "b"}, "a.b"))
}
