package advance

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Codes the vendor documents for the calls this client makes. Callers branch on these, never on
// the message, which the vendor changes without notice.
const (
	CodeSuccess             = "SUCCESS"
	CodeParameterError      = "PARAMETER_ERROR"
	CodeEmptyParameterError = "EMPTY_PARAMETER_ERROR"
	CodeSignatureNotExist   = "SIGNATURE_NOT_EXIST"
	CodeClientError         = "CLIENT_ERROR"
	CodeError               = "ERROR"
	CodeRetryLater          = "RETRY_LATER"
	CodeServiceBusy         = "SERVICE_BUSY"
	CodeIAMFailed           = "IAM_FAILED"
	CodeInsufficientBalance = "INSUFFICIENT_BALANCE"
	CodeOverQueryLimit      = "OVER_QUERY_LIMIT"
	CodeAccountDisabled     = "ACCOUNT_DISABLED"
	CodeServiceDisabled     = "SERVICE_DISABLED"
	CodeAccessDenied        = "ACCESS_DENIED"
)

// Codes the client itself assigns when there is no vendor code to report.
const (
	// CodeTimeout means the call ran out of time (Config.Timeout or the caller's deadline).
	CodeTimeout = "TIMEOUT"
	// CodeNetwork means the connection failed: refused, reset, EOF, DNS.
	CodeNetwork = "NETWORK"
	// CodeCanceled means the caller canceled the context before an answer arrived.
	CodeCanceled = "CANCELED"
	// CodeBadResponse means a 2xx answer that is not a vendor envelope, or a SUCCESS whose data
	// does not have the documented shape.
	CodeBadResponse = "BAD_RESPONSE"
)

// Endpoint names, as used in Error.Op and passed to Config.OnCall.
const (
	EndpointGenerateToken = "generate-token"
	EndpointFaceSearch    = "face-search"
	EndpointGetResult     = "get-result"
	EndpointEnroll        = "face-search-enroll"
	EndpointClearData     = "clear-data"
)

// maxRetryAfter caps a Retry-After hint so that a bad header cannot park a worker for hours.
const maxRetryAfter = 5 * time.Minute

// Kind says what a caller should do about an error.
type Kind int

// The zero Kind is KindTransient on purpose: an error nobody classified is retried, which is
// the safe side for an event that must not be lost.
const (
	// KindTransient errors may succeed if retried with backoff.
	KindTransient Kind = iota
	// KindRateLimited errors are transient, and the caller should slow down (see RetryAfter).
	KindRateLimited
	// KindPermanent errors fail the same way every time for this input: do not retry.
	KindPermanent
	// KindAccount errors concern the account or configuration, not the input: stop calling,
	// alert, and resume when the problem is cleared.
	KindAccount
)

// String returns the kind's name, for logs and metrics.
func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindRateLimited:
		return "rate_limited"
	case KindPermanent:
		return "permanent"
	case KindAccount:
		return "account"
	default:
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Classify maps a vendor code to the Kind of error it denotes. CodeSuccess has no meaningful kind
// and is reported as KindTransient like any unknown code.
func Classify(code string) Kind {
	switch code {
	case CodeParameterError, CodeEmptyParameterError, CodeSignatureNotExist, CodeClientError:
		return KindPermanent
	case CodeError, CodeRetryLater, CodeTimeout, CodeNetwork, CodeCanceled, CodeBadResponse:
		return KindTransient
	case CodeServiceBusy:
		return KindRateLimited
	case CodeIAMFailed, CodeInsufficientBalance, CodeOverQueryLimit, CodeAccountDisabled,
		CodeServiceDisabled, CodeAccessDenied:
		// The client already retried IAM_FAILED once with a fresh token before reporting it.
		return KindAccount
	default:
		// An unknown code is treated as transient: dropping the event would be the worse mistake,
		// and a flood of retries is the circuit breaker's job to stop.
		return KindTransient
	}
}

// classifyHTTP maps an HTTP status that came without a vendor envelope to a code and Kind.
func classifyHTTP(status int) (string, Kind) {
	code := "HTTP_" + strconv.Itoa(status)
	switch {
	case status == http.StatusTooManyRequests:
		return code, KindRateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden ||
		status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		// Credentials, authorisation or a wrong base URL: a configuration fault, not the input.
		// Dead-lettering every event for it would be wrong; pausing until it is fixed is right.
		return code, KindAccount
	case status == http.StatusRequestTimeout:
		return code, KindTransient
	case status >= 500:
		return code, KindTransient
	case status >= 400:
		return code, KindPermanent
	default:
		// A 1xx/2xx/3xx that is not an envelope: most likely a proxy in the way.
		return CodeBadResponse, KindTransient
	}
}

// Error is a failed vendor call. It never holds the access key, the secret key or the token.
type Error struct {
	// Op is the endpoint: EndpointGenerateToken, EndpointFaceSearch or EndpointGetResult.
	Op string
	// Code is the vendor code, "HTTP_<status>" for a non-envelope HTTP error, or one of
	// CodeTimeout, CodeNetwork, CodeCanceled, CodeBadResponse.
	Code string
	// Message is the vendor's explanation, for people only.
	Message string
	// TransactionID is the vendor's request id, to quote to their support.
	TransactionID string
	// HTTPStatus is the HTTP status, or 0 when no answer arrived.
	HTTPStatus int
	// RetryAfter is the vendor's Retry-After hint, capped at 5 minutes; 0 when absent.
	RetryAfter time.Duration
	// Kind says what the caller should do.
	Kind Kind
	// Err is the underlying cause for network errors, timeouts and cancellation.
	Err error
}

// Error describes the failure without any credential.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("advance ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	var details []string
	if e.TransactionID != "" {
		details = append(details, "transaction "+e.TransactionID)
	}
	if e.HTTPStatus != 0 {
		details = append(details, "http "+strconv.Itoa(e.HTTPStatus))
	}
	if e.RetryAfter > 0 {
		details = append(details, "retry after "+e.RetryAfter.String())
	}
	if len(details) > 0 {
		b.WriteString(" (")
		b.WriteString(strings.Join(details, ", "))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the underlying cause, so errors.Is(err, context.DeadlineExceeded) works.
func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether a retry with backoff may succeed; rate-limited errors are transient.
func (e *Error) Transient() bool { return e.Kind == KindTransient || e.Kind == KindRateLimited }

// RateLimited reports whether the vendor asked the caller to slow down.
func (e *Error) RateLimited() bool { return e.Kind == KindRateLimited }

// Permanent reports whether the call fails the same way for this input every time.
func (e *Error) Permanent() bool { return e.Kind == KindPermanent }

// AccountLevel reports whether the account or configuration is at fault, not the input.
func (e *Error) AccountLevel() bool { return e.Kind == KindAccount }

// parseRetryAfter reads a Retry-After value: "10s" or "1.5s" (Go duration, as the vendor
// writes it), "10" or "1.5" (seconds), or an HTTP date. Anything else, or a time in the past,
// gives 0. The result is capped at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs != secs || secs <= 0 { // NaN or not positive
			return 0
		}
		if secs >= maxRetryAfter.Seconds() {
			return maxRetryAfter
		}
		d = time.Duration(secs * float64(time.Second))
	} else if pd, err := time.ParseDuration(v); err == nil {
		d = pd
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}
