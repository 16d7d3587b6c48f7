package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reconcile records what polling for lost callbacks does. Create it once per Metrics with
// Metrics.Reconcile.
type Reconcile struct {
	pending     prometheus.Gauge
	settled     *prometheus.CounterVec
	recentShare prometheus.Gauge
	polls       *prometheus.CounterVec
	enrolments  *prometheus.CounterVec
}

// Reconcile registers the reconciliation metrics on m's registry and returns them. Call it once.
func (m *Metrics) Reconcile() *Reconcile {
	r := &Reconcile{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "doppel_reconcile_pending",
			Help: "Started verifications with no final outcome yet (waiting for their COMPLETED event or for polling), across all instances.",
		}),
		settled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_reconcile_settled_total",
			Help: "Started verifications this instance settled, by status: completed (by their COMPLETED event), recovered (by polling: the callback was lost), expired.",
		}, []string{"status"}),
		recentShare: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "doppel_reconcile_recovered_ratio",
			Help: "Share of the verifications settled in the last hour that polling had to recover (callbacks_missing is raised above DOPPEL_RECONCILE_ALERT_RATIO).",
		}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_reconcile_polls_total",
			Help: "get-result polls of started verifications, by result (PASS, FAIL, INCOMPLETE, error).",
		}, []string{"result"}),
		enrolments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "doppel_enrollments_total",
			Help: "Failed verifications enrolled in the vendor's face search, by result (enrolled, refused).",
		}, []string{"result"}),
	}
	for _, s := range []string{"completed", "recovered", "expired"} {
		r.settled.WithLabelValues(s)
	}
	for _, s := range []string{"PASS", "FAIL", "INCOMPLETE", "error"} {
		r.polls.WithLabelValues(s)
	}
	m.registry.MustRegister(r.pending, r.settled, r.recentShare, r.polls, r.enrolments)
	return r
}

// SetPending sets the pending gauge and the share recovered by polling in the last hour.
func (r *Reconcile) SetPending(pending int64, recentShare float64) {
	r.pending.Set(float64(pending))
	r.recentShare.Set(recentShare)
}

// Settled counts n verifications settled with status.
func (r *Reconcile) Settled(status string, n int) { r.settled.WithLabelValues(status).Add(float64(n)) }

// Polled counts one poll.
func (r *Reconcile) Polled(result string) { r.polls.WithLabelValues(result).Inc() }

// Enrolled counts one enrolment answer.
func (r *Reconcile) Enrolled(result string) { r.enrolments.WithLabelValues(result).Inc() }
