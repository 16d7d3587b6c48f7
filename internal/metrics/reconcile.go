package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reconcile records what polling for lost callbacks does. Create it once per Metrics with
// Metrics.Reconcile.
type Reconcile struct {
	verifications *prometheus.GaugeVec
	recentShare   prometheus.Gauge
	polls         *prometheus.CounterVec
	enrolments    *prometheus.CounterVec
}

// Reconcile registers the reconciliation metrics on m's registry and returns them. Call it once.
func (m *Metrics) Reconcile() *Reconcile {
	r := &Reconcile{
		verifications: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "doppel_reconcile_verifications",
			Help: "Started verifications by status: pending, completed (by their COMPLETED event), recovered (by polling: the callback was lost), expired.",
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
	for _, s := range []string{"pending", "completed", "recovered", "expired"} {
		r.verifications.WithLabelValues(s)
	}
	for _, s := range []string{"PASS", "FAIL", "INCOMPLETE", "error"} {
		r.polls.WithLabelValues(s)
	}
	m.registry.MustRegister(r.verifications, r.recentShare, r.polls, r.enrolments)
	return r
}

// SetCounts sets the verification gauges.
func (r *Reconcile) SetCounts(pending, completed, recovered, expired int64, recentShare float64) {
	r.verifications.WithLabelValues("pending").Set(float64(pending))
	r.verifications.WithLabelValues("completed").Set(float64(completed))
	r.verifications.WithLabelValues("recovered").Set(float64(recovered))
	r.verifications.WithLabelValues("expired").Set(float64(expired))
	r.recentShare.Set(recentShare)
}

// Polled counts one poll.
func (r *Reconcile) Polled(result string) { r.polls.WithLabelValues(result).Inc() }

// Enrolled counts one enrolment answer.
func (r *Reconcile) Enrolled(result string) { r.enrolments.WithLabelValues(result).Inc() }
