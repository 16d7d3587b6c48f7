package duplicate

import (
	"time"
)

// Outcome is how a verification ended in Doppel. Every event that reaches the pipeline ends as
// exactly one stored outcome or as a dead letter.
type Outcome string

// Outcomes, as stored in idv_checks.outcome.
const (
	// OutcomeDuplicatesFound means face search matched at least one other account.
	OutcomeDuplicatesFound Outcome = "duplicates_found"
	// OutcomeNoDuplicates means face search matched no other account.
	OutcomeNoDuplicates Outcome = "no_duplicates"
	// OutcomeSkipped means the event was a notice that calls for no search (e.g. SUBMIT_COMPLETED,
	// which comes before the verification's COMPLETED).
	OutcomeSkipped Outcome = "skipped"
	// OutcomeNotPassed means the vendor's final verdict was FAIL: face search only works on PASS
	// transactions, so none was made (and none billed).
	OutcomeNotPassed Outcome = "not_passed"
	// OutcomeIncomplete means get-result had no final verdict yet (INCOMPLETE, or a verdict Doppel
	// does not know): no search was made, and a later COMPLETED checks the verification again.
	OutcomeIncomplete Outcome = "incomplete"
	// OutcomeFailed means the event or the vendor's answer was unusable; the message went to the
	// dead-letter topic. A failed check does not block a later replay.
	OutcomeFailed Outcome = "failed"
)

// Final reports whether the outcome reflects a final vendor state, which stops the signatureId
// from being processed again: a face search that ran (each one is billed) or a final FAIL verdict.
// A notice (skipped), a verdict not final yet (incomplete) and a failure are recorded, and a later
// event for the signatureId replaces them.
func (o Outcome) Final() bool {
	switch o {
	case OutcomeDuplicatesFound, OutcomeNoDuplicates, OutcomeNotPassed, OutcomeErased:
		return true
	}
	return false
}

// Source locates the message a check came from, for tracing an outcome back to Kafka.
type Source struct {
	Topic     string
	Partition int
	Offset    int64
}

// Check is the stored outcome of one verification.
type Check struct {
	SignatureID string
	// Region is the vendor region whose face database the verification was searched in.
	Region    string
	UserID    string
	EventType string
	Outcome   Outcome
	// OverallResult is the vendor's verdict when get-result was asked for it.
	OverallResult string
	// SimilarUserIDs are the userIds exactly as face search returned them.
	SimilarUserIDs []string
	// MatchedUserIDs are the distinct userIds other than UserID: the accounts to link.
	MatchedUserIDs []string
	// MatchedFailedUserIDs are those of MatchedUserIDs known only by a failed verification enrolled
	// in face search (see FailedAttempts): their links reach a failed attempt.
	MatchedFailedUserIDs []string
	VendorTransactionID  string
	FailureReason        string
	EventID              string
	OccurredAt           *time.Time
	Source               Source
	// CheckedAt is when the outcome was first stored.
	CheckedAt time.Time
	// ReplayCount counts deliberate re-runs of the face search (see Replayer); ReplayedAt is the
	// latest one's time, nil when never re-run.
	ReplayCount int
	ReplayedAt  *time.Time
	// FoundBy is FoundByEvent, or FoundByPolling when reconciliation found the verification after
	// its callback was lost (set once it is settled). EnrolledAt is when a failed verification was
	// enrolled in face search, nil if never.
	FoundBy    string
	EnrolledAt *time.Time
}

// RegionOf returns the region c was searched in: DefaultRegion for a check without one (stored
// before regions, or by a caller that has none).
func RegionOf(c Check) string {
	if c.Region == "" {
		return DefaultRegion
	}
	return c.Region
}

// How a check came to Doppel (Check.FoundBy).
const (
	FoundByEvent   = "event"
	FoundByPolling = "polling"
)

// MatchedUsers turns a face-search answer into the accounts to link to userID: distinct, in the
// vendor's order, without empty ids and without the user's own id (the same person verifying again
// is not a duplicate account).
func MatchedUsers(userID string, similar []string) []string {
	matched := make([]string, 0, len(similar))
	seen := make(map[string]struct{}, len(similar))
	for _, id := range similar {
		if id == "" || id == userID {
			continue
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		matched = append(matched, id)
	}
	return matched
}

// Pair returns the canonical (low, high) order of an unordered pair of userIds, the order in which a
// link is stored so that either side's search updates the same link.
func Pair(a, b string) (low, high string) {
	if a < b {
		return a, b
	}
	return b, a
}
