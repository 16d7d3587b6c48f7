// Package httpapi is Doppel's HTTP surface, served with Echo: health and readiness for operators,
// and (as it grows) the callback, query and review API for the vendor and risk analysts.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// ReadinessCheck reports why a dependency is not ready, or nil when it is.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config configures the server.
type Config struct {
	Readiness []ReadinessCheck
	// Metrics serves /metrics (Prometheus); nil leaves the route out.
	Metrics http.Handler
	Logger  *slog.Logger
}

// Server holds the Echo instance and what its handlers need.
type Server struct {
	echo *echo.Echo
	cfg  Config
}

// New returns a Server with every route registered.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	s := &Server{echo: e, cfg: cfg}
	s.routes()
	return s
}

// Handler returns the server as an http.Handler, for tests.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve listens on addr until ctx is cancelled, then shuts down within timeout.
func (s *Server) Serve(ctx context.Context, addr string, timeout time.Duration) error {
	srv := &http.Server{Addr: addr, Handler: s.echo, ReadHeaderTimeout: 10 * time.Second}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.ListenAndServe() }()
	select {
	case err := <-errCh:
		return err
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		err := srv.Shutdown(shutCtx)
		if lerr := <-errCh; !errors.Is(lerr, http.ErrServerClosed) {
			err = errors.Join(err, lerr)
		}
		return err
	}
}

// Error is the one JSON shape of every error answer.
type Error struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := http.StatusInternalServerError
		body := Error{Error: "internal", Message: "internal error"}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
			body.Error = http.StatusText(status)
			if msg, ok := he.Message.(string); ok {
				body.Message = msg
			} else {
				body.Message = http.StatusText(status)
			}
		} else {
			// Internal details are logged, never returned.
			log.Error("http handler", "path", c.Path(), "error", err)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, body)
	}
}
