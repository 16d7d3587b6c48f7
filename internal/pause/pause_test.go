package pause_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/pause"
)

// Moved with the helper from childproc (was TestSleep there).
func TestFor(t *testing.T) {
	t.Parallel()
	require.True(t, pause.For(context.Background(), time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	began := time.Now()
	require.False(t, pause.For(ctx, time.Minute))
	require.Less(t, time.Since(began), 10*time.Second)
}
