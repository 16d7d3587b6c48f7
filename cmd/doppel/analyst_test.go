package main

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

func TestAnalystAddListDisableOnARealDatabase(t *testing.T) {
	t.Parallel()
	dbURL, pool := testinfra.Database(t)
	environ := map[string]string{"DOPPEL_DATABASE_URL": dbURL}
	store := postgres.NewStore(pool)

	out, _, err := doppel(t, environ, "violet tractor umbrella\n", "analyst", "add", "Rita", "--role", "reviewer")
	require.NoError(t, err)
	require.Equal(t, "added analyst rita (reviewer)\n", out)
	acct, err := store.Analyst(context.Background(), "rita")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(acct.PasswordHash, "$argon2id$v=19$"), "stored as an argon2id PHC hash")
	require.NotContains(t, acct.PasswordHash, "violet")
	require.True(t, analyst.VerifyPassword(acct.PasswordHash, "violet tractor umbrella"), "the newline is not part of it")

	_, _, err = doppel(t, environ, "orange piano seventeen\n", "analyst", "add", "omar", "--role", "lead")
	require.NoError(t, err)

	// Refused: a weak or empty password, an unknown role, a name taken; nothing is added.
	for _, tc := range []struct{ stdin, want string }{{"", "empty"}, {"short\n", "shorter than 12"}, {"i-am-omar2-really\n", "name"}} {
		_, _, err = doppel(t, environ, tc.stdin, "analyst", "add", "omar2", "--role", "lead")
		require.ErrorContains(t, err, tc.want)
		if tc.want != "name" {
			require.ErrorContains(t, err, "nothing was added")
		}
	}
	_, _, err = doppel(t, environ, "orange piano seventeen\n", "analyst", "add", "omar2", "--role", "root")
	require.ErrorContains(t, err, "choose reviewer, lead or admin")
	_, _, err = doppel(t, environ, "orange piano seventeen\n", "analyst", "add", "omar2")
	require.ErrorContains(t, err, `"role" not set`)
	_, _, err = doppel(t, environ, "another good passphrase\n", "analyst", "add", "RITA", "--role", "admin")
	require.ErrorIs(t, err, analyst.ErrExists)
	_, err = store.Analyst(context.Background(), "omar2")
	require.ErrorIs(t, err, analyst.ErrNotFound)

	// A console session of rita's, to see disable end it.
	token := sha256.Sum256([]byte("rita-session"))
	require.NoError(t, store.CreateAnalystSession(context.Background(), token[:], "rita", "csrf", time.Now(), time.Now().Add(time.Hour)))

	out, _, err = doppel(t, environ, "", "analyst", "list")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^NAME\s+ROLE\s+SIGNS IN WITH\s+STATUS\s+LAST SIGN-IN$`, lines[0])
	require.Regexp(t, `^omar\s+lead\s+password\s+active\s+never$`, lines[1])
	require.Regexp(t, `^rita\s+reviewer\s+password\s+active\s+never$`, lines[2])

	out, _, err = doppel(t, environ, "", "analyst", "disable", "rita")
	require.NoError(t, err)
	require.Equal(t, "disabled analyst rita; ended 1 console session(s)\n", out)
	_, ok, err := store.Session(context.Background(), token[:], time.Now())
	require.NoError(t, err)
	require.False(t, ok, "her session is gone")
	out, _, err = doppel(t, environ, "", "analyst", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^rita\s+reviewer\s+password\s+disabled \d{4}-\d\d-\d\d by command line\s+never$`, out)

	out, _, err = doppel(t, environ, "", "analyst", "enable", "rita")
	require.NoError(t, err)
	require.Equal(t, "enabled analyst rita\n", out)
	out, _, err = doppel(t, environ, "", "analyst", "list")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^rita\s+reviewer\s+password\s+active\s+never$`, out)

	_, _, err = doppel(t, environ, "", "analyst", "disable", "nobody")
	require.ErrorIs(t, err, analyst.ErrNotFound)
}
