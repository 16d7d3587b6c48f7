package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// handleHealthz answers 200 while the process lives.
func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// handleReadyz answers 200 when every dependency is ready, else 503 with each one's reason.
func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	out := readiness{Status: "ready", Checks: make(map[string]string, len(s.cfg.Readiness))}
	status := http.StatusOK
	for _, rc := range s.cfg.Readiness {
		if err := rc.Check(ctx); err != nil {
			out.Checks[rc.Name] = err.Error()
			if !rc.Informational {
				out.Status = "not_ready"
				status = http.StatusServiceUnavailable
			}
			continue
		}
		out.Checks[rc.Name] = "ok"
	}
	return c.JSON(status, out)
}
