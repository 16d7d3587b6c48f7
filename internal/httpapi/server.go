// Package httpapi is Doppel's HTTP surface, served with Echo: health and readiness for operators,
// the vendor's callback endpoint, and the query, review and replay API for risk analysts. Every
// route is listed in routes.go and described in openapi.json, which a test keeps in step.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/reconcile"
)

// ReadinessCheck reports why a dependency is not ready, or nil when it is.
type ReadinessCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Store is what the query, review and replay endpoints read and write; postgres.Store implements it.
type Store interface {
	UserDuplicates(ctx context.Context, userID string) ([]duplicate.LinkedAccount, error)
	Check(ctx context.Context, signatureID string) (duplicate.Check, error)
	Ring(ctx context.Context, userID string) (duplicate.Ring, error)
	Alerts(ctx context.Context, q duplicate.AlertQuery) ([]duplicate.StoredAlert, error)
	AddReview(ctx context.Context, r duplicate.Review) (duplicate.Review, error)
	MissingChecks(ctx context.Context, signatureIDs []string) ([]string, error)
	ReplayCandidates(ctx context.Context, from, to time.Time, limit int) ([]string, error)
}

// Replayer re-runs face search for stored checks; duplicate.Replayer implements it.
type Replayer interface {
	ReplayAll(ctx context.Context, signatureIDs []string, workers int,
		onResult func(duplicate.ReplayResult)) (duplicate.ReplaySummary, []duplicate.ReplayResult)
}

// Publisher writes an event to the events topic and returns once the broker acknowledged it.
type Publisher interface {
	Publish(ctx context.Context, key, value []byte) error
}

// APIKey is one key of the query API, known only by the SHA-256 of its secret.
type APIKey struct {
	Name   string
	Scopes []string
	SHA256 [32]byte
}

// Config configures the server. Everything but Logger may be left out: a route whose dependency is
// missing answers 503, so the set of routes (and the OpenAPI description) never changes.
type Config struct {
	Readiness []ReadinessCheck
	// Metrics serves /metrics (Prometheus); nil leaves the route out.
	Metrics http.Handler
	Logger  *slog.Logger

	Store    Store
	Replayer Replayer
	// OnAlerts is called after a re-run wrote alerts to the outbox (to wake the relay); may be nil.
	OnAlerts func()

	// Events receives the vendor's callbacks as events.
	Events Publisher
	// CallbackToken authenticates the vendor (?token=); CallbackHMACSecret authenticates internal
	// producers that sign the body (X-Doppel-Signature). With neither, callbacks answer 503.
	CallbackToken      string
	CallbackHMACSecret string
	// CallbackTimeout bounds the wait for the broker's acknowledgement (default 10 s).
	CallbackTimeout time.Duration
	// EventOptions are the pipeline's decoding rules, applied to callback bodies before they are
	// accepted; MaxBytes also bounds the body (default 64 KiB).
	EventOptions duplicate.DecodeOptions

	APIKeys []APIKey

	// Reconciliation reports the started verifications' counts (GET /v1/reconciliation); nil
	// answers 503.
	Reconciliation func(ctx context.Context) (reconcile.Counts, error)
	// ReconcileAlertRatio is the callbacks_missing threshold, shown next to the counts.
	ReconcileAlertRatio float64

	// OnRequest is told about every answered request (route pattern, method, status, duration),
	// for the HTTP metrics; may be nil.
	OnRequest func(route, method string, status int, d time.Duration)
}

// Server holds the Echo instance and what its handlers need.
type Server struct {
	echo *echo.Echo
	cfg  Config
	log  *slog.Logger
}

// New returns a Server with every route registered.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallbackTimeout <= 0 {
		cfg.CallbackTimeout = 10 * time.Second
	}
	if cfg.EventOptions.MaxBytes <= 0 {
		cfg.EventOptions.MaxBytes = 64 << 10
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(requestMetrics(cfg.OnRequest))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}))
	s := &Server{echo: e, cfg: cfg, log: cfg.Logger}
	s.routes()
	return s
}

// Handler returns the server as an http.Handler, for tests.
func (s *Server) Handler() http.Handler { return s.echo }

// Routes returns "METHOD path" for every registered route, paths in OpenAPI form ({param}).
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		out = append(out, r.Method+" "+openAPIPath(r.Path))
	}
	return out
}

// Serve listens on addr until ctx is cancelled, then shuts down within timeout.
func (s *Server) Serve(ctx context.Context, addr string, timeout time.Duration) error {
	srv := &http.Server{Addr: addr, Handler: s.echo, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
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
