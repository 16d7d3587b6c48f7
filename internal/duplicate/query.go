package duplicate

import "time"

// LinkedAccount is one account linked to a user, as the read API shows it.
type LinkedAccount struct {
	UserID      string
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	SeenCount   int
	// SignatureIDs are the verifications whose face search linked the pair, oldest first.
	SignatureIDs []string
	// Regions are the vendor regions whose face search found the pair.
	Regions []string
	// Reviews is the pair's review history, newest first; Reviews[0] is the latest decision.
	Reviews []Review
}

// StoredAlert is an alert with its outbox state.
type StoredAlert struct {
	Alert
	PublishedAt *time.Time
	// Status is AlertOpen or AlertReviewed, as of the read (only the query API fills it in).
	Status string
}

// AlertQuery selects a page of alerts, oldest first (newest first with NewestFirst): those detected
// at or after Since, or, when After is set, those beyond that position (a cursor from the previous
// page). Limit bounds the page; Severity, Status and UserID filter it when set.
type AlertQuery struct {
	Since       time.Time
	After       *AlertPosition
	Limit       int
	NewestFirst bool
	// Severity is SeverityNormal or SeverityHigh.
	Severity string
	// Status is AlertOpen or AlertReviewed.
	Status string
	// UserID keeps alerts raised for the user or matching it.
	UserID string
	// Region, when set, keeps only alerts raised by that region's checks.
	Region string
}

// Alert statuses: an alert is open while one of its new pairs has no review.
const (
	AlertOpen     = "open"
	AlertReviewed = "reviewed"
)

// AlertPosition is an alert's place in the (DetectedAt, AlertID) order, for keyset pagination.
type AlertPosition struct {
	DetectedAt time.Time
	AlertID    string
}

// MaxLinkedAccounts bounds the accounts one user's duplicates look-up returns.
const MaxLinkedAccounts = 1000
