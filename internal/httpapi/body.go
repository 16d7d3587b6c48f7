package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// maxJSONBody bounds the bodies of the review endpoint (and is the least bound of the others).
const maxJSONBody = 64 << 10

// requireJSON answers 415 unless the request says its body is JSON: a body sent as text/plain or a
// form was not meant for this API (and is what a cross-site form post would send).
func requireJSON(req *http.Request) error {
	mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return newError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
			"send the body as JSON with Content-Type: application/json")
	}
	return nil
}

// decodeJSON reads a JSON object of at most maxBytes into v, rejecting another Content-Type (415),
// invalid UTF-8, unknown fields, wrong types and trailing data with a 400 that names the field.
func decodeJSON(req *http.Request, v any, maxBytes int) error {
	if err := requireJSON(req); err != nil {
		return err
	}
	body, err := readBody(req, maxBytes)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("", "the body must be a JSON object")
	}
	// encoding/json would replace invalid bytes by U+FFFD: an id nobody sent.
	if !utf8.Valid(body) {
		return invalid("", "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &typeErr):
			field := typeErr.Field
			if field == "" {
				return invalid("", "the body must be a JSON object")
			}
			return invalid(field, "%s must be a %s", field, duplicate.JSONTypeName(typeErr.Type))
		case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
			return invalid("", "the body is not valid JSON")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(field, "unknown field %q", clip.Ellipsis(field, 64))
		default:
			return invalid("", "the body is not a valid JSON object")
		}
	}
	if dec.More() {
		return invalid("", "the body must hold a single JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("", "the body must hold a single JSON object")
	}
	return nil
}
