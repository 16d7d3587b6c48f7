package duplicate

import (
	"time"
)

// AlertType is the only alert type Doppel emits today.
const AlertType = "duplicate_face"

// AlertVersion is the version of the alert's JSON shape; fields are only ever added within a version.
const AlertVersion = 1

// Alert tells risk teams that a verification linked its user to accounts not linked before.
// Its JSON form is what the alert topic carries; AlertID is stable across republishing, so
// subscribers deduplicate on it.
type Alert struct {
	AlertID             string    `json:"alertId"`
	Type                string    `json:"type"`
	Version             int       `json:"version"`
	SignatureID         string    `json:"signatureId"`
	UserID              string    `json:"userId"`
	MatchedUserIDs      []string  `json:"matchedUserIds"`
	NewMatchedUserIDs   []string  `json:"newMatchedUserIds"`
	VendorTransactionID string    `json:"vendorTransactionId"`
	DetectedAt          time.Time `json:"detectedAt"`
}

// NewAlert returns the alert a stored check raises, or nil when it raises none: an alert is raised
// only when the check found at least one link that did not exist before, so a ring seen again from
// another member, or the same event redelivered, stays quiet.
func NewAlert(alertID string, check Check, newMatched []string) *Alert {
	if len(newMatched) == 0 {
		return nil
	}
	return &Alert{
		AlertID:             alertID,
		Type:                AlertType,
		Version:             AlertVersion,
		SignatureID:         check.SignatureID,
		UserID:              check.UserID,
		MatchedUserIDs:      check.MatchedUserIDs,
		NewMatchedUserIDs:   newMatched,
		VendorTransactionID: check.VendorTransactionID,
		DetectedAt:          check.CheckedAt.UTC(),
	}
}
