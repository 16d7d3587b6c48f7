package httpapi

import (
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// The JSON the API answers with. They are the API's own types, mapped from the domain's, so the
// wire format changes only on purpose; openapi.json describes each one.

type reviewJSON struct {
	ReviewID        int64     `json:"reviewId"`
	UserID          string    `json:"userId"`
	DuplicateUserID string    `json:"duplicateUserId"`
	Decision        string    `json:"decision"`
	Note            string    `json:"note"`
	ReviewedBy      string    `json:"reviewedBy"`
	ReviewedAt      time.Time `json:"reviewedAt"`
	Linked          bool      `json:"linked"`
}

func toReview(r duplicate.Review) reviewJSON {
	return reviewJSON{ReviewID: r.ID, UserID: r.UserID, DuplicateUserID: r.DuplicateUserID, Decision: string(r.Decision),
		Note: r.Note, ReviewedBy: r.ReviewedBy, ReviewedAt: r.ReviewedAt, Linked: r.Linked}
}

func toReviewPtr(r *duplicate.Review) *reviewJSON {
	if r == nil {
		return nil
	}
	j := toReview(*r)
	return &j
}

type duplicateJSON struct {
	UserID       string       `json:"userId"`
	FirstSeenAt  time.Time    `json:"firstSeenAt"`
	LastSeenAt   time.Time    `json:"lastSeenAt"`
	SeenCount    int          `json:"seenCount"`
	SignatureIDs []string     `json:"signatureIds"`
	Regions      []string     `json:"regions"`
	LatestReview *reviewJSON  `json:"latestReview"`
	Reviews      []reviewJSON `json:"reviews"`
}

type duplicatesJSON struct {
	UserID     string          `json:"userId"`
	Duplicates []duplicateJSON `json:"duplicates"`
	Truncated  bool            `json:"truncated"`
}

type sourceJSON struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

type checkJSON struct {
	SignatureID         string     `json:"signatureId"`
	UserID              string     `json:"userId"`
	EventType           string     `json:"eventType"`
	Outcome             string     `json:"outcome"`
	OverallResult       string     `json:"overallResult"`
	SimilarUserIDs      []string   `json:"similarUserIds"`
	MatchedUserIDs      []string   `json:"matchedUserIds"`
	VendorTransactionID string     `json:"vendorTransactionId"`
	FailureReason       string     `json:"failureReason"`
	EventID             string     `json:"eventId"`
	OccurredAt          *time.Time `json:"occurredAt"`
	Source              sourceJSON `json:"source"`
	CheckedAt           time.Time  `json:"checkedAt"`
	ReplayCount         int        `json:"replayCount"`
	ReplayedAt          *time.Time `json:"replayedAt"`
	FoundBy             string     `json:"foundBy"`
	EnrolledAt          *time.Time `json:"enrolledAt"`
	Region              string     `json:"region"`
}

func toCheck(c duplicate.Check) checkJSON {
	return checkJSON{SignatureID: c.SignatureID, UserID: c.UserID, EventType: c.EventType, Outcome: string(c.Outcome),
		OverallResult: c.OverallResult, SimilarUserIDs: nonNil(c.SimilarUserIDs), MatchedUserIDs: nonNil(c.MatchedUserIDs),
		VendorTransactionID: c.VendorTransactionID, FailureReason: c.FailureReason, EventID: c.EventID,
		OccurredAt: c.OccurredAt, Source: sourceJSON{Topic: c.Source.Topic, Partition: c.Source.Partition, Offset: c.Source.Offset},
		CheckedAt: c.CheckedAt, ReplayCount: c.ReplayCount, ReplayedAt: c.ReplayedAt, FoundBy: c.FoundBy, EnrolledAt: c.EnrolledAt,
		Region: c.Region}
}

type linkJSON struct {
	UserID           string      `json:"userId"`
	DuplicateUserID  string      `json:"duplicateUserId"`
	FirstSeenAt      time.Time   `json:"firstSeenAt"`
	LastSeenAt       time.Time   `json:"lastSeenAt"`
	SeenCount        int         `json:"seenCount"`
	FirstSignatureID string      `json:"firstSignatureId"`
	LastSignatureID  string      `json:"lastSignatureId"`
	Regions          []string    `json:"regions"`
	LatestReview     *reviewJSON `json:"latestReview"`
}

type clusterJSON struct {
	UserID    string     `json:"userId"`
	RingID    string     `json:"ringId"`
	Size      int        `json:"size"`
	Members   []string   `json:"members"`
	Links     []linkJSON `json:"links"`
	Truncated bool       `json:"truncated"`
}

// alertJSON is an alert as the alert topic carries it, plus when it was published and whether it
// still waits for a review: the API and the topic show subscribers one shape.
type alertJSON struct {
	duplicate.Alert
	PublishedAt *time.Time `json:"publishedAt"`
	Status      string     `json:"status"`
}

func toAlert(a duplicate.StoredAlert) alertJSON {
	a.MatchedUserIDs, a.NewMatchedUserIDs = nonNil(a.MatchedUserIDs), nonNil(a.NewMatchedUserIDs)
	return alertJSON{Alert: a.Alert, PublishedAt: a.PublishedAt, Status: a.Status}
}

type alertsJSON struct {
	Alerts []alertJSON `json:"alerts"`
	// NextCursor continues after the last alert of this page (also to poll for newer ones); null
	// when the page is empty and no cursor was given.
	NextCursor *string `json:"nextCursor"`
	HasMore    bool    `json:"hasMore"`
}

type replayResultJSON struct {
	SignatureID     string   `json:"signatureId"`
	Status          string   `json:"status"`
	Reason          string   `json:"reason"`
	PreviousOutcome string   `json:"previousOutcome"`
	Outcome         string   `json:"outcome"`
	Added           []string `json:"added"`
	Removed         []string `json:"removed"`
	NewLinks        []string `json:"newLinks"`
	AlertID         *string  `json:"alertId"`
}

type replayJSON struct {
	Requested int                `json:"requested"`
	Replayed  int                `json:"replayed"`
	Skipped   int                `json:"skipped"`
	Failed    int                `json:"failed"`
	Changed   int                `json:"changed"`
	NewLinks  int                `json:"newLinks"`
	Alerts    int                `json:"alerts"`
	Results   []replayResultJSON `json:"results"`
}

// replayPlanJSON is the answer to a dry run: what a real run would re-run (checks that did not come
// from a face search are skipped by a real run, so it bills at most Requested searches).
type replayPlanJSON struct {
	DryRun       bool     `json:"dryRun"`
	Requested    int      `json:"requested"`
	SignatureIDs []string `json:"signatureIds"`
}

func toReplay(sum duplicate.ReplaySummary, results []duplicate.ReplayResult) replayJSON {
	out := replayJSON{Requested: sum.Requested, Replayed: sum.Replayed, Skipped: sum.Skipped, Failed: sum.Failed,
		Changed: sum.Changed, NewLinks: sum.NewLinks, Alerts: sum.Alerts, Results: make([]replayResultJSON, len(results))}
	for i, r := range results {
		j := replayResultJSON{SignatureID: r.SignatureID, Status: r.Status, Reason: r.Reason,
			PreviousOutcome: string(r.PreviousOutcome), Outcome: string(r.Outcome),
			Added: nonNil(r.Added), Removed: nonNil(r.Removed), NewLinks: nonNil(r.NewLinks)}
		if r.Alert != nil {
			id := r.Alert.AlertID
			j.AlertID = &id
		}
		out.Results[i] = j
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
