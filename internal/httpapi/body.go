package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// maxJSONBody bounds the bodies of the review and replay endpoints.
const maxJSONBody = 64 << 10

// decodeJSON reads a bounded JSON object into v, rejecting unknown fields, wrong types and trailing
// data with a 400 that names the field.
func decodeJSON(req *http.Request, v any) error {
	body, err := readBody(req, maxJSONBody)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return invalid("", "the body must be a JSON object")
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
			return invalid(field, "unknown field %q", truncate(field, 64))
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
