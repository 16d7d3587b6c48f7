package metrics

import "github.com/prometheus/client_golang/prometheus"

// registerEvidence registers doppel_evidence_fetches_total, the console's evidence look-ups
// (Metrics.evidence).
func (m *Metrics) registerEvidence(reg *prometheus.Registry) {
	m.evidence = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "doppel_evidence_fetches_total",
		Help: "Look-ups of the face and document data shown on the console's ring page, by region and outcome " +
			"(ok, cached: answered from memory without a vendor call, timeout, rate_limited, unavailable, not_found, error).",
	}, []string{"region", "outcome"})
	reg.MustRegister(m.evidence)
}

// EvidenceFetch counts one evidence look-up of region with its outcome. Its signature matches
// evidence.FetcherConfig.OnFetch.
func (m *Metrics) EvidenceFetch(region, outcome string) {
	m.evidence.WithLabelValues(labelOr(region, "default"), labelOr(outcome, "unknown")).Inc()
}
