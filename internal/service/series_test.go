package service

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/deadletter"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/pipeline"
)

// The series come from the lists their owners keep; this checks that the wiring passes them all,
// as metrics.New itself cannot know them (it imports neither deadletter nor the pipeline).
func TestEveryCounterSeriesExistsBeforeItsFirstEvent(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	metrics.New(metricSeries()).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	page := rec.Body.String()
	for _, r := range deadletter.Reasons {
		require.Contains(t, page, `doppel_dead_letters_total{reason="`+r+`"} 0`, "dead letters by %s exist at zero", r)
	}
	require.Len(t, pipeline.Retries, 5)
	for _, c := range pipeline.Retries {
		require.Contains(t, page, `doppel_consumer_retries_total{action="`+c.Action.String()+`",reason="`+c.Reason+`"} 0`)
	}
}
