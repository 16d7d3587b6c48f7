package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// AdminConfig configures the admin listener.
type AdminConfig struct {
	Readiness Readiness
	// Metrics serves /metrics (Prometheus); nil answers 404 there.
	Metrics http.Handler
	Logger  *slog.Logger
}

// Admin serves what only operators should reach: /metrics, Go's profiler under /debug/pprof/, and
// /readyz with the reason of each check. It has no authentication of its own: bind it to loopback
// or a private network (DOPPEL_ADMIN_ADDR, 127.0.0.1:9090 by default), never to the internet.
type Admin struct {
	echo *echo.Echo
	cfg  AdminConfig
}

// NewAdmin returns the admin server with its routes registered.
func NewAdmin(cfg AdminConfig) *Admin {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Admin{echo: newEcho(cfg.Logger, nil), cfg: cfg}
	a.routes()
	return a
}

// Handler returns the admin server as an http.Handler, for tests.
func (a *Admin) Handler() http.Handler { return a.echo }

// Serve listens on addr until ctx is cancelled, then shuts down within timeout.
func (a *Admin) Serve(ctx context.Context, addr string, timeout time.Duration) error {
	return serve(ctx, a.echo, addr, timeout)
}
