package duplicate

import "time"

// RingOrder is the order of a list of rings.
type RingOrder string

// Ring orders.
const (
	// RingsLargestFirst lists rings by size, largest first (ties: most recently seen first).
	RingsLargestFirst RingOrder = "largest"
	// RingsNewestFirst lists rings by their most recent link, newest first.
	RingsNewestFirst RingOrder = "newest"
)

// RingQuery selects a page of rings: Limit rings after the first Offset in Order.
type RingQuery struct {
	Order  RingOrder
	Offset int
	Limit  int
}

// RingSummary is one ring of a list: its size and links without the members' details.
type RingSummary struct {
	ID          string
	Size        int
	LinkCount   int
	Members     []string
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	// OpenAlerts counts the ring members' alerts still waiting for a review.
	OpenAlerts int
}

// RingPair is one link of a ring with what an analyst needs to decide it: the verifications that
// linked the pair and the pair's whole review history.
type RingPair struct {
	Link
	// SignatureIDs are the verifications whose face search linked the pair, oldest first, and
	// VendorTransactionIDs the vendor's transaction ids of those that had one, in the same order.
	SignatureIDs         []string
	VendorTransactionIDs []string
	// Reviews is the pair's history, newest first.
	Reviews []Review
}

// RingDetail is a ring with every pair's evidence and history: every pair of a ring of at most
// MaxRingPageMembers, the pairs of the Focus account in a larger one.
type RingDetail struct {
	ID        string
	Size      int
	Members   []string
	Pairs     []RingPair
	Truncated bool
	// Focus is the account whose pairs Pairs holds in a ring larger than MaxRingPageMembers.
	Focus string
	// The ring's totals (see Ring).
	LinkCount   int
	FirstSeenAt time.Time
	LastSeenAt  time.Time
	OpenAlerts  int
}

// ReviewQuery selects a page of reviews, newest first: those with an id below Before (a cursor from
// the previous page) when it is set, filtered by the fields that are set.
type ReviewQuery struct {
	UserID   string
	Reviewer string
	Since    time.Time
	Before   int64
	Limit    int
}

// Overview is the day's and month's activity, for the console's front page. Day and month are
// those of Now in UTC.
type Overview struct {
	Now               time.Time
	ChecksToday       int
	LinksFoundToday   int
	OpenAlerts        int
	FaceSearchesToday int
	FaceSearchesMonth int
	// AlertsPerDay holds the last 30 days, oldest first, today last.
	AlertsPerDay []DayCount
}

// DayCount is a count for one UTC day.
type DayCount struct {
	Day   time.Time
	Count int
}

// UserCheck is one of a user's own verifications, as the console's user page lists it.
type UserCheck struct {
	SignatureID string
	CheckedAt   time.Time
	Outcome     Outcome
	// Region is the vendor region whose face database the verification was searched in.
	Region string
	// Matched counts the other accounts its face search matched.
	Matched int
}

// OpenCases summarises the rings with work to do (a ring with an open alert is an open case), for
// the console's overview. It is read from the open alerts, oldest first, at most Read of them:
// when Capped, more are open and the counts are lower bounds.
type OpenCases struct {
	Total int
	// ByRegion counts the open cases by the regions of their open alerts (a ring with alerts in
	// two regions counts in both), regions in name order.
	ByRegion []RegionCount
	// Overdue counts the cases whose oldest open alert is older than the review SLA.
	Overdue int
	// HighSeverity counts the cases whose ring is at least the high-severity size now.
	HighSeverity int
	// OldestOpenAlertAt is when the oldest open alert was detected; zero when none is open.
	OldestOpenAlertAt time.Time
	Read              int
	Capped            bool
}

// RegionCount is a count for one vendor region.
type RegionCount struct {
	Region string
	Count  int
}
