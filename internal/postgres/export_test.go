package postgres

// HotPathSQL is every statement the group commit (Batcher) and the relay run on their pool, by
// name, for the external test that checks their plans.
var HotPathSQL = map[string]string{
	"lookupOutcomes": lookupOutcomesSQL,
	"insertChecks":   insertChecksSQL,
	"pairLinks":      pairLinksSQL,
	"pairReviews":    pairReviewsSQL,
	"ringsOf":        ringsOfSQL,
	"newLinks":       newLinksSQL,
	"seenAgain":      seenAgainSQL,
	"insertOverflow": insertOverflowSQL,
	"insertAlerts":   insertAlertsSQL,
	"moveRings":      moveRingsSQL,
	"joinRings":      joinRingsSQL,
	"upsertRings":    upsertRingsSQL,
	"retireRings":    retireRingsSQL,
	"markPublished":  markPublishedSQL,
	"openRingCases":  openRingCasesSQL,
}

// CasesSQL is the closed cases' page statement, QueueSQL the open queue's.
var (
	CasesSQL = casesSQL
	QueueSQL = queueSQL
)

// The users search's and the overview's statements, for the tests that read their plans.
var (
	UserIDsByPrefixSQL = userIDsByPrefixSQL
	OpenCasesSQL       = openCasesSQL
	PrefixEnd          = prefixEnd
)

// RingIndexLock is the advisory lock every writer of the ring index takes, for tests that hold it.
const RingIndexLock = ringIndexLock
