package duplicate

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types the vendor sends in its callback body.
const (
	// EventTypeCompleted means the whole verification finished: the only type Doppel searches for.
	EventTypeCompleted = "COMPLETED"
	// EventTypeSubmitCompleted means the user's submission finished; the verdict may not be final.
	EventTypeSubmitCompleted = "SUBMIT_COMPLETED"
)

// Bounds on identifiers. The vendor's ids are short hex strings; anything far longer is not one of
// them and would only bloat the database.
const (
	maxSignatureIDLen = 128
	maxUserIDLen      = 256
	maxEventIDLen     = 256
	maxTypeLen        = 64
	maxRegionLen      = 32
)

// Event is an "H5 IDV completed" event: the vendor's callback body (signatureId and type), optionally
// enriched by the producer with the user's own id, when it happened and an event id.
type Event struct {
	SignatureID string     `json:"signatureId"`
	Type        string     `json:"type"`
	UserID      string     `json:"userId,omitempty"`
	OccurredAt  *time.Time `json:"occurredAt,omitempty"`
	EventID     string     `json:"eventId,omitempty"`
	// Region is the vendor region the verification was made in, lower case; empty leaves it to the
	// pipeline (a Kafka header region, else the default region).
	Region string `json:"region,omitempty"`
}

// Reasons a message is rejected before any work is done. They travel to the dead-letter topic, so
// they are stable snake_case words an operator can filter on.
const (
	ReasonTooLarge           = "too_large"
	ReasonInvalidJSON        = "invalid_json"
	ReasonInvalidUTF8        = "invalid_utf8"
	ReasonWrongFieldType     = "wrong_field_type"
	ReasonMissingSignatureID = "missing_signature_id"
	ReasonInvalidSignatureID = "invalid_signature_id"
	ReasonMissingType        = "missing_type"
	ReasonInvalidField       = "invalid_field"
	ReasonUnknownEventType   = "unknown_event_type"
	// ReasonUnknownRegion is an event whose region (field or header) is not configured.
	ReasonUnknownRegion = "unknown_region"
	// ReasonInvalidHeader is a Kafka header Doppel reads (region) whose value breaks the identifier
	// rule: a NUL or a bidi override there would otherwise reach the database or the console.
	ReasonInvalidHeader = "invalid_header"
)

// DecodeError says why a message is not a usable event. SignatureID is set when the message carried
// a usable one, so the failure can still be recorded against the verification.
type DecodeError struct {
	Reason string
	Detail string
	// Field is the JSON field at fault, "" when the message as a whole is.
	Field       string
	SignatureID string
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
}

// FailureKind is FailurePermanent: the same bytes fail the same way every time.
func (e *DecodeError) FailureKind() FailureKind { return FailurePermanent }

// FailureReason is the decoder's reason, for the dead-letter header.
func (e *DecodeError) FailureReason() string { return e.Reason }

// DecodeOptions bound what DecodeEvent accepts.
type DecodeOptions struct {
	// MaxBytes rejects larger messages before parsing them; 0 means no bound.
	MaxBytes int
	// RejectUnknownTypes turns a type other than COMPLETED or SUBMIT_COMPLETED into a DecodeError
	// instead of an event that is recorded as skipped.
	RejectUnknownTypes bool
}

// DecodeEvent parses a message value into an Event, or returns a *DecodeError naming the reason.
func DecodeEvent(value []byte, opts DecodeOptions) (Event, error) {
	var ev Event
	if err := unmarshalEvent(value, opts, &ev); err != nil {
		return Event{}, err
	}
	return validateEvent(ev, opts)
}

// DecodeCallback parses the vendor's callback body. Only signatureId and type are read: the
// vendor's body carries nothing else, and whoever holds the callback token must not be able to
// attribute a verification to a user (get-result supplies the user). Producers writing to the
// events topic directly are trusted with the enrichment fields; callers of the HTTP callback are not.
func DecodeCallback(value []byte, opts DecodeOptions) (Event, error) {
	var body struct {
		SignatureID string `json:"signatureId"`
		Type        string `json:"type"`
		// Region is only checked: a signed body names the region of its path (the HTTP layer binds
		// them), and the event's region comes from the path.
		Region json.RawMessage `json:"region"`
	}
	if err := unmarshalEvent(value, opts, &body); err != nil {
		return Event{}, err
	}
	ev, err := validateEvent(Event{SignatureID: body.SignatureID, Type: body.Type}, opts)
	if err != nil || body.Region == nil {
		return ev, err
	}
	var region string
	if string(body.Region) == "null" || json.Unmarshal(body.Region, &region) != nil { // null, a number, an object
		return Event{}, &DecodeError{Reason: ReasonWrongFieldType, Field: "region", SignatureID: ev.SignatureID,
			Detail: `field "region" must be a string`}
	}
	if !validOptional(region, maxRegionLen) {
		return Event{}, invalidField(ReasonInvalidField, "region", region, maxRegionLen, ev.SignatureID)
	}
	return ev, nil
}

// unmarshalEvent applies the checks on the raw bytes (size, UTF-8) and parses them into v.
func unmarshalEvent(value []byte, opts DecodeOptions, v any) error {
	if opts.MaxBytes > 0 && len(value) > opts.MaxBytes {
		return &DecodeError{Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("message is %d bytes, the bound is %d", len(value), opts.MaxBytes)}
	}
	// encoding/json would silently replace invalid bytes by U+FFFD, storing an id nobody sent.
	if !utf8.Valid(value) {
		de := &DecodeError{Reason: ReasonInvalidUTF8, Detail: "the message is not valid UTF-8 text"}
		var probe struct {
			SignatureID string `json:"signatureId"`
		}
		if json.Unmarshal(value, &probe) == nil && strings.ContainsRune(probe.SignatureID, utf8.RuneError) {
			de.Detail, de.Field = "signatureId is not valid UTF-8", "signatureId"
		}
		return de
	}
	if err := json.Unmarshal(value, v); err != nil {
		return decodeJSONError(value, err)
	}
	return nil
}

// validateEvent checks the fields of a parsed event and trims their surrounding white space.
func validateEvent(ev Event, opts DecodeOptions) (Event, error) {
	// A JSON escape of a lone surrogate (\ud800) decodes to U+FFFD, as invalid bytes would: no
	// vendor id holds it.
	if strings.ContainsRune(ev.SignatureID, utf8.RuneError) {
		return Event{}, &DecodeError{Reason: ReasonInvalidUTF8, Field: "signatureId",
			Detail: "signatureId is not valid UTF-8: it holds U+FFFD (a lone surrogate escape?)"}
	}
	// Every rule is checked on the value as sent, before surrounding white space is trimmed, so
	// padding changes nothing and no control character (NUL above all, which PostgreSQL cannot
	// store) reaches the database hidden in it.
	var err error
	if ev.SignatureID, err = checkSignatureID(ev.SignatureID); err != nil {
		return Event{}, err
	}
	if !validOptional(ev.Type, maxTypeLen) {
		return Event{}, invalidField(ReasonInvalidField, "type", ev.Type, maxTypeLen, ev.SignatureID)
	}
	ev.Type = strings.TrimSpace(ev.Type)
	if ev.Type == "" {
		return Event{}, &DecodeError{Reason: ReasonMissingType, Field: "type", Detail: "type is missing or empty",
			SignatureID: ev.SignatureID}
	}
	if !validOptional(ev.UserID, maxUserIDLen) {
		return Event{}, invalidField(ReasonInvalidField, "userId", ev.UserID, maxUserIDLen, ev.SignatureID)
	}
	ev.UserID = strings.TrimSpace(ev.UserID)
	if !validOptional(ev.EventID, maxEventIDLen) {
		return Event{}, invalidField(ReasonInvalidField, "eventId", ev.EventID, maxEventIDLen, ev.SignatureID)
	}
	if !validOptional(ev.Region, maxRegionLen) {
		return Event{}, invalidField(ReasonInvalidField, "region", ev.Region, maxRegionLen, ev.SignatureID)
	}
	ev.Region = NormalizeRegion(ev.Region)
	if opts.RejectUnknownTypes && ev.Type != EventTypeCompleted && ev.Type != EventTypeSubmitCompleted {
		return Event{}, &DecodeError{Reason: ReasonUnknownEventType, Field: "type",
			Detail: fmt.Sprintf("type %q is not COMPLETED or SUBMIT_COMPLETED", ev.Type), SignatureID: ev.SignatureID}
	}
	return ev, nil
}

// CheckHeader returns the value of a Kafka header Doppel reads, trimmed, or the *DecodeError
// (ReasonInvalidHeader, Field "header "+name) saying why it breaks the identifier rule of at most
// maxLen characters. An absent or empty header is "". signatureID is the decoded event's, so the
// failure can be recorded against it.
func CheckHeader(name, value string, maxLen int, signatureID string) (string, error) {
	if !validOptional(value, maxLen) {
		return "", invalidField(ReasonInvalidHeader, "header "+name, value, maxLen, signatureID)
	}
	return strings.TrimSpace(value), nil
}

// DefaultRegion names the one vendor region there is without DOPPEL_ADVANCE_REGIONS, and the
// region of every row stored before regions existed.
const DefaultRegion = "default"

// NormalizeRegion returns a region code as Doppel stores it: region codes are case-insensitive.
func NormalizeRegion(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// checkSignatureID returns the signatureId of an event trimmed of surrounding white space, or the
// *DecodeError saying why it is not one. The rule is checked on the value as sent, before the trim.
func checkSignatureID(sig string) (string, error) {
	if !validOptional(sig, maxSignatureIDLen) {
		return "", invalidField(ReasonInvalidSignatureID, "signatureId", sig, maxSignatureIDLen, "")
	}
	sig = strings.TrimSpace(sig)
	if sig == "" {
		return "", &DecodeError{Reason: ReasonMissingSignatureID, Field: "signatureId", Detail: "signatureId is missing or empty"}
	}
	return sig, nil
}

// decodeJSONError names the field when the JSON was well formed but a field had the wrong type, and
// still recovers the signatureId when that field was fine.
func decodeJSONError(value []byte, err error) error {
	var typeErr *json.UnmarshalTypeError
	var timeErr *time.ParseError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return &DecodeError{Reason: ReasonWrongFieldType,
			Detail: fmt.Sprintf("the message must be a JSON object with signatureId and type, got %s", jsonValueName(typeErr.Value))}
	case errors.As(err, &typeErr):
		return &DecodeError{Reason: ReasonWrongFieldType, Field: typeErr.Field,
			Detail: fmt.Sprintf("field %q must be a %s, got %s", typeErr.Field, JSONTypeName(typeErr.Type),
				jsonValueName(typeErr.Value)),
			SignatureID: salvageSignatureID(value)}
	case errors.As(err, &timeErr), strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		// time.Time is the only field type with its own decoder: occurredAt.
		return &DecodeError{Reason: ReasonInvalidField, Field: "occurredAt",
			Detail:      "occurredAt must be an RFC 3339 time string",
			SignatureID: salvageSignatureID(value)}
	case errors.As(err, &syntaxErr):
		return &DecodeError{Reason: ReasonInvalidJSON, Detail: "not valid JSON: " + syntaxErr.Error()}
	default:
		return &DecodeError{Reason: ReasonInvalidJSON, Detail: "not a valid JSON object"}
	}
}

// JSONTypeName says which JSON value a Go type is decoded from, for error messages that speak JSON
// rather than Go.
func JSONTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		return "RFC 3339 time string"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "number"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "array"
	default:
		return "JSON object"
	}
}

// jsonValueName turns encoding/json's description of the value it found ("number 42", "array",
// "string") into words without Go in them.
func jsonValueName(v string) string {
	if v == "" {
		return "something else"
	}
	if kind, _, _ := strings.Cut(v, " "); kind == "number" {
		return "a number"
	}
	switch v {
	case "bool":
		return "a boolean"
	case "array", "object":
		return "an " + v
	default:
		return "a " + v
	}
}

func salvageSignatureID(value []byte) string {
	var probe struct {
		SignatureID any `json:"signatureId"`
	}
	if json.Unmarshal(value, &probe) != nil {
		return ""
	}
	s, ok := probe.SignatureID.(string)
	s = strings.TrimSpace(s)
	if !ok || !validID(s, maxSignatureIDLen) {
		return ""
	}
	return s
}
