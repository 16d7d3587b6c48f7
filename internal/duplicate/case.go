package duplicate

import "time"

// Case statuses: open (work to do, nobody on it), in_review (claimed), closed (no open alert
// left), merged (its ring joined another; the case lives on in MergedInto).
const (
	CaseOpen     = "open"
	CaseInReview = "in_review"
	CaseClosed   = "closed"
	CaseMerged   = "merged"
)

// Error codes of case work, answered 409.
const (
	// ECASECAP means the analyst already holds as many claimed cases as the cap allows.
	ECASECAP = "case_cap_reached"
	// ECASECLAIMED means another analyst holds the case.
	ECASECLAIMED = "case_claimed"
	// ECASECLOSED means the case has no work left (closed or merged).
	ECASECLOSED = "case_closed"
	// ENOCASE means no unclaimed case is waiting ("Next case" on an empty queue).
	ENOCASE = "no_case_waiting"
)

// MaxCaseMembers bounds the members a case's page lists (as a ring's page does).
const MaxCaseMembers = MaxRingMembers

// Case is one row of the case queue: a ring with work to do.
type Case struct {
	CaseID string
	RingID string
	Size   int
	// NewAccounts is how many accounts joined the ring since the last decision (the whole ring
	// when none was made).
	NewAccounts       int
	Regions           []string
	Severity          string
	Status            string
	Assignee          string
	DueAt             time.Time
	OldestOpenAlertAt time.Time
	OpenAlerts        int
	SnoozedUntil      *time.Time
	Overdue           bool
}

// CaseEvent is one entry of a case's history; Kind "note" is an analyst's note.
type CaseEvent struct {
	Kind   string
	Author string
	Text   string
	At     time.Time
}

// CaseDetail is a case with its ring's members (at most MaxCaseMembers) and its history.
type CaseDetail struct {
	Case
	Members   []string
	Truncated bool
	// MergedFrom lists the caseIds merged into this one; SplitFrom the case it split from.
	SplitFrom string
	Notes     []CaseEvent
	History   []CaseEvent
}

// CaseQuery filters and pages the case queue. Assignee "" is anyone; NoAssignee asks for
// unclaimed cases.
type CaseQuery struct {
	Statuses   []string
	Region     string
	Assignee   string
	NoAssignee bool
	Severity   string
	// After is the last row of the previous page (its sort key), AsOf the time "overdue" was
	// judged at for the first page.
	After *CaseCursor
	AsOf  time.Time
	Limit int
}

// CaseCursor is the sort key of a queue row: overdue first, then high severity, then oldest.
type CaseCursor struct {
	Overdue bool      `json:"o"`
	High    bool      `json:"h"`
	Oldest  time.Time `json:"t"`
	CaseID  string    `json:"c"`
	AsOf    time.Time `json:"a"`
}

// CaseSLA is how long a case may wait for a decision: Default, or Regions[region] for a case
// whose first region has its own.
type CaseSLA struct {
	Default time.Duration
	Regions map[string]time.Duration
}
