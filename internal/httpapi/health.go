package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/readiness"
)

// handleHealthz answers 200 while the process lives.
func handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

type readinessStatus struct {
	Status string `json:"status"`
}

type readinessDetail struct {
	Status    string            `json:"status"`
	CheckedAt *time.Time        `json:"checkedAt"`
	Checks    map[string]string `json:"checks"`
}

// report reads the cached readiness (never a dependency: see package readiness).
func report(r Readiness) readiness.Report {
	if r == nil {
		return readiness.Report{Ready: true, Serving: true, Checks: map[string]string{}}
	}
	return r.Report()
}

func readyStatus(rep readiness.Report) (int, string) {
	if rep.Ready {
		return http.StatusOK, "ready"
	}
	return http.StatusServiceUnavailable, "not_ready"
}

// handleReadyz answers 200 when this instance can serve HTTP (the checks marked Serving: the
// database), else 503: status only, because the reasons (database host and user, vendor codes) are
// for operators, on the admin listener. A stalled partition or a vendor outage is not a reason to
// take the API and the callback endpoint out of a load balancer: they are the admin /readyz's, a
// metric, a log line and an alert rule.
func (s *Server) handleReadyz(c echo.Context) error {
	rep := report(s.cfg.Readiness)
	rep.Ready = rep.Serving
	code, status := readyStatus(rep)
	return c.JSON(code, readinessStatus{Status: status})
}

// handleReadyzDetail answers like handleReadyz, with each check's reason and when they ran.
func (a *Admin) handleReadyzDetail(c echo.Context) error {
	rep := report(a.cfg.Readiness)
	code, status := readyStatus(rep)
	out := readinessDetail{Status: status, Checks: rep.Checks}
	if !rep.CheckedAt.IsZero() {
		t := rep.CheckedAt.UTC()
		out.CheckedAt = &t
	}
	return c.JSON(code, out)
}
