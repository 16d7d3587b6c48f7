package duplicate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Started is an "H5 IDV started" event: the customer's backend publishes one when generate-url
// answers, so that a verification whose completion callback is lost can still be found by polling.
// Only SignatureID is required.
type Started struct {
	SignatureID string `json:"signatureId"`
	UserID      string `json:"userId,omitempty"`
	// Region is the verification's region, normalised as Event.Region; polling routes on it.
	Region    string     `json:"region,omitempty"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
}

// DecodeStarted parses a started event, or returns a *DecodeError naming the reason, with the same
// reasons as DecodeEvent so that both topics' dead letters read alike. maxBytes 0 means no bound.
func DecodeStarted(value []byte, maxBytes int) (Started, error) {
	if maxBytes > 0 && len(value) > maxBytes {
		return Started{}, &DecodeError{Reason: ReasonTooLarge,
			Detail: fmt.Sprintf("message is %d bytes, the bound is %d", len(value), maxBytes)}
	}
	var ev Started
	if err := json.Unmarshal(value, &ev); err != nil {
		var timeErr *time.ParseError
		if errors.As(err, &timeErr) {
			return Started{}, &DecodeError{Reason: ReasonInvalidField, Field: "startedAt", Detail: "startedAt must be an RFC 3339 time",
				SignatureID: salvageSignatureID(value)}
		}
		return Started{}, decodeJSONError(value, err)
	}
	var err error
	if ev.SignatureID, err = checkSignatureID(ev.SignatureID); err != nil {
		return Started{}, err
	}
	for _, f := range []struct {
		name  string
		value *string
		max   int
	}{{"userId", &ev.UserID, maxUserIDLen}, {"region", &ev.Region, maxRegionLen}} {
		if !validOptional(*f.value, f.max) {
			return Started{}, invalidField(ReasonInvalidField, f.name, *f.value, f.max, ev.SignatureID)
		}
		*f.value = strings.TrimSpace(*f.value)
	}
	ev.Region = NormalizeRegion(ev.Region)
	return ev, nil
}
