// Package readiness decides whether Doppel can do its work. Named checks (the database, the broker,
// the vendor circuit, a stalled partition, ...) run in the background at an interval and their
// results are cached, so a probe reads the last answer and never opens a connection of its own:
// a burst of /readyz calls costs nothing, and a slow dependency cannot make the probe hang.
package readiness

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Check is one named part of readiness: Check returns why the part is not ready, or nil. It is
// called from one goroutine at a time and must return when ctx ends.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Report is the cached answer.
type Report struct {
	Ready bool
	// CheckedAt is when the checks last ran; zero before the first round.
	CheckedAt time.Time
	// Checks maps each check's name to "ok" or the reason it is not ready.
	Checks map[string]string
}

// Config tunes the checker; zero values take the defaults.
type Config struct {
	// Interval between rounds of checks (default 5 s).
	Interval time.Duration
	// Timeout bounds each check of a round (default 3 s).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Checker runs the checks in the background (Run) and answers from the last round (Report).
type Checker struct {
	cfg    Config
	checks []Check

	mu   sync.Mutex
	last Report
}

// New returns a Checker of checks. Until its first round it reports not ready.
func New(cfg Config, checks ...Check) *Checker {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{cfg: cfg, checks: slices.Clone(checks)}
}

// Run checks at once and then every interval until ctx ends; it returns nil then.
func (c *Checker) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		c.CheckNow(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// CheckNow runs every check once, concurrently, and caches the result.
func (c *Checker) CheckNow(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	results := make([]string, len(c.checks))
	var wg sync.WaitGroup
	for i, chk := range c.checks {
		wg.Go(func() {
			results[i] = "ok"
			if err := chk.Check(ctx); err != nil {
				results[i] = err.Error()
			}
		})
	}
	wg.Wait()
	r := Report{Ready: true, CheckedAt: time.Now(), Checks: make(map[string]string, len(c.checks))}
	for i, chk := range c.checks {
		r.Checks[chk.Name] = results[i]
		if results[i] != "ok" {
			r.Ready = false
		}
	}
	c.mu.Lock()
	prev := c.last
	c.last = r
	c.mu.Unlock()
	c.logChange(prev, r)
}

// Report returns the last round's answer. An answer older than three intervals (the checker is
// stuck or not running) is not ready: a cached "ready" must not outlive the process's health.
func (c *Checker) Report() Report {
	c.mu.Lock()
	r := c.last
	c.mu.Unlock()
	r.Checks = maps.Clone(r.Checks)
	switch {
	case r.CheckedAt.IsZero():
		r.Ready = false
		r.Checks = map[string]string{}
		for _, chk := range c.checks {
			r.Checks[chk.Name] = "not checked yet"
		}
	case time.Since(r.CheckedAt) > 3*c.cfg.Interval+c.cfg.Timeout:
		r.Ready = false
		for name, v := range r.Checks {
			r.Checks[name] = "stale: last checked at " + r.CheckedAt.UTC().Format(time.RFC3339) + " (" + v + ")"
		}
	}
	return r
}

// logChange logs when readiness flips, with the reasons, so the log tells when and why an
// instance left its load balancer.
func (c *Checker) logChange(prev, cur Report) {
	if !prev.CheckedAt.IsZero() && prev.Ready == cur.Ready && (cur.Ready || maps.Equal(prev.Checks, cur.Checks)) {
		return
	}
	if cur.Ready {
		c.cfg.Logger.Info("ready")
		return
	}
	var failing []string
	for _, name := range slices.Sorted(maps.Keys(cur.Checks)) {
		if v := cur.Checks[name]; v != "ok" {
			failing = append(failing, name+": "+v)
		}
	}
	c.cfg.Logger.Warn("not ready", "reasons", strings.Join(failing, "; "))
}
