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
	AlertID     string `json:"alertId"`
	Type        string `json:"type"`
	Version     int    `json:"version"`
	SignatureID string `json:"signatureId"`
	UserID      string `json:"userId"`
	// MatchedUserIDs and NewMatchedUserIDs list at most MaxListedUserIDs ids each (see Listed);
	// MatchedCount and NewMatchedCount say how many there are in all.
	MatchedUserIDs      []string  `json:"matchedUserIds"`
	NewMatchedUserIDs   []string  `json:"newMatchedUserIds"`
	MatchedCount        int       `json:"matchedCount"`
	NewMatchedCount     int       `json:"newMatchedCount"`
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
	// Region is the vendor region of the check that raised the alert (its face search found the
	// new links).
	Region string `json:"region"`
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

// NewAlert returns the alert a stored check raises, or nil when it raises none: alertable are the
// check's new links that no review has cleared (PlanLinks decides which), so a ring seen again from
// another member, the same event redelivered or a pair an analyst marked false_positive or
// same_person stays quiet. ring is the user's ring with this check's links; its size sets the
// severity under policy.
func NewAlert(alertID string, check Check, alertable []string, ring Ring, policy AlertPolicy) *Alert {
	if len(alertable) == 0 {
		return nil
	}
	return &Alert{
		AlertID:              alertID,
		Type:                 AlertType,
		Version:              AlertVersion,
		SignatureID:          check.SignatureID,
		UserID:               check.UserID,
		MatchedUserIDs:       Listed(check.MatchedUserIDs),
		NewMatchedUserIDs:    Listed(alertable),
		MatchedCount:         len(check.MatchedUserIDs),
		NewMatchedCount:      len(alertable),
		VendorTransactionID:  check.VendorTransactionID,
		DetectedAt:           check.CheckedAt.UTC(),
		RingID:               ring.ID,
		RingSize:             ring.Size,
		Severity:             SeverityOf(ring.Size, policy.HighSeverityRingSize),
		MatchedFailedUserIDs: Listed(check.MatchedFailedUserIDs),
		Region:               RegionOf(check),
	}
}

// MaxListedUserIDs bounds the userIds an alert or a stored check lists. A face farm's answer names
// thousands of accounts, more than any analyst reads in one alert. The lists keep the first ids in
// the vendor's order, the ones the check links pair by pair (MaxPairsPerCheck), and the counts say
// how many there were; the rest of the answer joins the user's ring and is stored once with the
// check, so no match is lost.
const MaxListedUserIDs = 100

// Listed returns the first MaxListedUserIDs of ids.
func Listed(ids []string) []string {
	if len(ids) > MaxListedUserIDs {
		return ids[:MaxListedUserIDs:MaxListedUserIDs]
	}
	return ids
}
