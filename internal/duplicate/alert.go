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
	// RingID and RingSize describe the fraud ring (every account transitively linked to UserID) as
	// it stood when the alert was raised, this check's links included. See Ring.
	RingID   string `json:"ringId"`
	RingSize int    `json:"ringSize"`
	// Severity is SeverityHigh when the ring reached the configured size, else SeverityNormal.
	Severity string `json:"severity"`
	// MatchedFailedUserIDs are the matched accounts known only by a failed verification that was
	// enrolled in face search: the face failed liveness or the document check there.
	MatchedFailedUserIDs []string `json:"matchedFailedUserIds,omitempty"`
}

// Alert severities.
const (
	SeverityNormal = "normal"
	SeverityHigh   = "high"
)

// SeverityOf returns the severity of an alert whose ring has ringSize accounts: high from
// highRingSize accounts on (0 disables the rule), normal below.
func SeverityOf(ringSize, highRingSize int) string {
	if highRingSize > 0 && ringSize >= highRingSize {
		return SeverityHigh
	}
	return SeverityNormal
}

// AlertPolicy holds the configurable parts of what an alert says.
type AlertPolicy struct {
	// HighSeverityRingSize is the ring size from which an alert's severity is high; 0 never.
	HighSeverityRingSize int
}

// NewAlert returns the alert a stored check raises, or nil when it raises none: an alert is raised
// only when the check found at least one link that did not exist before and that no review has
// cleared (see AlertableLinks), so a ring seen again from another member, the same event redelivered
// or a pair an analyst marked false_positive or same_person stays quiet. ring is the user's ring
// with this check's links; its size sets the severity under policy.
func NewAlert(alertID string, check Check, newMatched []string, ring Ring, policy AlertPolicy) *Alert {
	if len(newMatched) == 0 {
		return nil
	}
	return &Alert{
		AlertID:              alertID,
		Type:                 AlertType,
		Version:              AlertVersion,
		SignatureID:          check.SignatureID,
		UserID:               check.UserID,
		MatchedUserIDs:       check.MatchedUserIDs,
		NewMatchedUserIDs:    newMatched,
		VendorTransactionID:  check.VendorTransactionID,
		DetectedAt:           check.CheckedAt.UTC(),
		RingID:               ring.ID,
		RingSize:             ring.Size,
		Severity:             SeverityOf(ring.Size, policy.HighSeverityRingSize),
		MatchedFailedUserIDs: check.MatchedFailedUserIDs,
	}
}
