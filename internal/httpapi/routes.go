package httpapi

import "github.com/labstack/echo/v4"

// routes lists every route the server answers, in one place.
func (s *Server) routes() {
	s.echo.GET("/healthz", s.handleHealthz)
	s.echo.GET("/readyz", s.handleReadyz)
	if s.cfg.Metrics != nil {
		s.echo.GET("/metrics", echo.WrapHandler(s.cfg.Metrics))
	}
}
