package scale_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/scale"
)

// The scale run times the analysts' queries exactly as docs/api.md writes them: every statement
// of the block, named by its comment, with the example ids replaced.
func TestTheAnalystQueriesAreReadFromTheAPIDoc(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../../docs/api.md")
	require.NoError(t, err)
	queries, err := scale.AnalystQueries(string(doc), "scale-u1", "scale-u'2")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(queries), 5)
	for _, q := range queries {
		require.True(t, strings.HasPrefix(q.Name, "SQL: "), q.Name)
		require.NotContains(t, q.SQL, "'alice'")
		require.NotContains(t, q.SQL, "--")
		require.True(t, strings.HasPrefix(q.SQL, "SELECT"), q.SQL)
	}
	joined := queries[0].SQL
	for _, q := range queries[1:] {
		joined += "\n" + q.SQL
	}
	require.Contains(t, joined, "'scale-u1'")
	require.Contains(t, joined, "'scale-u''2'", "a quote in an id is escaped")

	_, err = scale.AnalystQueries("# no such section", "a", "b")
	require.Error(t, err)
}
