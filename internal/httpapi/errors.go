package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Error is the one JSON shape of every error answer. Code is a stable snake_case word; Field names
// the offending input of a 400 (a JSON field, a query parameter or a path parameter).
type Error struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error codes.
const (
	codeInvalidInput         = "invalid_input"
	codeUnauthorized         = "unauthorized"
	codeForbidden            = "forbidden"
	codeNotFound             = "not_found"
	codeMethodNotAllowed     = "method_not_allowed"
	codeTooLarge             = "payload_too_large"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeTooManyRequests      = "too_many_requests"
	codeQuotaExceeded        = "quota_exceeded"
	codeHeaderTooLarge       = "header_too_large"
	codeNotImplemented       = "not_implemented"
	codeUnavailable          = "unavailable"
	codeNotConfigured        = "not_configured"
	codePublishFailed        = "publish_failed"
	codeDeliveryInFlight     = "delivery_in_flight"
	codeInternal             = "internal"
)

// caseConflicts are the domain's codes of case work answered 409 under their own name.
var caseConflicts = map[string]bool{duplicate.ECASECAP: true, duplicate.ECASECLAIMED: true,
	duplicate.ECASECLOSED: true, duplicate.ENOCASE: true}

// apiError is an error answer a handler returns; errorHandler writes it.
type apiError struct {
	status int
	body   Error
	// header is set on the response (e.g. WWW-Authenticate).
	header map[string]string
}

func (e *apiError) Error() string { return e.body.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, body: Error{Error: code, Message: fmt.Sprintf(format, args...)}}
}

func invalid(field, format string, args ...any) *apiError {
	e := newError(http.StatusBadRequest, codeInvalidInput, format, args...)
	e.body.Field = field
	return e
}

// statusCodes maps Echo's and net/http's own errors (unknown route, wrong method, unparseable
// request, ...) to a code.
var statusCodes = map[int]string{
	http.StatusBadRequest:                  codeInvalidInput,
	http.StatusUnauthorized:                codeUnauthorized,
	http.StatusForbidden:                   codeForbidden,
	http.StatusNotFound:                    codeNotFound,
	http.StatusMethodNotAllowed:            codeMethodNotAllowed,
	http.StatusRequestEntityTooLarge:       codeTooLarge,
	http.StatusUnsupportedMediaType:        codeUnsupportedMediaType,
	http.StatusTooManyRequests:             codeTooManyRequests,
	http.StatusRequestHeaderFieldsTooLarge: codeHeaderTooLarge,
	http.StatusNotImplemented:              codeNotImplemented,
	http.StatusServiceUnavailable:          codeUnavailable,
}

// errorHandler writes every error in the one shape. The domain's error codes map to statuses here
// and nowhere else; anything unexpected is logged and answered 500 without details.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		status := http.StatusInternalServerError
		body := Error{Error: codeInternal, Message: "internal error"}
		var ae *apiError
		var de *duplicate.Error
		var he *echo.HTTPError
		switch {
		case errors.As(err, &ae):
			status, body = ae.status, ae.body
			for k, v := range ae.header {
				c.Response().Header().Set(k, v)
			}
		case errors.As(err, &de) && de.Code == duplicate.ENOTFOUND:
			status, body = http.StatusNotFound, Error{Error: codeNotFound, Message: de.Message, Field: de.Field}
		case errors.As(err, &de) && caseConflicts[de.Code]:
			status, body = http.StatusConflict, Error{Error: de.Code, Message: de.Message}
		case errors.As(err, &de) && de.Code == duplicate.EINVALID:
			status, body = http.StatusBadRequest, Error{Error: codeInvalidInput, Message: de.Message, Field: de.Field}
		case errors.As(err, &he):
			status = he.Code
			body.Error = statusCodes[status]
			if body.Error == "" {
				body.Error = codeInternal
			}
			if msg, ok := he.Message.(string); ok {
				body.Message = msg
			} else {
				body.Message = http.StatusText(status)
			}
			if status >= 500 {
				log.Error("http handler", "path", c.Path(), "error", err)
			}
		case errors.As(err, new(*net.OpError)):
			// The database (or another dependency) cannot be reached: a reason to retry, not a bug.
			log.Warn("http handler: dependency unreachable", "path", c.Path(), "error", err)
			status, body = http.StatusServiceUnavailable, Error{Error: codeUnavailable,
				Message: "a dependency of this service cannot be reached; retry later"}
			c.Response().Header().Set("Retry-After", "5")
		default:
			// Internal details are logged, never returned.
			log.Error("http handler", "path", c.Path(), "method", c.Request().Method, "error", err)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		_ = c.JSON(status, body)
	}
}

// invalidID is the 400 for an identifier (userId, signatureId, reviewer) that breaks the identifier
// rule: it names the field and what is wrong, the character at fault included (duplicate.IDProblem).
func invalidID(field, value string, maxLen int) *apiError {
	return invalid(field, "%s must be 1 to %d visible characters (no control, format, bidi or zero-width ones): %s",
		field, maxLen, duplicate.IDProblem(value, maxLen))
}
