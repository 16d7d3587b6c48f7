package clip

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBytesNeverSplitsAUTF8Sequence(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", Bytes("abc", 3))
	require.Equal(t, "ab", Bytes("abc", 2))
	require.Equal(t, "a", Bytes("aé", 2), "é is two bytes: cut before it, not through it")
	require.Equal(t, "aé", Bytes("aéb", 3))
	require.Equal(t, "", Bytes("é", 1))
	require.Equal(t, "", Bytes("abc", 0))
}

func TestEllipsisMarksOnlyWhatWasCut(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", Ellipsis("abc", 3))
	require.Equal(t, "ab...", Ellipsis("abc", 2))
	require.Equal(t, "a...", Ellipsis("aé", 2))
}
