package httpapi

// routes lists every route the server answers, in one place.
func (s *Server) routes() {
	s.echo.GET("/healthz", s.handleHealthz)
	s.echo.GET("/readyz", s.handleReadyz)
}
