package duplicate

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// MaxRingMembers bounds how many accounts a ring look-up collects. Real fraud rings are far smaller;
// the bound keeps one giant component (a face shared by thousands, or a vendor glitch) from turning
// every look-up into a scan of the whole link graph. A ring cut at the bound says so (Truncated).
const MaxRingMembers = 1000

// Ring is a fraud ring: the connected component of the duplicate-link graph that holds a user, that
// is every account transitively linked to it.
//
// Its ID is derived from the smallest userId of the component (RingID), so it is stable while the
// ring grows from any side, and needs no table of its own. When two rings merge, the merged ring
// keeps the ID of the one with the smaller smallest member and the other ID is retired: subscribers
// that group alerts by ring should treat an ID as "the ring as of this alert".
type Ring struct {
	ID      string
	Size    int
	Members []string
	Links   []Link
	// Truncated is true when the ring has more than MaxRingMembers accounts: Members holds the first
	// ones found (nearest first), Size is MaxRingMembers and ID may not be the full ring's.
	Truncated bool
}

// RingID returns the ID of the ring whose smallest userId is smallest: "ring_" and the first 16 hex
// digits of the SHA-256 of that userId. Hashing gives a fixed-size ID that does not repeat a userId
// in places (dashboards, alert topics) that treat it as an opaque label. The SQL function
// doppel_ring_id computes the same value for the fraud_rings view.
func RingID(smallestUserID string) string {
	sum := sha256.Sum256([]byte(smallestUserID))
	return "ring_" + hex.EncodeToString(sum[:8])
}

// Link is a stored duplicate-account link between two users, in canonical (low, high) order.
type Link struct {
	UserIDLow        string
	UserIDHigh       string
	FirstSeenAt      time.Time
	LastSeenAt       time.Time
	SeenCount        int
	FirstSignatureID string
	LastSignatureID  string
	// LatestReview is the most recent review of the pair, nil when none.
	LatestReview *Review
}

// LinkedAccount is one account linked to a user, as the read API shows it.
type LinkedAccount struct {
	UserID      string
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	SeenCount   int
	// SignatureIDs are the verifications whose face search linked the pair, oldest first.
	SignatureIDs []string
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
