// Package metrics exposes Doppel's Prometheus metrics: what the consumer does with events, what the
// vendor answers and how fast, what the outbox relay publishes, and, computed when scraped, the
// consumer group's lag and the outbox backlog.
//
// Every metric lives on a private registry (with the Go runtime and process collectors), so
// nothing another package registers on prometheus.DefaultRegisterer leaks into /metrics, and tests
// can create as many Metrics as they like. Names start with doppel_, are snake_case and carry
// their unit (_seconds, _total).
package metrics

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/doppelhq/doppel/internal/buildinfo"
)

// knownOutcomes are the stored outcomes of a check, pre-created at zero so that rate() and the
// dashboard have a series for each before the first event of that kind arrives.
var knownOutcomes = []string{"duplicates_found", "no_duplicates", "skipped", "not_passed", "incomplete", "failed", "already_stored", "erased"}

// httpLatencyBuckets span a cached read (1 ms) to a callback waiting on the broker (10 s).
var httpLatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// breakerStates are the circuit breaker states reported by doppel_vendor_breaker_state.
var breakerStates = []string{"closed", "open", "half_open"}

// vendorLatencyBuckets span 5 ms (a token served from a warm connection) to 30 s (beyond any sane
// client timeout), roughly doubling, so p50 and p99 stay readable at both ends.
var vendorLatencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30}

// storeLatencyBuckets span a look-up answered from cache (0.25 ms) to a face farm's batch (5 s);
// a commit's fsync is a few ms on most disks.
var storeLatencyBuckets = []float64{0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.25, 0.5, 1, 2, 5}

// storeBatchSizeBuckets go up by powers of two to the largest default batch (1,024).
var storeBatchSizeBuckets = prometheus.ExponentialBuckets(1, 2, 11)

// Metrics records Doppel's metrics. Create it with New; every method is safe for concurrent use.
// It implements consumer.Observer.
type Metrics struct {
	registry *prometheus.Registry

	eventsConsumed  prometheus.Counter
	keyMismatches   prometheus.Counter
	outcomes        *prometheus.CounterVec
	finished        *prometheus.CounterVec
	retries         *prometheus.CounterVec
	inFlight        prometheus.Gauge
	vendorCalls     *prometheus.CounterVec
	vendorLatency   *prometheus.HistogramVec
	evidence        *prometheus.CounterVec
	alertsPublished prometheus.Counter
	// erasedMatches and erasures count the tombstones' work (issue 24).
	erasedMatches  prometheus.Counter
	erasures       prometheus.Counter
	retention      *prometheus.CounterVec
	sweeps         prometheus.Counter
	deadLetters    *prometheus.CounterVec
	unwritable     *prometheus.CounterVec
	stalled        *prometheus.GaugeVec
	stuckFor       *prometheus.GaugeVec
	breakerState   *prometheus.GaugeVec
	budgetSpent    *prometheus.GaugeVec
	budgetLimit    *prometheus.GaugeVec
	budgetWarning  *prometheus.GaugeVec
	parked         *prometheus.CounterVec
	parking        *prometheus.GaugeVec
	storeBatches   *prometheus.HistogramVec
	storeBatchSize *prometheus.HistogramVec
	storeQueueWait *prometheus.HistogramVec

	mu           sync.Mutex
	regions      map[string]*Region
	httpRequests *prometheus.CounterVec
	httpLatency  *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	callbacks    *prometheus.CounterVec
	accessLog    *AccessLog

	lag    *lagCollector
	outbox *outboxCollector
}

// Series are label values New creates at zero, like knownOutcomes, so that rate() and the dashboard
// have a series for each before the first event of its kind. The lists belong to the packages that
// emit the values (the dead-letter reasons' table, the pipeline's classification); the service
// passes them, so metrics imports neither.
type Series struct {
	// DeadLetterReasons are doppel_dead_letters_total's reasons (deadletter.Reasons).
	DeadLetterReasons []string
	// Retries are doppel_consumer_retries_total's action and reason pairs (pipeline.Retries).
	Retries []Retry
}

// Retry is one series of doppel_consumer_retries_total: the consumer's action (retry, wait) and
// the failure's reason.
type Retry struct{ Action, Reason string }

// New returns Metrics registered on a registry of their own, together with the Go runtime and
// process collectors, with the series pre-created at zero.
func New(series Series) *Metrics {
	reg := prometheus.NewRegistry()
	sourceErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "doppel_metrics_source_errors_total",
		Help: "Scrapes in which a pull-style gauge's source (lag, outbox) failed or timed out; its series are absent from that scrape.",
	}, []string{"source"})
	m := &Metrics{
		registry: reg,
		eventsConsumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "doppel_events_consumed_total",
			Help: "IDV completed events taken from Kafka for processing.",
		}),
		keyMismatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "doppel_event_key_mismatches_total",
			Help: "Events whose Kafka key was not their signatureId: routed by the signatureId all the same; a producer to fix.",
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_event_outcomes_total",
			Help: "Events processed, by the outcome stored for their check.",
		}, []string{"outcome"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_consumer_messages_finished_total",
			Help: "Messages the consumer finished (result processed, dead_lettered or dead_letter_unwritable), by topic and partition.",
		}, []string{"topic", "partition", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_consumer_retries_total",
			Help: "Failed handler attempts that the consumer retried, by action (retry, wait) and reason.",
		}, []string{"action", "reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "doppel_consumer_in_flight_messages",
			Help: "Messages fetched but not yet finished.",
		}),
		vendorCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_vendor_calls_total",
			Help: "HTTP calls to the face-search vendor, by endpoint and vendor code (SUCCESS, an error code, HTTP_<status>, TIMEOUT, NETWORK, CANCELED, BAD_RESPONSE).",
		}, []string{"region", "endpoint", "code"}),
		vendorLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "doppel_vendor_call_duration_seconds",
			Help:    "Duration of HTTP calls to the face-search vendor, whatever their answer, by endpoint.",
			Buckets: vendorLatencyBuckets,
		}, []string{"region", "endpoint"}),
		alertsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "doppel_alerts_published_total",
			Help: "Alerts the outbox relay published to the alert topic.",
		}),
		erasedMatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "doppel_erased_matches_total",
			Help: "Mentions of erased people dropped from face-search answers before linking (the vendor still had their face).",
		}),
		erasures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "doppel_erasures_done_total",
			Help: "Erasures finished: rows removed, vendor asked, subject_erased published.",
		}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_retention_deleted_total",
			Help: "Rows the retention sweeps deleted (older than DOPPEL_RETENTION, or DOPPEL_ACCESS_LOG_RETENTION for access_log), by table.",
		}, []string{"table"}),
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "doppel_retention_sweeps_total",
			Help: "Retention sweeps finished: every region's expired checks and every expired link looked at once.",
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_dead_letters_total",
			Help: "Messages written to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		unwritable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_dead_letters_unwritable_total",
			Help: "Messages to dead-letter that the dead-letter topic refused even without their value: logged with their source offset and skipped, by reason.",
		}, []string{"reason"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_consumer_partition_stalled",
			Help: "1 while a partition has had uncommitted messages for longer than DOPPEL_STALL_AFTER without committing, else 0.",
		}, []string{"partition"}),
		stuckFor: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_consumer_partition_stuck_seconds",
			Help: "Seconds a partition has had uncommitted messages without its committed offset moving; 0 when it has none.",
		}, []string{"partition"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_vendor_breaker_state",
			Help: "State of each vendor region's circuit breaker: 1 on the current state, 0 on the others.",
		}, []string{"region", "state"}),
		budgetSpent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_region_budget_spent",
			Help: "Face searches a vendor region made this calendar month (UTC), counted from stored checks at start.",
		}, []string{"region"}),
		budgetLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_region_budget_limit",
			Help: "A vendor region's monthly face-search budget; 0 means none.",
		}, []string{"region"}),
		budgetWarning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_region_budget_warning",
			Help: "1 when a vendor region has spent 80% of its monthly budget (2 when all of it: the region is paused), else 0.",
		}, []string{"region"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_region_parked_events_total",
			Help: "Events moved to a vendor region's parking topic because the region could not take them (outage, budget, its share of the workers).",
		}, []string{"region"}),
		parking: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_region_parking",
			Help: "1 while a vendor region's events go through its parking topic (the region is unavailable or its parked backlog is not drained), else 0.",
		}, []string{"region"}),
		storeBatches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "doppel_store_batch_duration_seconds",
			Help:    "Duration of one PostgreSQL round trip of the group commit, by kind: save (a transaction of checks, its links and alerts, commit included) or lookup (stored outcomes read before a vendor call).",
			Buckets: storeLatencyBuckets,
		}, []string{"kind"}),
		storeBatchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "doppel_store_batch_requests",
			Help:    "Requests (checks or look-ups) carried by one PostgreSQL round trip of the group commit, by kind.",
			Buckets: storeBatchSizeBuckets,
		}, []string{"kind"}),
		storeQueueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "doppel_store_queue_wait_seconds",
			Help:    "How long each request waited for its PostgreSQL round trip to start (behind the previous one, plus DOPPEL_STORE_LINGER), by kind.",
			Buckets: storeLatencyBuckets,
		}, []string{"kind"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_http_auth_failures_total",
			Help: "Requests refused for their credentials, by route and reason (missing_credentials, invalid_api_key, missing_scope, invalid_token, invalid_signature, invalid_timestamp, stale_timestamp, invalid_webhook_id, region_mismatch, token_in_query, throttled).",
		}, []string{"route", "reason"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_http_callbacks_total",
			Help: "Authenticated callbacks, by how they authenticated (token, standard_webhooks, x_doppel_signature: deprecated, to be moved off) and outcome (accepted: published; duplicate: a delivery id already accepted, not published again).",
		}, []string{"auth", "outcome"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_http_requests_total",
			Help: "HTTP requests answered, by route (the registered path pattern, or unmatched), method and status code.",
		}, []string{"route", "method", "code"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "doppel_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route and method.",
			Buckets: httpLatencyBuckets,
		}, []string{"route", "method"}),
		regions: map[string]*Region{},
		lag:     newLagCollector(sourceErrors.WithLabelValues("lag")),
		outbox:  newOutboxCollector(sourceErrors.WithLabelValues("outbox")),
	}

	build := buildinfo.Get()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "doppel_build_info",
		Help: "Always 1; its labels say which build is running (version, commit, Go version).",
	}, []string{"version", "commit", "goversion"})
	buildInfo.WithLabelValues(build.Version, build.Commit, build.GoVersion).Set(1)

	for _, o := range knownOutcomes {
		m.outcomes.WithLabelValues(o)
	}
	for _, r := range series.DeadLetterReasons {
		m.deadLetters.WithLabelValues(r)
	}
	for _, r := range series.Retries {
		m.retries.WithLabelValues(r.Action, r.Reason)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.eventsConsumed, m.keyMismatches, m.outcomes, m.finished, m.retries, m.inFlight,
		m.vendorCalls, m.vendorLatency, m.alertsPublished, m.erasedMatches, m.erasures, m.retention, m.sweeps, m.deadLetters, m.unwritable, m.stalled, m.stuckFor,
		m.breakerState, m.authFailures, m.callbacks, m.budgetSpent, m.budgetLimit, m.budgetWarning, m.parked, m.parking,
		m.storeBatches, m.storeBatchSize, m.storeQueueWait, sourceErrors, m.lag, m.outbox,
	)
	reg.MustRegister(buildInfo, m.httpRequests, m.httpLatency)
	m.registerEvidence(reg)
	return m
}

// Handler returns the HTTP handler that serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.registry, promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		Registry: m.registry, // counts its own encoding errors as promhttp_metric_handler_errors_total
		// A metric that fails to collect must not blank the whole page: during an incident the
		// other metrics are exactly what is needed.
		ErrorHandling: promhttp.ContinueOnError,
	}))
}

// Finished records that the consumer finished a message, either processed or dead-lettered; a
// dead-lettered one is also counted in doppel_dead_letters_total under reason. It implements
// consumer.Observer.
func (m *Metrics) Finished(topic string, partition int, deadLettered bool, reason string) {
	result := "processed"
	if deadLettered {
		result = "dead_lettered"
		m.DeadLettered(reason)
	}
	m.finished.WithLabelValues(topic, strconv.Itoa(partition), result).Inc()
}

// DeadLetterUnwritable records a message that the consumer finished without a dead letter because
// the dead-letter topic refused it; it counts in doppel_consumer_messages_finished_total with result
// dead_letter_unwritable. It implements consumer.Observer.
func (m *Metrics) DeadLetterUnwritable(topic string, partition int, reason string) {
	m.unwritable.WithLabelValues(labelOr(reason, "unknown")).Inc()
	m.finished.WithLabelValues(topic, strconv.Itoa(partition), "dead_letter_unwritable").Inc()
}

// PartitionProgress records how long a partition has been stuck and whether that counts as
// stalled. It implements consumer.Observer.
func (m *Metrics) PartitionProgress(partition int, stuckFor time.Duration, stalled bool) {
	p := strconv.Itoa(partition)
	m.stuckFor.WithLabelValues(p).Set(stuckFor.Seconds())
	v := 0.0
	if stalled {
		v = 1
	}
	m.stalled.WithLabelValues(p).Set(v)
}

// Retried records a failed handler attempt that the consumer will try again, under the classification's
// action and reason. It implements consumer.Observer.
func (m *Metrics) Retried(action, reason string) {
	m.retries.WithLabelValues(labelOr(action, "unknown"), labelOr(reason, "unknown")).Inc()
}

// InFlight records how many messages are fetched but not yet finished. It implements
// consumer.Observer.
func (m *Metrics) InFlight(n int) { m.inFlight.Set(float64(n)) }

// EventConsumed records that an event was taken from Kafka for processing.
func (m *Metrics) EventConsumed() { m.eventsConsumed.Inc() }

// EventKeyMismatch records an event whose Kafka key was neither empty nor its signatureId.
func (m *Metrics) EventKeyMismatch() { m.keyMismatches.Inc() }

// Outcome records the stored outcome of a processed event: duplicates_found, no_duplicates,
// skipped, not_passed, incomplete, failed, already_stored or erased (an erased person's event, skipped).
func (m *Metrics) Outcome(outcome string) {
	m.outcomes.WithLabelValues(labelOr(outcome, "unknown")).Inc()
}

// ErasedMatches records that n mentions of erased people were dropped from face-search answers.
func (m *Metrics) ErasedMatches(n int) {
	if n > 0 {
		m.erasedMatches.Add(float64(n))
	}
}

// RetentionDeleted records that the retention sweep deleted n rows of table.
func (m *Metrics) RetentionDeleted(table string, n int64) {
	m.retention.WithLabelValues(table).Add(float64(n))
}

// RetentionSwept records a finished retention sweep.
func (m *Metrics) RetentionSwept(time.Duration) { m.sweeps.Inc() }

// ErasureDone records a finished erasure.
func (m *Metrics) ErasureDone() { m.erasures.Inc() }

// AlertsPublished records that the relay published n alerts. Its signature matches
// relay.Config.OnPublished.
func (m *Metrics) AlertsPublished(n int) {
	if n > 0 {
		m.alertsPublished.Add(float64(n))
	}
}

// DeadLettered records a message written to the dead-letter topic for reason. Finished already
// counts the messages the consumer dead-letters, so call this only for dead letters written
// elsewhere, or they are counted twice.
func (m *Metrics) DeadLettered(reason string) {
	m.deadLetters.WithLabelValues(labelOr(reason, "unknown")).Inc()
}

// StoreBatch records one round trip of the group commit. It implements postgres.BatchObserver.
func (m *Metrics) StoreBatch(kind string, waits []time.Duration, took time.Duration) {
	m.storeBatches.WithLabelValues(kind).Observe(took.Seconds())
	m.storeBatchSize.WithLabelValues(kind).Observe(float64(len(waits)))
	wait := m.storeQueueWait.WithLabelValues(kind)
	for _, w := range waits {
		wait.Observe(w.Seconds())
	}
}

// AuthFailure records a request refused for its credentials: the route (its pattern, so the
// label's values stay few) and the reason. Its signature matches httpapi.Config.OnAuthFailure.
func (m *Metrics) AuthFailure(route, reason string) {
	m.authFailures.WithLabelValues(labelOr(route, "unknown"), labelOr(reason, "unknown")).Inc()
}

// Callback records an authenticated callback by how it authenticated and what became of it. Its
// signature matches httpapi.Config.OnCallback.
func (m *Metrics) Callback(auth, outcome string) {
	m.callbacks.WithLabelValues(labelOr(auth, "unknown"), labelOr(outcome, "unknown")).Inc()
}

// HTTPRequest records one answered HTTP request: its route pattern ("" for a request no route
// matched), method, status code and duration. Its signature matches httpapi.Config.OnRequest.
func (m *Metrics) HTTPRequest(route, method string, status int, d time.Duration) {
	route = labelOr(route, "unmatched")
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.httpLatency.WithLabelValues(route, method).Observe(d.Seconds())
}

// Region is the metrics of one vendor region, each series labelled region. Get it with
// Metrics.Region; every method is safe for concurrent use.
type Region struct {
	m    *Metrics
	name string
	// pausedUntil is the Unix time in nanoseconds until which the region's vendor calls are paused;
	// a gauge func turns it into seconds left at scrape time, so the value counts down by itself.
	pausedUntil atomic.Int64
}

// Region returns region's metrics, creating its series (a closed breaker, no pause) on first use.
func (m *Metrics) Region(name string) *Region {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.regions[name]; ok {
		return r
	}
	r := &Region{m: m, name: name}
	m.regions[name] = r
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "doppel_vendor_paused_seconds",
		Help:        "Seconds until a vendor region's calls resume after it answered SERVICE_BUSY; 0 when not paused.",
		ConstLabels: prometheus.Labels{"region": name},
	}, r.pausedSecondsLeft))
	// A breaker starts closed, so that is what the gauge says until SetBreakerState is called.
	r.SetBreakerState("closed")
	m.parked.WithLabelValues(name)
	m.parking.WithLabelValues(name)
	return r
}

// VendorCall records one HTTP call to the region's vendor: its endpoint, the vendor code or
// transport failure it ended with, and how long it took. Its signature matches advance.Config.OnCall.
func (r *Region) VendorCall(endpoint, code string, d time.Duration) {
	r.m.vendorCalls.WithLabelValues(r.name, endpoint, labelOr(code, "unknown")).Inc()
	r.m.vendorLatency.WithLabelValues(r.name, endpoint).Observe(d.Seconds())
}

// SetBreakerState records the region's circuit breaker state: closed, open or half_open.
// gobreaker's spelling "half-open" is accepted and reported as half_open, since label values are
// snake_case here.
func (r *Region) SetBreakerState(state string) {
	state = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(state)), "-", "_")
	for _, s := range breakerStates {
		r.m.breakerState.WithLabelValues(r.name, s).Set(0)
	}
	r.m.breakerState.WithLabelValues(r.name, labelOr(state, "unknown")).Set(1)
}

// SetVendorPaused records that the region's vendor calls are paused for d from now (after a
// SERVICE_BUSY answer); d <= 0 records that they are not paused. The exported value counts down by
// itself, so calling this when a pause starts is enough.
func (r *Region) SetVendorPaused(d time.Duration) {
	if d <= 0 {
		r.pausedUntil.Store(0)
		return
	}
	r.pausedUntil.Store(time.Now().Add(d).UnixNano())
}

func (r *Region) pausedSecondsLeft() float64 {
	until := r.pausedUntil.Load()
	if until == 0 {
		return 0
	}
	return math.Max(0, time.Until(time.Unix(0, until)).Seconds())
}

// SetBudget records the region's spend this month and its budget (0: none); the warning gauge is 1
// from 80% of the budget and 2 once all of it is spent.
func (r *Region) SetBudget(spent, limit int64) {
	r.m.budgetSpent.WithLabelValues(r.name).Set(float64(spent))
	r.m.budgetLimit.WithLabelValues(r.name).Set(float64(limit))
	warning := 0.0
	switch {
	case limit > 0 && spent >= limit:
		warning = 2
	case limit > 0 && spent*5 >= limit*4:
		warning = 1
	}
	r.m.budgetWarning.WithLabelValues(r.name).Set(warning)
}

// Parked records an event moved to the region's parking topic.
func (r *Region) Parked() { r.m.parked.WithLabelValues(r.name).Inc() }

// SetParking records whether the region's events go through its parking topic.
func (r *Region) SetParking(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	r.m.parking.WithLabelValues(r.name).Set(v)
}

// labelOr returns s, or fallback when s is empty: an empty label value is the same as no label in
// Prometheus, which would merge the series with others in queries.
func labelOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
