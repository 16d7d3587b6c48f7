// Package httpapi is Doppel's HTTP surface, served with Echo. The public listener has health and a
// status-only readiness, the vendor's callback endpoint, and the query, review and replay API for
// risk analysts; the admin listener has what only operators should see (metrics, pprof, readiness
// with its reasons). Every route is listed in routes.go; the public ones are described in
// openapi.json, which a test keeps in step.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/readiness"
	"github.com/doppelhq/doppel/internal/reconcile"
)

// Readiness is the cached readiness answer; readiness.Checker implements it.
type Readiness interface {
	Report() readiness.Report
}

// Store is what the query, review and replay endpoints read and write; postgres.Store implements it.
type Store interface {
	UserDuplicates(ctx context.Context, userID, region string) ([]duplicate.LinkedAccount, error)
	Check(ctx context.Context, signatureID string) (duplicate.Check, error)
	Ring(ctx context.Context, userID string) (duplicate.Ring, error)
	Alerts(ctx context.Context, q duplicate.AlertQuery) ([]duplicate.StoredAlert, error)
	AddReview(ctx context.Context, r duplicate.Review) (duplicate.Review, error)
	MissingChecks(ctx context.Context, signatureIDs []string) ([]string, error)
	ReplayCandidates(ctx context.Context, from, to time.Time, limit int) ([]string, error)
	// ReserveReplays counts n re-runs against key's quota of the day if it holds them (see
	// postgres.Store.ReserveReplays); ReleaseReplays gives back those that were not billed.
	ReserveReplays(ctx context.Context, key string, n, limit int) (int, bool, error)
	ReleaseReplays(ctx context.Context, key string, n int) error
	RingStore
	PrivacyStore
	CaseStore
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

// Config configures the server. Everything but Logger may be left out: a route whose dependency is
// missing answers 503, so the set of routes (and the OpenAPI description) never changes.
type Config struct {
	// Readiness answers /readyz (status only: the detail is on the admin listener); nil is ready.
	Readiness Readiness
	Logger    *slog.Logger

	Store    Store
	Replayer Replayer
	// AccessLog records every read of a person's data (accesslog.Writer); nil records none.
	AccessLog AccessLog
	// OnAlerts is called after a re-run wrote alerts to the outbox (to wake the relay); may be nil.
	OnAlerts func()

	// Events receives the vendor's callbacks as events.
	Events Publisher
	// CallbackToken authenticates the vendor (X-Doppel-Callback-Token, or ?token= unless
	// CallbackTokenHeaderOnly). CallbackSigningSecrets (whsec_<base64>, several while one is
	// rotated) authenticate internal producers signing by the Standard Webhooks specification;
	// CallbackHMACSecret those still signing the deprecated X-Doppel-Signature. With none of them,
	// callbacks answer 503.
	CallbackToken           string
	CallbackTokenHeaderOnly bool
	CallbackSigningSecrets  []string
	CallbackHMACSecret      string
	// Deliveries remembers the signed deliveries accepted within the signature window, so that a
	// replay is answered duplicate and publishes nothing (postgres.Store implements it). nil turns
	// that off, leaving the timestamp window only; `doppel serve` always sets it.
	Deliveries Deliveries
	// OnCallback counts an authenticated callback by how it authenticated (token,
	// standard_webhooks, x_doppel_signature) and its outcome (accepted, duplicate); may be nil.
	OnCallback func(auth, outcome string)
	// CallbackTimeout bounds the wait for the broker's acknowledgement (default 10 s).
	CallbackTimeout time.Duration
	// EventOptions are the pipeline's decoding rules, applied to callback bodies before they are
	// accepted; MaxBytes also bounds the body (default 64 KiB).
	EventOptions duplicate.DecodeOptions

	APIKeys []apikey.Key
	// CaseCap is the most cases one analyst (or key) may hold claimed (DOPPEL_CASE_CAP); 0: no cap.
	CaseCap int
	// ReplayMaxChecks bounds the checks one replay call re-runs, each a billed face search
	// (default 1000).
	ReplayMaxChecks int
	// ReplayDailyLimit bounds the re-runs (billed face searches) one API key may ask for per UTC
	// day, across calls and instances (DOPPEL_REPLAY_DAILY_LIMIT); 0: no daily bound.
	ReplayDailyLimit int
	// AuthFailuresPerMinute is how many failed authentications a remote address may make per
	// minute before it is answered 429 (a burst of that size, refilled evenly); 0: no throttling.
	AuthFailuresPerMinute int
	// OnAuthFailure counts a failed authentication by route and reason (the metric); may be nil.
	OnAuthFailure func(route, reason string)

	// Regions are the configured vendor regions: a callback to /v1/callbacks/advance/{region} and a
	// ?region= filter must name one of them. Empty accepts any region code.
	Regions []string
	// Reconciliation reports the started verifications' counts (GET /v1/reconciliation); nil
	// answers 503.
	Reconciliation func(ctx context.Context) (reconcile.Counts, error)
	// ReconcileAlertRatio is the callbacks_missing threshold, shown next to the counts.
	ReconcileAlertRatio float64

	// Erasures records and reads erasure requests and legal holds; nil answers 503 (no database, or
	// no DOPPEL_PSEUDONYM_KEY). OnErasure is called once a new erasure is recorded (to wake the
	// runner); may be nil.
	Erasures  ErasureStore
	OnErasure func()
	// LegalHolds answers GET /v1/users/{userId}/legal-hold; nil answers 503.
	LegalHolds LegalHolds

	// HSTS sends Strict-Transport-Security with every answer: the public listener is served over
	// TLS by a proxy (DOPPEL_PUBLIC_URL is https).
	HSTS bool

	// OnRequest is told about every answered request (route pattern, method, status, duration),
	// for the HTTP metrics; may be nil.
	OnRequest func(route, method string, status int, d time.Duration)
}

// Server holds the Echo instance and what its handlers need.
type Server struct {
	echo     *echo.Echo
	cfg      Config
	log      *slog.Logger
	authFail *authFailures
	// signers verify Standard Webhooks signatures, one per configured signing secret.
	signers signers
	// spec is the OpenAPI description served, with this deployment's regions.
	spec []byte
	// console is served at consolePath on the same listener once mounted (see MountConsole).
	console     http.Handler
	consolePath string
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
	if cfg.ReplayMaxChecks <= 0 {
		cfg.ReplayMaxChecks = 1000
	}
	if cfg.OnCallback == nil {
		cfg.OnCallback = func(string, string) {}
	}
	s := &Server{echo: newEcho(cfg.Logger, cfg.OnRequest), cfg: cfg, log: cfg.Logger,
		authFail: newAuthFailures(cfg.AuthFailuresPerMinute, cfg.OnAuthFailure, cfg.Logger), spec: specFor(cfg.Regions)}
	var errs []error
	s.signers, errs = newSigners(cfg.CallbackSigningSecrets)
	for _, err := range errs {
		// config.Validate refuses these at start-up; a caller that skipped it loses that secret only.
		s.log.Error("callback signing secret left out", "error", err)
	}
	s.routes()
	return s
}

// newEcho returns an Echo instance whose every error, its own included, has the one JSON shape;
// onRequest (may be nil) is told about every answered request.
func newEcho(log *slog.Logger, onRequest func(route, method string, status int, d time.Duration)) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(log)
	e.Use(requestMetrics(onRequest))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, DisablePrintStack: true}))
	return e
}

// Handler returns the server as an http.Handler, for tests.
func (s *Server) Handler() http.Handler { return s.root() }

// Routes returns "METHOD path" for every registered route, paths in OpenAPI form ({param}). HEAD
// is left out: every GET route answers it, as HTTP says, without being described twice.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		if r.Method != http.MethodHead {
			out = append(out, r.Method+" "+openAPIPath(r.Path))
		}
	}
	return out
}

// Serve listens on addr until ctx is cancelled, then shuts down within timeout.
func (s *Server) Serve(ctx context.Context, addr string, timeout time.Duration) error {
	return serve(ctx, s.root(), addr, timeout)
}

// maxHeaderBytes bounds a request's header; beyond it net/http answers 431 (in the JSON shape,
// see jsonErrorListener).
const maxHeaderBytes = 64 << 10

// serve runs h on addr until ctx is cancelled, then shuts down within timeout. A port that cannot
// be bound is an error at once, so a misconfigured listener stops start-up.
func serve(ctx context.Context, h http.Handler, addr string, timeout time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes,
		ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(jsonErrorListener{ln}) }()
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
