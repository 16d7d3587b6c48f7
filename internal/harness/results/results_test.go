package results_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/results"
)

func TestWriteJSONIndentsEndsWithANewlineAndMakesTheFolder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "results", "run.json")
	require.NoError(t, results.WriteJSON(path, map[string]int{"events": 3}))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "{\n  \"events\": 3\n}\n", string(b))
}

func TestDashMarksAnEmptyCell(t *testing.T) {
	t.Parallel()
	require.Equal(t, "–", results.Dash(""))
	require.Equal(t, "yes", results.Dash("yes"))
}
