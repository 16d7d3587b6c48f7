package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// ConsolePath is where the review console is served, beside the API, when Config.Console is set.
const ConsolePath = "/console"

// MatchAPIKey finds the key among keys whose SHA-256 matches token. Every key is compared, in
// constant time, whatever matched, so timing tells nothing about the keys.
func MatchAPIKey(keys []APIKey, token string) (APIKey, bool) {
	if token == "" {
		return APIKey{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, k := range keys {
		if subtle.ConstantTimeCompare(sum[:], k.SHA256[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return APIKey{}, false
	}
	return keys[found], true
}

// root sends /console and everything under it to the console, the rest to the API. The console is
// a plain http.Handler of its own, so the API's routes (and the OpenAPI document) stay the API's.
func (s *Server) root() http.Handler {
	console := s.cfg.Console
	if console == nil {
		return s.echo
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ConsolePath || strings.HasPrefix(r.URL.Path, ConsolePath+"/") {
			console.ServeHTTP(w, r)
			return
		}
		s.echo.ServeHTTP(w, r)
	})
}
