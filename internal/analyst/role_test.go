package analyst_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/apikey"
)

func TestRolesMapToTheScopesTheChecksAskFor(t *testing.T) {
	t.Parallel()
	require.ElementsMatch(t, []string{apikey.ScopeRead, apikey.ScopeReview}, analyst.Reviewer.Scopes())
	require.False(t, analyst.Reviewer.Can(apikey.ScopeReplay), "a reviewer cannot re-run searches")
	require.True(t, analyst.Lead.Can(apikey.ScopeReplay), "a lead can")
	require.True(t, analyst.Lead.Can(apikey.ScopeReview))
	for _, r := range analyst.Roles {
		for _, s := range r.Scopes() {
			require.Contains(t, apikey.Scopes, s, "%s grants %s, which no check knows", r, s)
		}
	}
	// Each role can do what the one below it does.
	for i := 1; i < len(analyst.Roles); i++ {
		require.Subset(t, analyst.Roles[i].Scopes(), analyst.Roles[i-1].Scopes())
		require.True(t, analyst.Roles[i].AtLeast(analyst.Roles[i-1]))
		require.False(t, analyst.Roles[i-1].AtLeast(analyst.Roles[i]))
	}
	require.True(t, analyst.Admin.AtLeast(analyst.Admin))
	require.Empty(t, analyst.Role("root").Scopes())
	_, err := analyst.ParseRole("root")
	require.ErrorContains(t, err, "reviewer, lead or admin")
}

func TestNamesAreNormalizedToWhatTheAuditCanShow(t *testing.T) {
	t.Parallel()
	n, err := analyst.NormalizeName("  Alice.Tan@Risk ")
	require.NoError(t, err)
	require.Equal(t, "alice.tan@risk", n)
	for _, bad := range []string{"", "-alice", "al ice", "alice\u202e", "a/b", string(make([]byte, 65))} {
		_, err := analyst.NormalizeName(bad)
		require.Error(t, err, "%q", bad)
	}
}
