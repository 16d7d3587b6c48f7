package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/apikey"
)

// keyNameContextKey holds the authenticated key's name in the Echo context.
const keyNameContextKey = "doppel.api_key_name"

// Headers of the callback endpoint.
const (
	// SignatureHeader carries the HMAC-SHA256 of timestamp + "." + the raw body, as hex, optionally
	// prefixed "sha256=" (see Sign). Deprecated: sign by the Standard Webhooks specification
	// (WebhookSignatureHeader), whose signature covers a delivery id as well.
	SignatureHeader = "X-Doppel-Signature"
	// TimestampHeader carries the Unix time in seconds at which the body was signed.
	TimestampHeader = "X-Doppel-Timestamp"
	// CallbackTokenHeader may carry the callback token instead of ?token=, out of access logs.
	CallbackTokenHeader = "X-Doppel-Callback-Token"
)

// maxSignatureAge is how far webhook-timestamp or X-Doppel-Timestamp may be from the server's
// clock, either way: a signed body captured on the way is useless after it (as Stripe and Slack do
// it, and as the Standard Webhooks libraries' tolerance is), and within it the delivery's id
// recognises a replay.
const maxSignatureAge = 5 * time.Minute

// requireScope authenticates the request's bearer key and checks that it grants scope: 429 when
// the address has failed too often, 401 when the key is missing or unknown, 403 when it is known
// but lacks the scope.
func (s *Server) requireScope(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := s.authFail.throttled(c); err != nil {
				return err
			}
			key, reason := s.authenticate(c.Request())
			if reason != "" {
				s.authFail.fail(c, reason)
				e := newError(http.StatusUnauthorized, codeUnauthorized,
					"send a valid API key as Authorization: Bearer <key>")
				e.header = map[string]string{"WWW-Authenticate": `Bearer realm="doppel"`}
				return e
			}
			if !key.HasScope(scope) {
				s.authFail.fail(c, authMissingScope)
				return newError(http.StatusForbidden, codeForbidden, "the API key %q lacks the %s scope", key.Name, scope)
			}
			c.Set(keyNameContextKey, key.Name)
			return next(c)
		}
	}
}

// authenticate finds the configured key whose SHA-256 matches the bearer token (see apikey.Match),
// or says why none does.
func (s *Server) authenticate(r *http.Request) (apikey.Key, string) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return apikey.Key{}, authMissingCredentials
	}
	key, found := apikey.Match(s.cfg.APIKeys, token)
	if !found {
		return apikey.Key{}, authInvalidAPIKey
	}
	return key, ""
}

// callbackCredentials authenticates a callback by its token (X-Doppel-Callback-Token, else
// ?token= unless that is refused), else by a Standard Webhooks signature, else by the deprecated
// X-Doppel-Signature, and says how; or it returns the failure's reason and message. body is read
// only when a signature needs it.
func (s *Server) callbackCredentials(c echo.Context, body func() ([]byte, error)) (auth callbackAuth, reason, message string, err error) {
	req := c.Request()
	_, inQuery := c.QueryParams()["token"]
	if inQuery && s.cfg.CallbackTokenHeaderOnly {
		// Refused whatever it holds, even beside a valid header: a token in the URL ends up in
		// access logs and proxies, which is what DOPPEL_CALLBACK_TOKEN_IN_QUERY=false is for.
		return auth, authTokenInQuery, "the callback token is not accepted in the query string here " +
			"(DOPPEL_CALLBACK_TOKEN_IN_QUERY=false): send it in the " + CallbackTokenHeader + " header", nil
	}
	if reason, message := checkSigningHeaders(req.Header); reason != "" {
		return auth, reason, message, nil
	}
	token := req.Header.Get(CallbackTokenHeader)
	if token == "" {
		token = c.QueryParam("token")
	}
	if tokenMatches(token, s.cfg.CallbackToken) {
		return callbackAuth{method: callbackAuthToken}, "", "", nil
	}
	if req.Header.Get(WebhookSignatureHeader) != "" && len(s.signers) > 0 {
		return s.verifyStandardWebhook(req, body)
	}
	signature := req.Header.Get(SignatureHeader)
	if signature == "" || s.cfg.CallbackHMACSecret == "" {
		reason := authInvalidToken
		if token == "" {
			reason = authMissingCredentials
		}
		return auth, reason, s.callbackCredentialsHelp(), nil
	}
	ts := strings.TrimSpace(req.Header.Get(TimestampHeader))
	signedAt, reason, message := checkTimestamp(TimestampHeader, ts)
	if reason != "" {
		return auth, reason, message, nil
	}
	raw, err := body()
	if err != nil {
		return auth, "", "", err
	}
	given, ok := signatureMatches(signature, ts, raw, s.cfg.CallbackHMACSecret)
	if !ok {
		return auth, authInvalidSignature, SignatureHeader + " does not match " + TimestampHeader + ` + "." + the body`, nil
	}
	// Replays are recognised by the MAC itself, decoded, so that writing it with or without
	// "sha256=" or in upper case does not make a new delivery.
	return callbackAuth{method: callbackAuthDoppelSignature, deliveryScheme: deliveryDoppelSignature,
		deliveryID: hex.EncodeToString(given), signedAt: signedAt, signed: true, legacy: true}, "", "", nil
}

// callbackCredentialsHelp says which credentials this deployment accepts.
func (s *Server) callbackCredentialsHelp() string {
	var ways []string
	if s.cfg.CallbackToken != "" {
		if s.cfg.CallbackTokenHeaderOnly {
			ways = append(ways, "send the callback token in "+CallbackTokenHeader)
		} else {
			ways = append(ways, "add the callback token to the callback URL (?token=...) or send it in "+CallbackTokenHeader)
		}
	}
	if len(s.signers) > 0 {
		ways = append(ways, "sign it by the Standard Webhooks specification ("+WebhookIDHeader+", "+
			WebhookTimestampHeader+", "+WebhookSignatureHeader+")")
	}
	if s.cfg.CallbackHMACSecret != "" {
		ways = append(ways, "sign the body ("+SignatureHeader+" with "+TimestampHeader+", deprecated)")
	}
	return strings.Join(ways, ", or ")
}

// tokenMatches compares the given callback token with the configured token in constant time (on their
// SHA-256, so the comparison takes as long whatever the lengths).
func tokenMatches(given, want string) bool {
	if want == "" || given == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// signatureMatches checks an X-Doppel-Signature header against the HMAC-SHA256 of
// timestamp + "." + body, and returns the MAC it holds.
func signatureMatches(header, timestamp string, body []byte, secret string) ([]byte, bool) {
	if secret == "" || header == "" {
		return nil, false
	}
	header = strings.TrimPrefix(strings.TrimSpace(header), "sha256=")
	given, err := hex.DecodeString(header)
	if err != nil {
		return nil, false
	}
	return given, hmac.Equal(given, mac(secret, timestamp, body))
}

// Sign returns the X-Doppel-Signature value for body sent with X-Doppel-Timestamp timestamp (Unix
// seconds, as written in the header), under secret, for producers and tests.
func Sign(secret, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// keyName returns the name of the key that authenticated the request.
func keyName(c echo.Context) string {
	name, _ := c.Get(keyNameContextKey).(string)
	return name
}

// checkSigningHeaders refuses (401, with the failure's reason and message) a request with a
// signing header that is present and breaks the format the OpenAPI description gives it (a
// timestamp that is not digits, a webhook-id over 256 bytes), whatever else authenticates it: a
// request that carries signing headers says it is signed, and malformed ones are a producer's bug
// to report, not to ignore because a token came along. Whether a well-formed one is fresh and
// verifies is decided where it is used.
func checkSigningHeaders(h http.Header) (reason, message string) {
	for _, name := range []string{WebhookTimestampHeader, TimestampHeader} {
		if v, ok := h[http.CanonicalHeaderKey(name)]; ok && !allDigits(strings.TrimSpace(v[0])) {
			return authInvalidTimestamp, "a signed callback needs " + name + ": the Unix time in seconds it was signed at"
		}
	}
	if v, ok := h[http.CanonicalHeaderKey(WebhookIDHeader)]; ok && len(v[0]) > maxWebhookIDLen {
		return authInvalidWebhookID, fmt.Sprintf("%s must be 1 to %d visible ASCII characters", WebhookIDHeader, maxWebhookIDLen)
	}
	return "", ""
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
