// Package console is the review console: the web pages at /console/ where risk analysts sign in
// (by single sign-on, with a local account, or with an API key), work the queue of open alerts,
// see a ring drawn and decide its pairs, search users, read the audit trail and watch the day's
// activity. Pages are rendered on the server with html/template; every asset (templates, CSS, a
// little JavaScript, the SVG drawings) comes from this binary, so the console works without
// internet.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/doppelhq/doppel/internal/analyst"
	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/evidence"
)

// Store is what the console reads and writes; postgres.Store implements it.
type Store interface {
	Alerts(ctx context.Context, q duplicate.AlertQuery) ([]duplicate.StoredAlert, error)
	Alert(ctx context.Context, alertID string) (duplicate.StoredAlert, error)
	RingDetail(ctx context.Context, ringID, focus string) (duplicate.RingDetail, error)
	Ring(ctx context.Context, userID string) (duplicate.Ring, error)
	// The large ring's page and the evidence read only what a page shows (see largering.go).
	RingSize(ctx context.Context, ringID string) (int, error)
	RingNeighbourhood(ctx context.Context, ringID, centre string, limit int) (duplicate.RingNeighbourhood, error)
	RingMembersPage(ctx context.Context, ringID, after string, limit int) ([]string, error)
	LatestChecks(ctx context.Context, userIDs []string) ([]duplicate.LatestCheck, error)
	// UserDuplicates lists userID's linked accounts; region "" is every region's.
	UserDuplicates(ctx context.Context, userID, region string) ([]duplicate.LinkedAccount, error)
	Reviews(ctx context.Context, q duplicate.ReviewQuery) ([]duplicate.Review, error)
	Overview(ctx context.Context, now time.Time) (duplicate.Overview, error)
	// OpenCases counts the rings with open alerts for the overview (every count bounded).
	OpenCases(ctx context.Context, now time.Time, sla time.Duration) (duplicate.OpenCases, error)
	// UserIDsByPrefix is the users search: at most limit ids after after, in byte order.
	UserIDsByPrefix(ctx context.Context, prefix, after string, limit int) ([]string, error)
	// UserChecks lists a user's own verifications, newest first.
	UserChecks(ctx context.Context, userID string, limit int) ([]duplicate.UserCheck, error)
	AddReview(ctx context.Context, r duplicate.Review) (duplicate.Review, error)
	DecideRing(ctx context.Context, ringID string, decision duplicate.Decision, note, reviewer string, redecide bool) (int, error)
	CaseStore
	SessionStore
	AnalystStore
}

// Path is where the console is served: its pages, redirects and cookies are under it, and the
// service mounts it there on the API's listener (httpapi.Server.MountConsole).
const Path = "/console"

// SignInPath is the sign-in form's route, the label its failures are counted under
// (doppel_http_auth_failures_total{route="/console/login"}).
const SignInPath = Path + "/login"

// SignInGuard throttles, counts and logs sign-ins with unknown keys. The service passes the API's
// (httpapi.Server.SignInGuard), so a guessed key costs the same at the console as at the API and
// shows in the same metric; the console does not import the API for it.
type SignInGuard interface {
	// Blocked reports whether r's address has used its failed attempts up, and the seconds until
	// it may try again.
	Blocked(r *http.Request) (retryAfter string, blocked bool)
	// Failed records a sign-in with an unknown key against r's address.
	Failed(r *http.Request)
}

// noGuard is the SignInGuard of a console configured without one: nothing is throttled.
type noGuard struct{}

func (noGuard) Blocked(*http.Request) (string, bool) { return "", false }
func (noGuard) Failed(*http.Request)                 {}

// DefaultSessionTTL is how long a sign-in lasts when Config.SessionTTL is not set.
const DefaultSessionTTL = 8 * time.Hour

// Config configures the console.
type Config struct {
	Store Store
	// APIKeys are the keys one signs in with (the API's own): read scope to sign in, review scope
	// to decide.
	APIKeys []apikey.Key
	// SignIn throttles, counts and logs sign-ins with unknown keys as the API does its failed
	// authentications (httpapi.Server.SignInGuard); nil does none of it.
	SignIn SignInGuard
	// SecureCookies marks the console served over TLS by a proxy (DOPPEL_PUBLIC_URL is https): its
	// cookies are Secure, with the __Host- prefix.
	SecureCookies bool
	// SessionTTL bounds a session's life (DefaultSessionTTL when 0).
	SessionTTL time.Duration
	// DeadLetters counts the letters on the dead-letter topic; nil shows none.
	DeadLetters func(ctx context.Context) (int64, error)
	// Region names the region called `default` (one vendor account configured by the flat
	// settings), from the vendor's host; "" when unknown. Every other alert shows its own region.
	Region string

	// Evidence fetches the face and document data shown beside a ring (evidence.go); nil shows none.
	Evidence *evidence.Fetcher
	// EvidenceViews records who saw whose evidence; required with Evidence.
	EvidenceViews EvidenceViews

	Logger *slog.Logger
	// SignInLimits bound failed sign-ins by name and password (analyst.DefaultLimits when zero).
	SignInLimits analyst.Limits
	// OIDC turns on single sign-on; nil offers none.
	OIDC *OIDCConfig
	// Erasures shows a person's legal hold on their page and records erasures asked there by a
	// session with the erase scope; nil shows and offers neither.
	Erasures Erasures
	// OnErasure wakes the erasure runner after an erasure is recorded; may be nil.
	OnErasure func()
	// AccessLog records every page that shows a person's data (a ring, a user, the queue or audit
	// filtered by user); nil records none.
	AccessLog AccessLog
	// CaseCap is the most cases one analyst may hold claimed (DOPPEL_CASE_CAP); 0: no cap.
	CaseCap int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ReviewSLA is how long an open case may wait before the overview counts it overdue
	// (DefaultReviewSLA when 0).
	ReviewSLA time.Duration
}

// DefaultReviewSLA is the review SLA when Config.ReviewSLA is not set: a day, the default
// for DOPPEL_REVIEW_SLA.
const DefaultReviewSLA = 24 * time.Hour

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Console serves the pages.
type Console struct {
	cfg      Config
	log      *slog.Logger
	sessions *sessions
	throttle *analyst.Throttle
	sso      *sso
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New returns the console, ready to be mounted at Path.
func New(cfg Config) (*Console, error) {
	if cfg.Store == nil {
		return nil, errors.New("console: a store is required")
	}
	if cfg.Evidence != nil && cfg.EvidenceViews == nil {
		return nil, errors.New("console: evidence is shown only with EvidenceViews to record who saw it")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReviewSLA <= 0 {
		cfg.ReviewSLA = DefaultReviewSLA
	}
	if cfg.SignIn == nil {
		cfg.SignIn = noGuard{}
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	if cfg.SignInLimits == (analyst.Limits{}) {
		cfg.SignInLimits = analyst.DefaultLimits
	}
	c := &Console{cfg: cfg, log: cfg.Logger, sessions: &sessions{store: cfg.Store, keys: cfg.APIKeys, ttl: cfg.SessionTTL, now: cfg.Now}, pages: pages,
		mux: http.NewServeMux(), throttle: &analyst.Throttle{Store: cfg.Store, Limits: cfg.SignInLimits, Now: cfg.Now}}
	if cfg.OIDC != nil {
		if c.sso, err = newSSO(*cfg.OIDC); err != nil {
			return nil, err
		}
	}
	c.routes()
	return c, nil
}

// routes lists every page of the console in one place. A GET only reads; every POST changes
// something and needs the session's CSRF token (see requireSession).
func (c *Console) routes() {
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", cacheable(http.FileServerFS(static))))
	c.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	c.mux.HandleFunc("GET /console/login", c.handleLoginPage)
	c.mux.HandleFunc("POST /console/login", c.handleLogin)
	c.mux.HandleFunc("GET /console/sso", c.handleSSOStart)
	c.mux.HandleFunc("GET /console/sso/callback", c.handleSSOCallback)
	c.mux.Handle("POST /console/logout", c.requireSession(c.handleLogout, ""))
	c.mux.Handle("GET /console/{$}", c.requireSession(c.handleOverview, ""))
	c.mux.Handle("GET /console/queue", c.requireSession(c.handleQueue, ""))
	c.mux.Handle("GET /console/queue.csv", c.requireSession(c.handleQueueCSV, ""))
	c.mux.Handle("GET /console/audit.csv", c.requireSession(c.handleAuditCSV, ""))
	c.mux.Handle("GET /console/alerts", c.requireSession(c.handleAlerts, ""))
	c.mux.Handle("GET /console/cases/{caseId}", c.requireSession(c.handleCase, ""))
	c.mux.Handle("POST /console/cases/next", c.requireSession(c.handleNextCase, apikey.ScopeReview))
	c.mux.Handle("POST /console/cases/{caseId}/claim", c.requireSession(c.handleClaimCase, apikey.ScopeReview))
	c.mux.Handle("POST /console/cases/{caseId}/assign", c.requireSession(c.handleAssignCase, apikey.ScopeAssign))
	c.mux.Handle("POST /console/cases/{caseId}/notes", c.requireSession(c.handleCaseNote, apikey.ScopeReview))
	c.mux.Handle("POST /console/cases/{caseId}/snooze", c.requireSession(c.handleSnoozeCase, apikey.ScopeReview))
	c.mux.Handle("GET /console/rings/{ringId}", c.requireSession(c.handleRing, ""))
	c.mux.Handle("POST /console/rings/{ringId}/decision", c.requireSession(c.handleDecideRing, apikey.ScopeReview))
	c.mux.Handle("POST /console/reviews", c.requireSession(c.handleDecidePair, apikey.ScopeReview))
	c.mux.Handle("GET /console/users", c.requireSession(c.handleUsers, ""))
	c.mux.Handle("POST /console/users/erase", c.requireSession(c.handleErase, apikey.ScopeErase))
	c.mux.Handle("GET /console/audit", c.requireSession(c.handleAudit, ""))
	c.mux.Handle("GET /console/rings/{ringId}/members", c.requireSession(c.handleRingMembers, ""))
	c.mux.Handle("GET /console/evidence/faces/{handle}", c.requireSession(c.handleFace, ""))
	c.mux.Handle("GET /console/analysts", c.requireAdmin(c.handleAnalysts))
	c.mux.Handle("POST /console/analysts/{name}/disable", c.requireAdmin(c.handleDisableAnalyst))
}

// ServeHTTP serves the console with the headers every page carries: no framing, no sniffing, no
// referrer leaving the console, and a content policy that allows only the console's own assets.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

func cacheable(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=300")
		h.ServeHTTP(w, r)
	})
}
