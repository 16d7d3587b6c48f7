package duplicate

import "time"

// OutcomeErased is what FinalOutcome answers for a signatureId whose person was erased (its
// tombstone): final, so the event is skipped with no vendor call and nothing stored. It is never
// stored in idv_checks.
const OutcomeErased Outcome = "erased"

// Erasure statuses: pending until the person's rows are removed (one transaction), removed until
// the vendor was asked to clear their faces and the subject_erased event is published, then done.
const (
	ErasureStatusPending = "pending"
	ErasureStatusRemoved = "removed"
	ErasureStatusDone    = "done"
)

// OverrideLegalHold is the one value of an erasure request's override: erase a person on legal hold.
const OverrideLegalHold = "legal_hold"

// ErasureRequest asks for a person's data to be erased.
type ErasureRequest struct {
	UserID string
	Reason string
	// Region is the region asked for ("": all regions): it narrows the vendor clear-data calls.
	Region      string
	RequestedBy string
	// Override is OverrideLegalHold to erase a held person, or "".
	Override string
}

// Erasure is an erasure job and its record. UserID is set only while the job needs it; once done
// only Pseudonym ("erased:" + the keyed hash) names the person.
type Erasure struct {
	ID          string
	UserID      string
	Pseudonym   string
	Reason      string
	Region      string
	RequestedBy string
	RequestedAt time.Time
	// LegalHoldOverride is the hold the request overrode, "" when the person was not held.
	LegalHoldOverride string
	Status            string
	RemovedAt         *time.Time
	DoneAt            *time.Time
	// Removed counts the rows deleted per table; Pseudonymised the rows whose mention of the
	// person was replaced by the pseudonym (reviews) or dropped from a list (others' checks, alerts).
	Removed       map[string]int64
	Pseudonymised map[string]int64
	// VendorSignatures are the person's verifications at the vendor (signatureId and region);
	// VendorCleared those Doppel had the vendor clear.
	VendorSignatures []VendorSignature
	VendorCleared    []string
	LastError        string
}

// VendorSignature is one of an erased person's verifications at the vendor.
type VendorSignature struct {
	SignatureID string
	Region      string
}

// LegalHold says whether a person is held, and why: while any pair of theirs has a confirmed_fraud
// review (its latest decision), or their ring (or they) have an open alert, their data is evidence
// and is neither erased (without the override) nor swept by retention.
type LegalHold struct {
	Held bool
	// RingID is the person's ring ("" when they are in none).
	RingID  string
	Reasons []HoldReason
}

// HoldReason is one reason a person is held.
type HoldReason struct {
	// Kind is "confirmed_fraud" (a pair of theirs) or "open_alert" (an alert of their ring).
	Kind string
	// DuplicateUserID is the other account of a confirmed_fraud pair.
	DuplicateUserID string
	// AlertID is the open alert.
	AlertID string
}

// Hold reason kinds.
const (
	HoldConfirmedFraud = "confirmed_fraud"
	HoldOpenAlert      = "open_alert"
)

// ErrLegalHold is the error of an erasure refused because the person is on legal hold.
type ErrLegalHold struct{ Hold LegalHold }

func (e *ErrLegalHold) Error() string {
	if e.Hold.RingID != "" {
		return "the person is on legal hold (ring " + e.Hold.RingID + ")"
	}
	return "the person is on legal hold"
}
