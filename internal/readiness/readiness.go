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
	"sync"
	"time"
)

// Check is one named part of readiness: Check returns why the part is not ready, or nil. It is
// called from one goroutine at a time and must return when ctx ends.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
	// Informational checks are reported (and logged) but do not make the instance unready: one
	// vendor region's trouble is that region's alone, and its events wait without holding up the
	// others.
	Informational bool
	// Serving marks a check the HTTP API needs to answer (the database): only these decide
	// Report.Serving, the public listener's /readyz. A stalled partition or a vendor outage stops
	// the pipeline, not the API, and must not take every instance's API out of a load balancer.
	Serving bool
}

// Report is the cached answer.
type Report struct {
	// Ready is true when every check but the informational ones passes: the pipeline can work.
	Ready bool
	// Serving is true when every Serving check passes: the HTTP API can answer.
	Serving bool
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
	// wasReady is each check's state as last logged.
	wasReady map[string]bool
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
	return &Checker{cfg: cfg, checks: slices.Clone(checks), wasReady: map[string]bool{}}
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

// CheckNow runs every check once, concurrently, and caches the result. A round cut short because
// ctx ended (a shutdown) says nothing about the dependencies and is dropped.
func (c *Checker) CheckNow(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.Timeout)
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
	if parent.Err() != nil {
		return
	}
	r := Report{Ready: true, Serving: true, CheckedAt: time.Now(), Checks: make(map[string]string, len(c.checks))}
	for i, chk := range c.checks {
		r.Checks[chk.Name] = results[i]
		if results[i] != "ok" && !chk.Informational {
			r.Ready = false
		}
		if results[i] != "ok" && chk.Serving {
			r.Serving = false
		}
	}
	c.mu.Lock()
	c.last = r
	c.logChanges(r)
	c.mu.Unlock()
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
		r.Ready, r.Serving = false, false
		r.Checks = map[string]string{}
		for _, chk := range c.checks {
			r.Checks[chk.Name] = "not checked yet"
		}
	case time.Since(r.CheckedAt) > 3*c.cfg.Interval+c.cfg.Timeout:
		r.Ready, r.Serving = false, false
		for name, v := range r.Checks {
			r.Checks[name] = "stale: last checked at " + r.CheckedAt.UTC().Format(time.RFC3339) + " (" + v + ")"
		}
	}
	return r
}

// logChanges logs each check's changes once each, "ready" when it passes (at first, or again) and
// "not ready" with the reason when it starts failing, so the log tells when and why an instance
// left its load balancer without a line per round. Called with mu held.
func (c *Checker) logChanges(r Report) {
	for _, chk := range c.checks {
		reason := r.Checks[chk.Name]
		ready := reason == "ok"
		if was, known := c.wasReady[chk.Name]; known && was == ready {
			continue
		}
		c.wasReady[chk.Name] = ready
		if ready {
			c.cfg.Logger.Info("ready", "check", chk.Name)
		} else {
			c.cfg.Logger.Warn("not ready", "check", chk.Name, "reason", reason)
		}
	}
}
