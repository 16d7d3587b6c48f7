package service

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/httpapi"
)

func TestReadinessChangesAreLoggedOnceEach(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var failure error
	checks := logReadiness(slog.New(slog.NewTextHandler(&logs, nil)), []httpapi.ReadinessCheck{
		{Name: "kafka", Check: func(context.Context) error { return failure }}})
	probe := func(n int) {
		for range n {
			_ = checks[0].Check(context.Background())
		}
	}
	probe(3)
	failure = errors.New("no broker answers")
	probe(5)
	failure = nil
	probe(4)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.Len(t, lines, 3, logs.String())
	require.Contains(t, lines[0], "msg=ready check=kafka")
	require.Contains(t, lines[1], `msg="not ready" check=kafka reason="no broker answers"`)
	require.Contains(t, lines[2], "msg=ready check=kafka")
}
