package buildinfo

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGetNeverLeavesALabelEmpty(t *testing.T) {
	info := Get()
	require.Equal(t, "dev", info.Version, "a test binary has no -ldflags version")
	require.NotEmpty(t, info.Commit)
	require.Equal(t, runtime.Version(), info.GoVersion)
}

func TestLinkTimeVersionWins(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	version = "v1.2.3"
	require.Equal(t, "v1.2.3", Get().Version)
}
