package duplicate

import "time"

// SubjectExport is everything Doppel holds about one person (GET /v1/users/{userId}/export), read
// in one consistent snapshot. It names the other accounts the person's data ties them to (linked
// accounts, ring members, alerts' matches): that is the evidence held about the person. Whoever
// hands it to the person decides what of it to redact.
type SubjectExport struct {
	UserID string
	// Checks are the person's own verifications; Overflow lists, per signatureId, the matched
	// accounts past the first MaxPairsPerCheck that the check stored separately (check_overflow).
	Checks   []Check
	Overflow map[string][]string
	// NamedIn are other accounts' verifications whose face search named the person.
	NamedIn []NamingCheck
	// Started are the person's verifications announced as started (reconciliation's rows).
	Started []StartedVerification
	// Links are the person's duplicate-account links, whichever side of the pair they are on.
	Links []Link
	// Ring is the person's ring (Links left out: they are in Links); a ring of one when none.
	Ring Ring
	// Alerts are those raised for the person and those naming them among the matches.
	Alerts []StoredAlert
	// Reviews are those of a pair the person is in, and those whose note names them.
	Reviews []Review
	// Reads are the access-log entries of reads that showed the person, oldest first.
	Reads []Read
}

// NamingCheck is another account's verification whose face search named the person.
type NamingCheck struct {
	SignatureID string
	UserID      string
	Region      string
	CheckedAt   time.Time
}

// StartedVerification is a verification of the person announced as started, and how it settled.
type StartedVerification struct {
	SignatureID string
	Region      string
	StartedAt   time.Time
	Status      string
	Verdict     string
	SettledAt   *time.Time
}

// Read is one access-log entry about the person, without the other ids the answer showed.
type Read struct {
	At     time.Time
	Actor  string
	Via    string
	What   string
	RingID string
}
