package duplicate

import "time"

// RingNeighbourhood is the part of a large ring around one account, what a page can draw and an
// analyst can read when the whole ring (a face farm of thousands) cannot be: the account, its
// direct links (bounded) and the links among the accounts they reach.
type RingNeighbourhood struct {
	ID   string
	Size int
	// Centre is the account in the middle: the one asked for, else the ring's newest (the member
	// whose latest verification was checked last).
	Centre string
	// Members is Centre, then the neighbours shown, most recently linked first.
	Members []string
	// Pairs are the links among Members, with their verifications and review history.
	Pairs []RingPair
	// CentreLinks counts every direct link of Centre, shown or not.
	CentreLinks int
}

// LatestCheck is the verification an account's evidence is read from: its latest check, a face
// search's before any other.
type LatestCheck struct {
	UserID      string
	SignatureID string
	// Region is the vendor region the verification was searched in.
	Region    string
	CheckedAt time.Time
}
