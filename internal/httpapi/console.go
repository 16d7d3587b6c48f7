package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

// MountConsole serves h at path and under it, on the API's listener: the review console, whose
// path (console.Path) the service passes in, since the console owns its routes and the API does
// not import it. Call it before Serve.
func (s *Server) MountConsole(path string, h http.Handler) { s.consolePath, s.console = path, h }

// inConsole reports whether path is the mounted console's or under it.
func (s *Server) inConsole(path string) bool {
	return s.console != nil && (path == s.consolePath || strings.HasPrefix(path, s.consolePath+"/"))
}

// root sends the console's path and everything under it to the console, the rest to the API. The console is
// a plain http.Handler of its own, so the API's routes (and the OpenAPI document) stay the API's.
func (s *Server) root() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inConsole := s.inConsole(r.URL.Path)
		securityHeaders(w.Header(), inConsole && strings.HasPrefix(r.URL.Path, s.consolePath+"/static/"), s.cfg.HSTS)
		if inConsole {
			// The console reads its query itself: held to the API's strict parsing (see
			// rejectUnknownQuery), so a filter is never dropped in silence there either.
			if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
				http.Error(w, "400 Bad Request: the query string does not parse ("+queryProblem(err)+
					"): separate parameters with & and percent-encode ; % and +", http.StatusBadRequest)
				return
			}
			s.console.ServeHTTP(w, r)
			return
		}
		s.echo.ServeHTTP(w, r)
	})
}

// securityHeaders are sent with every answer of the public listener. No answer is stored by a
// browser or a proxy (they hold personal data: ids, rings, decisions), except the console's static
// files (consoleStatic); nothing is sniffed into another content type; and behind TLS
// (DOPPEL_PUBLIC_URL https) browsers are told to use nothing else for two years (HSTS, not for
// subdomains: they may be another team's).
func securityHeaders(h http.Header, consoleStatic, hsts bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	if !consoleStatic {
		h.Set("Cache-Control", "no-store")
	}
	if hsts {
		h.Set("Strict-Transport-Security", "max-age=63072000")
	}
}

// SignInGuard lets the console's sign-in share the API's handling of failed authentication: the
// same per-address throttle (DOPPEL_AUTH_FAILURES_PER_MINUTE), metric and rate-limited log. It
// satisfies console.SignInGuard, which the service passes it as.
type SignInGuard struct {
	a *authFailures
	// route is the sign-in's route label in doppel_http_auth_failures_total (console.SignInPath).
	route string
}

// SignInGuard returns the server's guard for a sign-in form at route, which labels its failures
// in doppel_http_auth_failures_total as an API route's are labelled.
func (s *Server) SignInGuard(route string) SignInGuard {
	return SignInGuard{a: s.authFail, route: route}
}

// Blocked reports whether r's address has used its failed attempts up, and the seconds until it
// may try again.
func (g SignInGuard) Blocked(r *http.Request) (retryAfter string, blocked bool) {
	if g.a == nil {
		return "", false
	}
	return g.a.blocked(g.route, r)
}

// Failed records a sign-in with an unknown key against r's address.
func (g SignInGuard) Failed(r *http.Request) {
	if g.a != nil {
		g.a.failed(g.route, r, authInvalidAPIKey)
	}
}
