// Package retention deletes what is older than its region's retention (DOPPEL_RETENTION,
// DOPPEL_ADVANCE_<R>_RETENTION), off the hot path: checks by completion (with their alerts and
// overflow) and links by when they were last seen, never those of a person on legal hold, in
// statements of at most postgres.RetentionBatch rows (1,000 by default), resting between them so
// that it works a tenth of the time, recomputing the rings whose links it deletes.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/doppelhq/doppel/internal/postgres"
)

// Store is what the sweeper needs of the database; postgres.Store implements it.
type Store interface {
	SweepChecks(ctx context.Context, region string, cutoff time.Time, after postgres.SweepCursor, limit int) (map[string]int64, postgres.SweepCursor, bool, error)
	SweepLinks(ctx context.Context, cutoffs map[string]time.Time, after postgres.SweepCursor, limit int) (int64, postgres.SweepCursor, bool, error)
}

// Config configures a Sweeper.
type Config struct {
	Store Store
	// Retentions are the regions' retentions; a region without one (or 0) keeps everything.
	Retentions map[string]time.Duration
	// Interval is the pause between two sweeps (default an hour).
	Interval time.Duration
	// Batch is the rows one statement looks at (default 1,000; at most postgres.RetentionBatch):
	// a short statement keeps the hot path's wait for the CPU, the WAL and the ring index short.
	Batch int
	// Share is the part of the time the sweep works: after a statement that took d it rests
	// d*(1/Share-1), and at least Pause (defaults 0.1 and 100 ms). The sweep takes longer and the
	// events flowing meanwhile do not notice it: on the 2-core machine of `make bench` (r), a
	// fifth of the time raised the flow's p99 by 42 %, a tenth by 9 % (median of three alternating runs).
	Share  float64
	Pause  time.Duration
	Logger *slog.Logger
	// OnDeleted counts the rows deleted by table (doppel_retention_deleted_total); may be nil.
	OnDeleted func(table string, n int64)
	// OnSwept is told of each sweep that looked at everything expired, and how long it took
	// (doppel_retention_sweeps_total); may be nil.
	OnSwept func(took time.Duration)
	// Now is optional, for tests.
	Now func() time.Time
}

// Sweeper runs the sweeps. Create it with New and start Run, or call Sweep.
type Sweeper struct{ cfg Config }

// New returns a Sweeper.
func New(cfg Config) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Pause <= 0 {
		cfg.Pause = 100 * time.Millisecond
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Share <= 0 || cfg.Share > 1 {
		cfg.Share = 0.1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sweeper{cfg: cfg}
}

// Run sweeps at once and then every Interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("retention sweep stopped; the next one goes on", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Interval):
		}
	}
}

// Sweep makes one pass: every region's expired checks, then the expired links.
func (s *Sweeper) Sweep(ctx context.Context) error {
	sweepBegan := time.Now()
	now := s.cfg.Now()
	cutoffs := map[string]time.Time{}
	for region, d := range s.cfg.Retentions {
		if d > 0 {
			cutoffs[region] = now.Add(-d)
		}
	}
	if len(cutoffs) == 0 {
		return nil
	}
	for region, cutoff := range cutoffs {
		var cursor postgres.SweepCursor
		for {
			began := time.Now()
			deleted, next, done, err := s.cfg.Store.SweepChecks(ctx, region, cutoff, cursor, s.cfg.Batch)
			if err != nil {
				return err
			}
			for table, n := range deleted {
				s.count(table, n)
			}
			if done {
				break
			}
			cursor = next
			if !s.rest(ctx, time.Since(began)) {
				return ctx.Err()
			}
		}
	}
	var cursor postgres.SweepCursor
	for {
		began := time.Now()
		n, next, done, err := s.cfg.Store.SweepLinks(ctx, cutoffs, cursor, s.cfg.Batch)
		if err != nil {
			return err
		}
		s.count("duplicate_links", n)
		if done {
			took := time.Since(sweepBegan)
			s.cfg.Logger.Info("retention sweep done", "took", took.Round(time.Millisecond))
			if s.cfg.OnSwept != nil {
				s.cfg.OnSwept(took)
			}
			return nil
		}
		cursor = next
		if !s.rest(ctx, time.Since(began)) {
			return ctx.Err()
		}
	}
}

func (s *Sweeper) count(table string, n int64) {
	if n > 0 && s.cfg.OnDeleted != nil {
		s.cfg.OnDeleted(table, n)
	}
}

// rest waits after a statement that took took, long enough for the sweep to keep to its Share of
// the time, and at least Pause; false when ctx ended.
func (s *Sweeper) rest(ctx context.Context, took time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(restAfter(took, s.cfg.Share, s.cfg.Pause)):
		return true
	}
}

// restAfter is the rest after a statement that took took, for a sweep working share of the time.
func restAfter(took time.Duration, share float64, least time.Duration) time.Duration {
	return max(least, time.Duration(float64(took)*(1/share-1)))
}
