package pseudonym_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/pseudonym"
)

// A log line names a person by a pseudonym that is the same for the same id under the same key,
// different under another key, and never the id itself.
func TestALogLineCarriesAPseudonymNeverTheUserID(t *testing.T) {
	t.Parallel()
	key := pseudonym.NewKey([]byte("0123456789abcdef0123456789abcdef"))
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{ReplaceAttr: key.ReplaceAttr}))
	log.Info("check stored", "user_id", "cust-1004", "matched_user_ids", []string{"cust-1011", "cust-1019"},
		"signature_id", "sig-1")
	line := out.String()
	for _, id := range []string{"cust-1004", "cust-1011", "cust-1019"} {
		require.NotContains(t, line, id)
		require.Contains(t, line, key.Of(id))
	}
	require.Contains(t, line, `"signature_id":"sig-1"`, "other attributes are left alone")

	require.Equal(t, key.Of("cust-1004"), key.Of("cust-1004"))
	require.NotEqual(t, key.Of("cust-1004"), key.Of("cust-1005"))
	require.NotEqual(t, key.Of("cust-1004"), pseudonym.NewKey([]byte("another key, another pseudonym!!")).Of("cust-1004"))
	require.NotEqual(t, key.Of("cust-1004"), pseudonym.RandomKey().Of("cust-1004"))
	require.True(t, strings.HasPrefix(key.Of("x"), "p_"))
	require.Len(t, key.Hash("x"), 64)
}
