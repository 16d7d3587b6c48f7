package service

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/facesearch"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/readiness"
	"github.com/doppelhq/doppel/internal/region"
)

// budgetRefresh is how often a region's spend is read again from the stored checks, so that the
// searches of other instances count against this one's view of the budget too.
const budgetRefresh = 30 * time.Second

// NewRegions returns the registry of the configured vendor regions, each with its own client
// (token cache), rate limit, circuit breaker, SERVICE_BUSY pause and budget, its spend read from
// store. m may be nil (no metrics), as for `doppel replay`.
func NewRegions(ctx context.Context, cfg config.Config, m *metrics.Metrics, store *postgres.Store, log *slog.Logger) (*region.Registry, error) {
	var regions []*region.Region
	for _, rc := range cfg.Regions() {
		ac := advance.Config{BaseURL: rc.BaseURL, AccessKey: rc.AccessKey, SecretKey: rc.SecretKey, Timeout: cfg.AdvanceTimeout}
		// The main path may use the region's whole rate; polling takes its share of the same
		// rate (newPollRegions).
		fc := facesearch.Config{QPS: rc.QPS, BreakerFailures: cfg.BreakerFailures, BreakerOpenFor: cfg.BreakerOpenFor}
		bc := region.BudgetConfig{Region: rc.Name, Limit: rc.MonthlyBudget, Count: store.FaceSearchesSince,
			Logger: log.With("region", rc.Name)}
		if m != nil {
			rm := m.Region(rc.Name)
			ac.OnCall = rm.VendorCall
			fc.OnStateChange, fc.OnPause = rm.SetBreakerState, rm.SetVendorPaused
			bc.OnChange = rm.SetBudget
		}
		client, err := advance.New(ac)
		if err != nil {
			return nil, fmt.Errorf("vendor client of region %s: %w", rc.Name, err)
		}
		budget := region.NewBudget(bc)
		if err := budget.Load(ctx); err != nil {
			return nil, fmt.Errorf("read the monthly spend of region %s: %w", rc.Name, err)
		}
		regions = append(regions, region.New(rc.Name, facesearch.New(client, fc), budget))
	}
	return region.NewRegistry(cfg.DefaultRegion(), regions...)
}

// refreshBudgets reads every region's spend again every budgetRefresh until ctx ends.
func refreshBudgets(ctx context.Context, regions *region.Registry, log *slog.Logger) error {
	t := time.NewTicker(budgetRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, name := range regions.Names() {
			r, _ := regions.Lookup(name)
			if err := r.Budget().Load(ctx); err != nil && ctx.Err() == nil {
				log.Warn("read region spend", "region", name, "error", err)
			}
		}
	}
}

// regionReadiness returns /readyz's vendor checks. With one region its trouble makes the instance
// unready (consumption is paused), as before regions. With several, "vendor" fails only when no
// region can take events, and each region's state is reported as vendor:<region> without making
// the instance unready: its events are parked and the other regions' flow.
func regionReadiness(regions *region.Registry) []readiness.Check {
	names := regions.Names()
	if len(names) == 1 {
		return []readiness.Check{{Name: "vendor", Check: func(context.Context) error { return regions.Default().Ready() }}}
	}
	checks := []readiness.Check{{Name: "vendor", Check: func(context.Context) error { return regions.Ready() }}}
	for _, name := range names {
		r, _ := regions.Lookup(name)
		checks = append(checks, readiness.Check{Name: "vendor:" + name, Informational: true,
			Check: func(context.Context) error { return r.Ready() }})
	}
	return checks
}

// consoleRegion is what the review console shows for the region called `default`: the vendor
// host's region when one account is configured by the flat settings (alerts of named regions show
// their own).
func consoleRegion(cfg config.Config) string {
	if len(cfg.AdvanceRegions) == 0 && len(cfg.Advance.Regions) == 0 {
		return advance.Region(cfg.AdvanceBaseURL)
	}
	return ""
}
