package metrics

import (
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// The lists themselves are the service's to pass: internal/service checks that every dead-letter
// reason and every retried classification has its series (TestEveryCounterSeriesExistsBeforeItsFirstEvent).
func TestNewCreatesTheSeriesItIsGivenAtZero(t *testing.T) {
	t.Parallel()
	series := Series{DeadLetterReasons: []string{"invalid_json", "retries_exhausted"},
		Retries: []Retry{{"retry", "transient_failure"}, {"wait", "database_unavailable"}}}
	page := scrape(t, New(series))
	for _, r := range series.DeadLetterReasons {
		require.Contains(t, page, `doppel_dead_letters_total{reason="`+r+`"} 0`, "dead letters by %s exist at zero", r)
	}
	for _, r := range series.Retries {
		require.Contains(t, page, `doppel_consumer_retries_total{action="`+r.Action+`",reason="`+r.Reason+`"} 0`)
	}
	for _, o := range knownOutcomes {
		require.Contains(t, page, `doppel_event_outcomes_total{outcome="`+o+`"} 0`)
	}
}

func TestBuildInfoNamesTheBuild(t *testing.T) {
	t.Parallel()
	page := scrape(t, New(Series{}))
	require.Regexp(t, `doppel_build_info\{commit="[^"]+",goversion="`+runtime.Version()+`",version="dev"\} 1`, page)
}

func TestHTTPRequestsByRouteAndStatus(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.HTTPRequest("/v1/users/:userId/duplicates", "GET", 200, 3*time.Millisecond)
	m.HTTPRequest("/v1/users/:userId/duplicates", "GET", 200, 4*time.Millisecond)
	m.HTTPRequest("", "GET", 404, time.Millisecond)
	require.InDelta(t, 2, testutil.ToFloat64(m.httpRequests.WithLabelValues("/v1/users/:userId/duplicates", "GET", "200")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.httpRequests.WithLabelValues("unmatched", "GET", "404")), 0,
		"unmatched paths share one series, so a scanner cannot blow up the label set")
	require.Contains(t, scrape(t, m), `doppel_http_request_duration_seconds_count{method="GET",route="/v1/users/:userId/duplicates"} 2`)
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	return strings.ReplaceAll(rec.Body.String(), "\r", "")
}
