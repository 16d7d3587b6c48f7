package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestEvidenceFetchesAreCountedByRegionAndOutcome(t *testing.T) {
	t.Parallel()
	m := New(Series{})
	m.EvidenceFetch("ph", "ok")
	m.EvidenceFetch("ph", "ok")
	m.EvidenceFetch("ph", "rate_limited")
	m.EvidenceFetch("", "cached")
	require.InDelta(t, 2, testutil.ToFloat64(m.evidence.WithLabelValues("ph", "ok")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.evidence.WithLabelValues("ph", "rate_limited")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(m.evidence.WithLabelValues("default", "cached")), 0)
}
