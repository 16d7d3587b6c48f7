package duplicate

import (
	"time"
)

// Decision is an analyst's verdict on a pair of linked accounts.
type Decision string

// Decisions, as stored in link_reviews.decision.
const (
	// DecisionConfirmedFraud means the two accounts are one person abusing several accounts.
	DecisionConfirmedFraud Decision = "confirmed_fraud"
	// DecisionFalsePositive means the faces matched but the people differ.
	DecisionFalsePositive Decision = "false_positive"
	// DecisionSamePerson means one person legitimately holds both accounts (e.g. a re-registration).
	DecisionSamePerson Decision = "same_person"
)

// Decisions lists every valid decision.
var Decisions = []Decision{DecisionConfirmedFraud, DecisionFalsePositive, DecisionSamePerson}

// Valid reports whether d is one of Decisions.
func (d Decision) Valid() bool {
	switch d {
	case DecisionConfirmedFraud, DecisionFalsePositive, DecisionSamePerson:
		return true
	}
	return false
}

// SuppressesAlerts reports whether a pair whose latest review is d raises no new alert: a person
// has already said the link is not fraud. confirmed_fraud does not suppress.
func (d Decision) SuppressesAlerts() bool {
	return d == DecisionFalsePositive || d == DecisionSamePerson
}

// Review is one entry of a pair's append-only review history.
type Review struct {
	ID              int64
	UserID          string
	DuplicateUserID string
	Decision        Decision
	Note            string
	// ReviewedBy is the name of the API key that recorded the review.
	ReviewedBy string
	ReviewedAt time.Time
	// Linked reports whether the pair had a stored link when the review was recorded; a review of a
	// pair not (yet) linked clears it in advance.
	Linked bool
}
