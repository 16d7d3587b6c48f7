package accesslog

import (
	"context"
	"log/slog"
	"time"
)

// Deleter deletes entries read before a time, at most limit in one statement, and says how many
// went; postgres.Store implements it (the only delete the table's append-only trigger allows).
type Deleter interface {
	DeleteAccessLogBefore(ctx context.Context, before time.Time, limit int) (int64, error)
}

// SweepConfig configures Sweep.
type SweepConfig struct {
	// Retention is how long an entry is kept (DOPPEL_ACCESS_LOG_RETENTION); 0 keeps every entry:
	// Sweep then deletes nothing and waits for ctx to end.
	Retention time.Duration
	// Interval is the time between sweeps (default 10 minutes).
	Interval time.Duration
	// Batch is the most rows one statement deletes (default 10,000).
	Batch     int
	OnDeleted func(n int64)
	Logger    *slog.Logger
}

// Sweep deletes the entries older than Retention, in statements of at most Batch rows, once at
// start and then every Interval, until ctx ends. A failed sweep is logged and tried again at the
// next interval: the log keeps its entries a little longer, which is the safe side.
func Sweep(ctx context.Context, d Deleter, cfg SweepConfig) error {
	if cfg.Retention <= 0 {
		<-ctx.Done()
		return nil
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnDeleted == nil {
		cfg.OnDeleted = func(int64) {}
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		before := time.Now().Add(-cfg.Retention)
		var total int64
		for ctx.Err() == nil {
			n, err := d.DeleteAccessLogBefore(ctx, before, cfg.Batch)
			if err != nil {
				if ctx.Err() == nil {
					cfg.Logger.Warn("access log: retention sweep failed; trying again at the next interval", "error", err)
				}
				break
			}
			total += n
			cfg.OnDeleted(n)
			if n < int64(cfg.Batch) {
				break
			}
		}
		if total > 0 {
			cfg.Logger.Info("access log: retention sweep", "deleted", total, "before", before.UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
