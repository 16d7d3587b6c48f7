package metrics

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds each pull-style source during a scrape. It is well under Prometheus's
// default 10 s scrape timeout, so a slow broker or database costs its own series, not the scrape.
const scrapeTimeout = 3 * time.Second

// SetLagSource sets the function that reports the consumer group's lag per partition (such as
// consumer.Lag bound to the service's brokers, group and topic). It is called on every scrape
// with a context that expires after a few seconds; while unset, or when it fails,
// doppel_consumer_lag is absent from the scrape and a failure counts in
// doppel_metrics_source_errors_total{source="lag"}.
func (m *Metrics) SetLagSource(fn func(ctx context.Context) (map[int]int64, error)) {
	m.lag.source.Store(&fn)
}

// SetOutboxSource sets the function that reports how many alerts wait in the outbox and the age
// of the oldest (such as postgres.Store.OutboxBacklog). It is called on every scrape like the lag
// source, and its failures count in doppel_metrics_source_errors_total{source="outbox"}.
func (m *Metrics) SetOutboxSource(fn func(ctx context.Context) (count int64, oldestAge time.Duration, err error)) {
	m.outbox.source.Store(&fn)
}

// lagCollector asks its source for the lag at scrape time rather than caching a value pushed by
// a poller: the number is then never older than the scrape, and nothing runs when nobody scrapes.
type lagCollector struct {
	desc   *prometheus.Desc
	source atomic.Pointer[func(context.Context) (map[int]int64, error)]
	errors prometheus.Counter
}

func newLagCollector(errors prometheus.Counter) *lagCollector {
	return &lagCollector{
		desc: prometheus.NewDesc("doppel_consumer_lag",
			"Messages in the events topic not yet committed by the consumer group, by partition.",
			[]string{"partition"}, nil),
		errors: errors,
	}
}

// Describe implements prometheus.Collector.
func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.source.Load()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	lags, err := (*src)(ctx)
	if err != nil {
		c.errors.Inc()
		return
	}
	for partition, lag := range lags {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag), strconv.Itoa(partition))
	}
}

// outboxCollector reports the outbox backlog at scrape time, like lagCollector.
type outboxCollector struct {
	backlog   *prometheus.Desc
	oldestAge *prometheus.Desc
	source    atomic.Pointer[func(context.Context) (int64, time.Duration, error)]
	errors    prometheus.Counter
}

func newOutboxCollector(errors prometheus.Counter) *outboxCollector {
	return &outboxCollector{
		backlog: prometheus.NewDesc("doppel_outbox_backlog",
			"Alerts in the outbox waiting to be published.", nil, nil),
		oldestAge: prometheus.NewDesc("doppel_outbox_oldest_age_seconds",
			"Age of the oldest alert waiting in the outbox; 0 when the outbox is empty.", nil, nil),
		errors: errors,
	}
}

// Describe implements prometheus.Collector.
func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.oldestAge
}

// Collect implements prometheus.Collector.
func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.source.Load()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	count, age, err := (*src)(ctx)
	if err != nil {
		c.errors.Inc()
		return
	}
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(count))
	ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, max(age, 0).Seconds())
}
