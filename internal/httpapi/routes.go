package httpapi

import (
	"strings"

	"github.com/labstack/echo/v4"
)

// routes lists every route the server answers, in one place. openapi.json describes each of them;
// TestTheSpecListsEveryRoute keeps the two in step.
func (s *Server) routes() {
	s.echo.GET("/healthz", s.handleHealthz)
	s.echo.GET("/readyz", s.handleReadyz)
	if s.cfg.Metrics != nil {
		s.echo.GET("/metrics", echo.WrapHandler(s.cfg.Metrics))
	}
	s.echo.GET("/openapi.json", s.handleOpenAPI)

	// The vendor's callbacks: authenticated by ?token= or a body signature, not by API key.
	s.echo.POST("/v1/callbacks/advance", s.handleCallback)

	// The risk team's API: API keys with scopes.
	read, review := s.requireScope(ScopeRead), s.requireScope(ScopeReview)
	s.echo.GET("/v1/users/:userId/duplicates", s.handleUserDuplicates, read)
	s.echo.GET("/v1/users/:userId/cluster", s.handleUserCluster, read)
	s.echo.GET("/v1/checks/:signatureId", s.handleCheck, read)
	s.echo.GET("/v1/alerts", s.handleAlerts, read)
	s.echo.GET("/v1/reconciliation", s.handleReconciliation, read)
	s.echo.POST("/v1/reviews", s.handleReview, review)
	s.echo.POST("/v1/replay", s.handleReplay, review)
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
