package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Scopes an API key can grant.
const (
	// ScopeRead allows the query endpoints.
	ScopeRead = "read"
	// ScopeReview allows recording reviews and re-running face search.
	ScopeReview = "review"
)

// keyNameContextKey holds the authenticated key's name in the Echo context.
const keyNameContextKey = "doppel.api_key_name"

// SignatureHeader carries an HMAC-SHA256 of the raw callback body, as hex, optionally prefixed
// "sha256=".
const SignatureHeader = "X-Doppel-Signature"

// requireScope authenticates the request's bearer key and checks that it grants scope: 401 when
// the key is missing or unknown, 403 when it is known but lacks the scope.
func (s *Server) requireScope(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key, ok := s.authenticate(c.Request())
			if !ok {
				e := newError(http.StatusUnauthorized, codeUnauthorized,
					"send a valid API key as Authorization: Bearer <key>")
				e.header = map[string]string{"WWW-Authenticate": `Bearer realm="doppel"`}
				return e
			}
			if !slices.Contains(key.Scopes, scope) {
				return newError(http.StatusForbidden, codeForbidden, "the API key %q lacks the %s scope", key.Name, scope)
			}
			c.Set(keyNameContextKey, key.Name)
			return next(c)
		}
	}
}

// authenticate finds the configured key whose SHA-256 matches the bearer token.
func (s *Server) authenticate(r *http.Request) (APIKey, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return APIKey{}, false
	}
	return MatchAPIKey(s.cfg.APIKeys, strings.TrimSpace(token))
}

// tokenMatches compares the ?token= value with the configured token in constant time (on their
// SHA-256, so the comparison takes as long whatever the lengths).
func tokenMatches(given, want string) bool {
	if want == "" || given == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// signatureMatches checks an X-Doppel-Signature header against the HMAC-SHA256 of body.
func signatureMatches(header string, body []byte, secret string) bool {
	if secret == "" || header == "" {
		return false
	}
	header = strings.TrimPrefix(strings.TrimSpace(header), "sha256=")
	given, err := hex.DecodeString(header)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(given, mac.Sum(nil))
}

// Sign returns the X-Doppel-Signature value for body under secret, for producers and tests.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// keyName returns the name of the key that authenticated the request.
func keyName(c echo.Context) string {
	name, _ := c.Get(keyNameContextKey).(string)
	return name
}
