// Package retention deletes what is older than its region's retention (DOPPEL_RETENTION,
// DOPPEL_ADVANCE_<R>_RETENTION), off the hot path: checks by completion (with their alerts and
// overflow) and links by when they were last seen, never those of a person on legal hold, in
// statements of at most postgres.RetentionBatch rows, recomputing the rings whose links it deletes.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/doppelhq/doppel/internal/postgres"
)

// Store is what the sweeper needs of the database; postgres.Store implements it.
type Store interface {
	SweepChecks(ctx context.Context, region string, cutoff time.Time, after postgres.SweepCursor) (map[string]int64, postgres.SweepCursor, bool, error)
	SweepLinks(ctx context.Context, cutoffs map[string]time.Time, after postgres.SweepCursor) (int64, postgres.SweepCursor, bool, error)
}

// Config configures a Sweeper.
type Config struct {
	Store Store
	// Retentions are the regions' retentions; a region without one (or 0) keeps everything.
	Retentions map[string]time.Duration
	// Interval is the pause between two sweeps (default an hour).
	Interval time.Duration
	// Pause is the pause between two statements, so the sweep leaves the database to the hot path
	// (default 100 ms).
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
	began := time.Now()
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
			deleted, next, done, err := s.cfg.Store.SweepChecks(ctx, region, cutoff, cursor)
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
			if !s.pause(ctx) {
				return ctx.Err()
			}
		}
	}
	var cursor postgres.SweepCursor
	for {
		n, next, done, err := s.cfg.Store.SweepLinks(ctx, cutoffs, cursor)
		if err != nil {
			return err
		}
		s.count("duplicate_links", n)
		if done {
			took := time.Since(began)
			s.cfg.Logger.Info("retention sweep done", "took", took.Round(time.Millisecond))
			if s.cfg.OnSwept != nil {
				s.cfg.OnSwept(took)
			}
			return nil
		}
		cursor = next
		if !s.pause(ctx) {
			return ctx.Err()
		}
	}
}

func (s *Sweeper) count(table string, n int64) {
	if n > 0 && s.cfg.OnDeleted != nil {
		s.cfg.OnDeleted(table, n)
	}
}

func (s *Sweeper) pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(s.cfg.Pause):
		return true
	}
}
