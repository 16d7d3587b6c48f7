package httpapi

import (
	"net/http"
	"net/url"
	"strings"
)

// ConsolePath is where the review console is served, beside the API, when Config.Console is set.
const ConsolePath = "/console"

// MountConsole serves h at ConsolePath and under it, on the API's listener. Call it before Serve.
func (s *Server) MountConsole(h http.Handler) { s.console = h }

// root sends /console and everything under it to the console, the rest to the API. The console is
// a plain http.Handler of its own, so the API's routes (and the OpenAPI document) stay the API's.
func (s *Server) root() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header(), r.URL.Path, s.cfg.HSTS)
		if s.console != nil && (r.URL.Path == ConsolePath || strings.HasPrefix(r.URL.Path, ConsolePath+"/")) {
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
// files; nothing is sniffed into another content type; and behind TLS (DOPPEL_PUBLIC_URL https)
// browsers are told to use nothing else for two years (HSTS, not for subdomains: they may be
// another team's).
func securityHeaders(h http.Header, path string, hsts bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	if !strings.HasPrefix(path, ConsolePath+"/static/") {
		h.Set("Cache-Control", "no-store")
	}
	if hsts {
		h.Set("Strict-Transport-Security", "max-age=63072000")
	}
}

// SignInGuard lets the console's sign-in share the API's handling of failed authentication: the
// same per-address throttle (DOPPEL_AUTH_FAILURES_PER_MINUTE), metric and rate-limited log.
type SignInGuard struct{ a *authFailures }

// SignInGuard returns the server's guard for sign-in forms.
func (s *Server) SignInGuard() SignInGuard { return SignInGuard{a: s.authFail} }

// signInRoute is the route label of the console's sign-in in doppel_http_auth_failures_total.
const signInRoute = ConsolePath + "/login"

// Blocked reports whether r's address has used its failed attempts up, and the seconds until it
// may try again.
func (g SignInGuard) Blocked(r *http.Request) (retryAfter string, blocked bool) {
	if g.a == nil {
		return "", false
	}
	return g.a.blocked(signInRoute, r)
}

// Failed records a sign-in with an unknown key against r's address.
func (g SignInGuard) Failed(r *http.Request) {
	if g.a != nil {
		g.a.failed(signInRoute, r, authInvalidAPIKey)
	}
}
