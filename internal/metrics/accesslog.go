package metrics

import "github.com/prometheus/client_golang/prometheus"

// AccessLog is the access log's metrics: what became of its entries, and what its retention sweep
// deleted. Get it with Metrics.AccessLog; every method is safe for concurrent use.
type AccessLog struct {
	entries          *prometheus.CounterVec
	retentionDeleted *prometheus.CounterVec
}

// accessLogOutcomes are doppel_access_log_entries_total's outcomes, pre-created at zero.
var accessLogOutcomes = []string{"written", "refused", "lost"}

// AccessLog returns the access log's metrics, registering them (at zero) on the first call.
func (m *Metrics) AccessLog() *AccessLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.accessLog != nil {
		return m.accessLog
	}
	a := &AccessLog{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_access_log_entries_total",
			Help: "Access-log entries (reads of a person's data), by outcome: written; refused (the queue stayed full, so the read was answered 503 instead of going unrecorded); lost (still unwritten when a shutdown gave up on the database).",
		}, []string{"outcome"}),
		// The retention sweeps' one counter (metrics.go), its access_log series.
		retentionDeleted: m.retention,
	}
	for _, o := range accessLogOutcomes {
		a.entries.WithLabelValues(o)
	}
	a.retentionDeleted.WithLabelValues("access_log")
	m.registry.MustRegister(a.entries)
	m.accessLog = a
	return a
}

// Written counts entries stored. Its signature matches accesslog.Config.OnWritten.
func (a *AccessLog) Written(n int) { a.entries.WithLabelValues("written").Add(float64(n)) }

// Refused counts a read refused because its entry could not be queued. Its signature matches
// accesslog.Config.OnRefused.
func (a *AccessLog) Refused() { a.entries.WithLabelValues("refused").Inc() }

// Lost counts entries a shutdown could not write. Its signature matches accesslog.Config.OnLost.
func (a *AccessLog) Lost(n int) { a.entries.WithLabelValues("lost").Add(float64(n)) }

// Swept counts access-log rows the retention sweep deleted.
func (a *AccessLog) Swept(n int64) {
	a.retentionDeleted.WithLabelValues("access_log").Add(float64(n))
}
