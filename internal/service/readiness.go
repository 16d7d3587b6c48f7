package service

import (
	"context"
	"log/slog"
	"sync"

	"github.com/doppelhq/doppel/internal/httpapi"
)

// logReadiness wraps each readiness check so that its changes are logged once each, "not ready"
// with the reason when it starts failing and "ready" when it passes again, however often /readyz
// is probed in between.
func logReadiness(log *slog.Logger, checks []httpapi.ReadinessCheck) []httpapi.ReadinessCheck {
	out := make([]httpapi.ReadinessCheck, len(checks))
	for i, c := range checks {
		var (
			mu    sync.Mutex
			known bool
			ready bool
		)
		out[i] = httpapi.ReadinessCheck{Name: c.Name, Check: func(ctx context.Context) error {
			err := c.Check(ctx)
			if ctx.Err() != nil && err != nil {
				return err // the probe gave up: that says nothing about the dependency
			}
			mu.Lock()
			changed := !known || ready != (err == nil)
			known, ready = true, err == nil
			mu.Unlock()
			switch {
			case changed && err == nil:
				log.Info("ready", "check", c.Name)
			case changed:
				log.Warn("not ready", "check", c.Name, "reason", err)
			}
			return err
		}}
	}
	return out
}
