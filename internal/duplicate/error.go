package duplicate

import (
	"errors"
	"fmt"
)

// Error codes of the domain's one error type. The HTTP API maps each to a status in one place.
const (
	// ENOTFOUND means the thing asked for does not exist.
	ENOTFOUND = "not_found"
	// EINVALID means the input breaks a rule; Field names the offending input.
	EINVALID = "invalid_input"
)

// Error is an error a caller can act on: a code, a message safe to show, and for EINVALID the field.
type Error struct {
	Code    string
	Message string
	Field   string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID *Error about field.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err's *Error, or "" when err is not one.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
