package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

func TestConsumerObserverMovesCounters(t *testing.T) {
	t.Parallel()
	m := New(Series{})

	m.Finished("idv.completed", 2, false, "")
	m.Finished("idv.completed", 2, false, "")
	m.Finished("idv.completed", 0, true, "bad_json")
	m.Retried("retry", "transient_failure")
	m.Retried("wait", "database_unavailable")
	m.Retried("wait", "database_unavailable")
	m.InFlight(7)

	require.InDelta(t, 2, testutil.ToFloat64(m.finished.WithLabelValues("idv.completed", "2", "processed")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.finished.WithLabelValues("idv.completed", "0", "dead_lettered")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.deadLetters.WithLabelValues("bad_json")), 0,
		"a message the consumer dead-letters counts under its reason")
	require.InDelta(t, 1, testutil.ToFloat64(m.retries.WithLabelValues("retry", "transient_failure")), 0)
	require.InDelta(t, 2, testutil.ToFloat64(m.retries.WithLabelValues("wait", "database_unavailable")), 0)
	require.InDelta(t, 7, testutil.ToFloat64(m.inFlight), 0)
	m.InFlight(0)
	require.InDelta(t, 0, testutil.ToFloat64(m.inFlight), 0)
}

func TestPartitionProgressAndUnwritableDeadLetters(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.PartitionProgress(3, 150*time.Second, true)
	m.PartitionProgress(4, 0, false)
	require.InDelta(t, 1, testutil.ToFloat64(m.stalled.WithLabelValues("3")), 0)
	require.InDelta(t, 150, testutil.ToFloat64(m.stuckFor.WithLabelValues("3")), 0)
	require.InDelta(t, 0, testutil.ToFloat64(m.stalled.WithLabelValues("4")), 0)
	m.PartitionProgress(3, 0, false)
	require.InDelta(t, 0, testutil.ToFloat64(m.stalled.WithLabelValues("3")), 0, "a resumed partition reads 0")
	require.InDelta(t, 0, testutil.ToFloat64(m.stuckFor.WithLabelValues("3")), 0)

	m.DeadLetterUnwritable("idv.completed", 1, "too_large")
	require.InDelta(t, 1, testutil.ToFloat64(m.unwritable.WithLabelValues("too_large")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.finished.WithLabelValues("idv.completed", "1", "dead_letter_unwritable")), 0)
	require.InDelta(t, 0, testutil.ToFloat64(m.deadLetters.WithLabelValues("too_large")), 0,
		"it is not counted as written")
}

func TestEventsOutcomesAlertsAndDeadLetters(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	for _, o := range knownOutcomes {
		require.InDelta(t, 0, testutil.ToFloat64(m.outcomes.WithLabelValues(o)), 0, "outcome %s exists at zero", o)
	}

	m.EventConsumed()
	m.EventConsumed()
	m.Outcome("duplicates_found")
	m.Outcome("no_duplicates")
	m.Outcome("no_duplicates")
	m.Outcome("")
	m.AlertsPublished(3)
	m.AlertsPublished(0)
	m.AlertsPublished(2)
	m.DeadLettered("retries_exhausted")

	require.InDelta(t, 2, testutil.ToFloat64(m.eventsConsumed), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.outcomes.WithLabelValues("duplicates_found")), 0)
	require.InDelta(t, 2, testutil.ToFloat64(m.outcomes.WithLabelValues("no_duplicates")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.outcomes.WithLabelValues("unknown")), 0, "an empty outcome is not an empty label")
	require.InDelta(t, 5, testutil.ToFloat64(m.alertsPublished), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.deadLetters.WithLabelValues("retries_exhausted")), 0)
}

func TestVendorCallCountsAndTimes(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.Region("default").VendorCall("face_search", "SUCCESS", 40*time.Millisecond)
	m.Region("default").VendorCall("face_search", "SUCCESS", 3*time.Second)
	m.Region("default").VendorCall("face_search", "TIMEOUT", 10*time.Second)
	m.Region("default").VendorCall("generate_token", "SUCCESS", 8*time.Millisecond)

	require.InDelta(t, 2, testutil.ToFloat64(m.vendorCalls.WithLabelValues("default", "face_search", "SUCCESS")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.vendorCalls.WithLabelValues("default", "face_search", "TIMEOUT")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.vendorCalls.WithLabelValues("default", "generate_token", "SUCCESS")), 0)

	want := `
# HELP doppel_vendor_call_duration_seconds Duration of HTTP calls to the face-search vendor, whatever their answer, by endpoint.
# TYPE doppel_vendor_call_duration_seconds histogram
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="0.005"} 0
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="0.01"} 0
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="0.025"} 0
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="0.05"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="0.1"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="0.25"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="0.5"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="1"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="2"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="4"} 2
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="8"} 2
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="15"} 3
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="30"} 3
doppel_vendor_call_duration_seconds_bucket{endpoint="face_search",region="default",le="+Inf"} 3
doppel_vendor_call_duration_seconds_sum{endpoint="face_search",region="default"} 13.04
doppel_vendor_call_duration_seconds_count{endpoint="face_search",region="default"} 3
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="0.005"} 0
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="0.01"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="0.025"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="0.05"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="0.1"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="0.25"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="0.5"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="1"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="2"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="4"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="8"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="15"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="30"} 1
doppel_vendor_call_duration_seconds_bucket{endpoint="generate_token",region="default",le="+Inf"} 1
doppel_vendor_call_duration_seconds_sum{endpoint="generate_token",region="default"} 0.008
doppel_vendor_call_duration_seconds_count{endpoint="generate_token",region="default"} 1
`
	require.NoError(t, testutil.GatherAndCompare(m.registry, strings.NewReader(want), "doppel_vendor_call_duration_seconds"))
}

func TestBreakerStateMarksOnlyTheCurrentState(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.Region("default")
	state := func(s string) float64 { return testutil.ToFloat64(m.breakerState.WithLabelValues("default", s)) }
	require.InDelta(t, 1, state("closed"), 0, "a breaker starts closed")

	m.Region("default").SetBreakerState("open")
	require.InDelta(t, 0, state("closed"), 0)
	require.InDelta(t, 1, state("open"), 0)
	require.InDelta(t, 0, state("half_open"), 0)

	m.Region("default").SetBreakerState("half-open") // gobreaker's spelling
	require.InDelta(t, 0, state("open"), 0)
	require.InDelta(t, 1, state("half_open"), 0)
	require.Equal(t, 3, testutil.CollectAndCount(m.breakerState), "no half-open series beside half_open")
}

func TestVendorPausedCountsDown(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	paused := func() float64 {
		mfs, err := m.registry.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() == "doppel_vendor_paused_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("doppel_vendor_paused_seconds is not exported")
		return 0
	}
	m.Region("default")
	require.InDelta(t, 0, paused(), 0)

	m.Region("default").SetVendorPaused(30 * time.Second)
	first := paused()
	require.InDelta(t, 30, first, 1)
	time.Sleep(20 * time.Millisecond)
	require.Less(t, paused(), first, "the value counts down without further calls")

	m.Region("default").SetVendorPaused(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	require.InDelta(t, 0, paused(), 0, "an elapsed pause reads 0, never negative")

	m.Region("default").SetVendorPaused(time.Minute)
	m.Region("default").SetVendorPaused(0)
	require.InDelta(t, 0, paused(), 0)
}

func TestLagAndOutboxAreReadAtScrapeTime(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	require.Equal(t, 0, testutil.CollectAndCount(m.lag), "no series before a source is set")
	require.Equal(t, 0, testutil.CollectAndCount(m.outbox))

	lags := map[int]int64{0: 5, 1: 0, 2: 12}
	var sawDeadline bool
	m.SetLagSource(func(ctx context.Context) (map[int]int64, error) {
		_, sawDeadline = ctx.Deadline()
		return lags, nil
	})
	backlog := int64(4)
	m.SetOutboxSource(func(context.Context) (int64, time.Duration, error) {
		return backlog, 90 * time.Second, nil
	})

	want := `
# HELP doppel_consumer_lag Messages in the events topic not yet committed by the consumer group, by partition.
# TYPE doppel_consumer_lag gauge
doppel_consumer_lag{partition="0"} 5
doppel_consumer_lag{partition="1"} 0
doppel_consumer_lag{partition="2"} 12
# HELP doppel_outbox_backlog Alerts in the outbox waiting to be published.
# TYPE doppel_outbox_backlog gauge
doppel_outbox_backlog 4
# HELP doppel_outbox_oldest_age_seconds Age of the oldest alert waiting in the outbox; 0 when the outbox is empty.
# TYPE doppel_outbox_oldest_age_seconds gauge
doppel_outbox_oldest_age_seconds 90
`
	require.NoError(t, testutil.GatherAndCompare(m.registry, strings.NewReader(want),
		"doppel_consumer_lag", "doppel_outbox_backlog", "doppel_outbox_oldest_age_seconds"))
	require.True(t, sawDeadline, "a source is called with a bounded context")

	// Values move because every scrape asks again.
	lags = map[int]int64{0: 1, 1: 0, 2: 0}
	backlog = 0
	want = `
# HELP doppel_consumer_lag Messages in the events topic not yet committed by the consumer group, by partition.
# TYPE doppel_consumer_lag gauge
doppel_consumer_lag{partition="0"} 1
doppel_consumer_lag{partition="1"} 0
doppel_consumer_lag{partition="2"} 0
# HELP doppel_outbox_backlog Alerts in the outbox waiting to be published.
# TYPE doppel_outbox_backlog gauge
doppel_outbox_backlog 0
`
	require.NoError(t, testutil.GatherAndCompare(m.registry, strings.NewReader(want),
		"doppel_consumer_lag", "doppel_outbox_backlog"))
}

func TestFailingSourceDropsItsSeriesButNotTheScrape(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.SetLagSource(func(context.Context) (map[int]int64, error) { return nil, errors.New("broker down") })
	m.SetOutboxSource(func(ctx context.Context) (int64, time.Duration, error) {
		<-ctx.Done() // a database that does not answer: the scrape timeout must end the wait
		return 0, 0, ctx.Err()
	})
	m.EventConsumed()

	start := time.Now()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Less(t, time.Since(start), scrapeTimeout+2*time.Second)
	require.Equal(t, http.StatusOK, rec.Code)
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	page := string(body)
	require.Contains(t, page, "doppel_events_consumed_total 1")
	require.NotContains(t, page, "doppel_consumer_lag{")
	require.NotContains(t, page, "doppel_outbox_backlog ")

	require.InDelta(t, 1, testutil.ToFloat64(m.lag.errors), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.outbox.errors), 0)
}

func TestHandlerServesEveryMetric(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.SetLagSource(func(context.Context) (map[int]int64, error) { return map[int]int64{0: 0}, nil })
	m.SetOutboxSource(func(context.Context) (int64, time.Duration, error) { return 0, 0, nil })
	m.Finished("t", 0, true, "bad_json")
	m.Retried("retry", "transient_failure")
	m.Region("default").VendorCall("face_search", "SUCCESS", time.Millisecond)
	m.Region("default").SetBudget(1, 10)

	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, name := range []string{
		"doppel_events_consumed_total", "doppel_event_outcomes_total", "doppel_consumer_messages_finished_total",
		"doppel_consumer_retries_total", "doppel_consumer_in_flight_messages", "doppel_vendor_calls_total",
		"doppel_vendor_call_duration_seconds_bucket", "doppel_alerts_published_total", "doppel_dead_letters_total",
		"doppel_vendor_breaker_state", "doppel_vendor_paused_seconds", "doppel_consumer_lag",
		"doppel_outbox_backlog", "doppel_outbox_oldest_age_seconds",
		"doppel_region_budget_spent", "doppel_region_budget_limit", "doppel_region_budget_warning",
		"doppel_region_parked_events_total", "doppel_region_parking",
		"go_goroutines", "process_start_time_seconds", "promhttp_metric_handler_requests_total",
	} {
		require.Contains(t, string(body), "\n"+name, "metric %s", name)
	}
}

func TestRegionsHaveSeriesOfTheirOwn(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	ph, th := m.Region("ph"), m.Region("th")
	require.Same(t, ph, m.Region("ph"), "one Region per name: its series are registered once")
	ph.SetBreakerState("open")
	th.VendorCall("face_search", "SUCCESS", time.Millisecond)
	ph.SetVendorPaused(time.Minute)
	require.InDelta(t, 1, testutil.ToFloat64(m.breakerState.WithLabelValues("ph", "open")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.breakerState.WithLabelValues("th", "closed")), 0, "th's breaker is not ph's")
	require.InDelta(t, 0, testutil.ToFloat64(m.vendorCalls.WithLabelValues("ph", "face_search", "SUCCESS")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.vendorCalls.WithLabelValues("th", "face_search", "SUCCESS")), 0)
	require.Positive(t, ph.pausedSecondsLeft())
	require.Zero(t, th.pausedSecondsLeft())
}

func TestBudgetWarningFromEightyPercent(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	r := m.Region("ph")
	warning := func() float64 { return testutil.ToFloat64(m.budgetWarning.WithLabelValues("ph")) }
	r.SetBudget(79, 100)
	require.InDelta(t, 0, warning(), 0)
	r.SetBudget(80, 100)
	require.InDelta(t, 1, warning(), 0)
	r.SetBudget(100, 100)
	require.InDelta(t, 2, warning(), 0, "spent: the region is paused")
	r.SetBudget(1000, 0)
	require.InDelta(t, 0, warning(), 0, "no budget, no warning")
	require.InDelta(t, 1000, testutil.ToFloat64(m.budgetSpent.WithLabelValues("ph")), 0)
}

func TestStoreBatchesCountRoundTripsAndEveryRequestsWait(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.StoreBatch("save", []time.Duration{time.Millisecond, 3 * time.Millisecond, 20 * time.Millisecond}, 5*time.Millisecond)
	m.StoreBatch("lookup", []time.Duration{0}, 500*time.Microsecond)

	want := `
# HELP doppel_store_batch_requests Requests (checks or look-ups) carried by one PostgreSQL round trip of the group commit, by kind.
# TYPE doppel_store_batch_requests histogram
doppel_store_batch_requests_bucket{kind="lookup",le="1"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="2"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="4"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="8"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="16"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="32"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="64"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="128"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="256"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="512"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="1024"} 1
doppel_store_batch_requests_bucket{kind="lookup",le="+Inf"} 1
doppel_store_batch_requests_sum{kind="lookup"} 1
doppel_store_batch_requests_count{kind="lookup"} 1
doppel_store_batch_requests_bucket{kind="save",le="1"} 0
doppel_store_batch_requests_bucket{kind="save",le="2"} 0
doppel_store_batch_requests_bucket{kind="save",le="4"} 1
doppel_store_batch_requests_bucket{kind="save",le="8"} 1
doppel_store_batch_requests_bucket{kind="save",le="16"} 1
doppel_store_batch_requests_bucket{kind="save",le="32"} 1
doppel_store_batch_requests_bucket{kind="save",le="64"} 1
doppel_store_batch_requests_bucket{kind="save",le="128"} 1
doppel_store_batch_requests_bucket{kind="save",le="256"} 1
doppel_store_batch_requests_bucket{kind="save",le="512"} 1
doppel_store_batch_requests_bucket{kind="save",le="1024"} 1
doppel_store_batch_requests_bucket{kind="save",le="+Inf"} 1
doppel_store_batch_requests_sum{kind="save"} 3
doppel_store_batch_requests_count{kind="save"} 1
`
	require.NoError(t, testutil.CollectAndCompare(m.storeBatchSize, strings.NewReader(want)))
	save := histogram(t, m.storeBatches.WithLabelValues("save"))
	require.Equal(t, uint64(1), save.GetSampleCount(), "one round trip")
	require.InDelta(t, 0.005, save.GetSampleSum(), 1e-9)
	waits := histogram(t, m.storeQueueWait.WithLabelValues("save"))
	require.Equal(t, uint64(3), waits.GetSampleCount(), "one wait per request")
	require.InDelta(t, 0.024, waits.GetSampleSum(), 1e-9)
}

// histogram reads one histogram series.
func histogram(t *testing.T, o prometheus.Observer) *dto.Histogram {
	t.Helper()
	var got dto.Metric
	require.NoError(t, o.(prometheus.Histogram).Write(&got))
	return got.GetHistogram()
}
