package httpapi

import (
	"time"

	"github.com/labstack/echo/v4"
)

// requestMetrics tells onRequest about every answered request: the route pattern it matched (""
// when none did, so that scanners probing random paths add no series), the method, the status
// sent and how long it took. It runs outside Recover so that a panic counts as the 500 it becomes.
func requestMetrics(onRequest func(route, method string, status int, d time.Duration)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if onRequest == nil {
			return next
		}
		return func(c echo.Context) error {
			start := time.Now()
			if err := next(c); err != nil {
				// The status is only known once the error handler has answered: let it answer now.
				c.Error(err)
			}
			route := c.Path()
			if c.Response().Status == 404 && len(c.ParamNames()) == 0 && route != c.Request().URL.Path {
				route = ""
			}
			onRequest(route, c.Request().Method, c.Response().Status, time.Since(start))
			return nil
		}
	}
}
