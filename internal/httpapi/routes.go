package httpapi

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/apikey"
)

// routes lists every route the public listener answers, in one place. openapi.json describes each
// of them; TestTheSpecListsEveryRoute keeps the two in step.
func (s *Server) routes() {
	s.echo.Use(s.rejectUnknownQuery())
	get(s.echo, "/healthz", handleHealthz)
	get(s.echo, "/readyz", s.handleReadyz)
	get(s.echo, "/openapi.json", s.handleOpenAPI)

	// The vendor's callbacks: authenticated by the callback token or a signature, not by API key.
	s.echo.POST("/v1/callbacks/advance", s.handleCallback)
	s.echo.POST("/v1/callbacks/advance/:region", s.handleCallback)

	// The risk team's API: API keys with scopes.
	read, review, replay := s.requireScope(apikey.ScopeRead), s.requireScope(apikey.ScopeReview), s.requireScope(apikey.ScopeReplay)
	get(s.echo, "/v1/users/:userId/duplicates", s.handleUserDuplicates, read)
	get(s.echo, "/v1/users/:userId/cluster", s.handleUserCluster, read)
	get(s.echo, "/v1/checks/:signatureId", s.handleCheck, read)
	get(s.echo, "/v1/alerts", s.handleAlerts, read)
	get(s.echo, "/v1/alerts/:alertId", s.handleAlert, read)
	get(s.echo, "/v1/rings", s.handleRings, read)
	get(s.echo, "/v1/rings/:ringId", s.handleRing, read)
	get(s.echo, "/v1/reviews", s.handleReviews, read)
	get(s.echo, "/v1/reconciliation", s.handleReconciliation, read)
	s.echo.POST("/v1/reviews", s.handleReview, review)
	s.echo.POST("/v1/replay", s.handleReplay, replay)
	// Case work: the queue is read with read; claiming, notes and snoozing are review; giving a
	// case to someone else is assign (a lead's).
	get(s.echo, "/v1/cases", s.handleCases, read)
	get(s.echo, "/v1/cases/:caseId", s.handleCase, read)
	s.echo.POST("/v1/cases/:caseId/claim", s.handleClaimCase, review)
	s.echo.POST("/v1/cases/:caseId/assign", s.handleAssignCase, s.requireScope(apikey.ScopeAssign))
	s.echo.POST("/v1/cases/:caseId/notes", s.handleCaseNote, review)
	s.echo.POST("/v1/cases/:caseId/snooze", s.handleSnoozeCase, review)
	// The privacy officer's routes (scope erase, which no other scope implies).
	erase := s.requireScope(apikey.ScopeErase)
	get(s.echo, "/v1/access-log", s.handleAccessLog, erase)
	get(s.echo, "/v1/users/:userId/export", s.handleExport, erase)
	s.echo.POST("/v1/erasures", s.handleErasure, erase)
	get(s.echo, "/v1/erasures/:erasureId", s.handleGetErasure, erase)
	get(s.echo, "/v1/users/:userId/legal-hold", s.handleLegalHold, read)
}

// routes lists every route of the admin listener.
func (a *Admin) routes() {
	get(a.echo, "/healthz", handleHealthz)
	get(a.echo, "/readyz", a.handleReadyzDetail)
	if a.cfg.Metrics != nil {
		get(a.echo, "/metrics", echo.WrapHandler(a.cfg.Metrics))
	}
	// pprof.Index serves every named profile (heap, goroutine, ...) under its prefix.
	get(a.echo, "/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	get(a.echo, "/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	get(a.echo, "/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	a.echo.Match([]string{http.MethodGet, http.MethodHead, http.MethodPost}, "/debug/pprof/symbol",
		echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	get(a.echo, "/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
}

// get registers a GET route that answers HEAD too, as HTTP expects of every GET.
func get(e *echo.Echo, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	e.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
}

// openAPIPath turns Echo's /users/:userId into OpenAPI's /users/{userId}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, ":") {
			parts[i] = "{" + part[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}
