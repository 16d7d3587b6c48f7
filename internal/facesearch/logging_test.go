package facesearch

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/advance"
)

func TestCircuitChangesAreLoggedOnceEachWithTheReason(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	client := &scriptedClient{}
	v := New(client, Config{BreakerFailures: 3, BreakerOpenFor: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()

	client.err.Store(&advance.Error{Code: "HTTP_503", Kind: advance.KindTransient, Message: "upstream down"})
	for range 20 { // 3 open the circuit; the other 17 are refused without a line each
		_, _ = v.FaceSearch(ctx, "s1")
	}
	client.err.Store(nil)
	time.Sleep(150 * time.Millisecond)
	_, err := v.FaceSearch(ctx, "s2")
	require.NoError(t, err)

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 3, logs.String())
	require.Contains(t, lines[0], `msg="vendor circuit open: calls stopped, consumption waits"`)
	require.Contains(t, lines[0], "HTTP_503", "the reason is the failure that opened it")
	require.Contains(t, lines[1], "half-open")
	require.Contains(t, lines[2], `msg="vendor circuit closed: calls resumed"`)
	require.Contains(t, lines[2], "open_for=")
}
