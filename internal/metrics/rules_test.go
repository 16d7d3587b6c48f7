package metrics

import (
	"log/slog"
	"regexp"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

// addedElsewhere are metrics the rules use whose series appear only once there is something to
// report (per partition); every other name must be on a fresh Metrics' page.
var addedElsewhere = map[string]bool{
	"doppel_consumer_partition_stalled": true, // set by PartitionProgress
	// Per vendor region, from its first use (Metrics.Region).
	"doppel_vendor_breaker_state":  true,
	"doppel_region_budget_warning": true,
	// Registered by the service at start (Metrics.AccessLog).
	"doppel_access_log_entries_total": true,
}

func TestAlertingRulesParseAndUseDoppelsMetrics(t *testing.T) {
	t.Parallel()
	promql := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile("../../configs/doppel-alerts.yml", false, model.UTF8Validation, promql,
		slog.New(slog.DiscardHandler))
	require.Empty(t, errs, "promtool check rules would fail")
	// A series of each list the service passes (never empty: see TestEveryCounterSeriesExists...
	// in internal/service), so that doppel_dead_letters_total and the retries are on the page.
	m := New(Series{DeadLetterReasons: []string{"invalid_json"}, Retries: []Retry{{"retry", "transient_failure"}}})
	exported := map[string]bool{}
	for _, match := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(scrape(t, m), -1) {
		exported[match[1]] = true
	}
	want := map[string]bool{"DoppelConsumerLagGrowing": false, "DoppelVendorCircuitOpen": false,
		"DoppelOutboxOld": false, "DoppelDeadLetters": false, "DoppelPartitionStalled": false}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			want[r.Alert] = true
			expr, err := promql.ParseExpr(r.Expr)
			require.NoError(t, err, r.Alert)
			for _, sel := range parser.ExtractSelectors(expr) {
				for _, lm := range sel {
					if lm.Name != "__name__" || addedElsewhere[lm.Value] {
						continue
					}
					if lm.Value == "doppel_consumer_lag" || lm.Value == "doppel_outbox_oldest_age_seconds" {
						continue // read at scrape time from Kafka and PostgreSQL: see pull.go
					}
					require.True(t, exported[lm.Value], "%s uses %s, which Doppel does not export", r.Alert, lm.Value)
				}
			}
		}
	}
	for alert, found := range want {
		require.True(t, found, "configs/doppel-alerts.yml has %s", alert)
	}
}
