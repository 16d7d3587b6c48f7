package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/duplicate"
)

type exportCheckJSON struct {
	checkJSON
	// OverflowUserIDs are the matched accounts past the first 100 (check_overflow).
	OverflowUserIDs []string `json:"overflowUserIds"`
}

type namingCheckJSON struct {
	SignatureID string    `json:"signatureId"`
	UserID      string    `json:"userId"`
	Region      string    `json:"region"`
	CheckedAt   time.Time `json:"checkedAt"`
}

type startedJSON struct {
	SignatureID string     `json:"signatureId"`
	Region      string     `json:"region"`
	StartedAt   time.Time  `json:"startedAt"`
	Status      string     `json:"status"`
	Verdict     string     `json:"verdict"`
	SettledAt   *time.Time `json:"settledAt"`
}

type exportRingJSON struct {
	RingID    *string  `json:"ringId"`
	Size      int      `json:"size"`
	Members   []string `json:"members"`
	Truncated bool     `json:"truncated"`
}

type readJSON struct {
	ReadAt time.Time `json:"readAt"`
	Actor  string    `json:"actor"`
	Via    string    `json:"via"`
	What   string    `json:"what"`
	RingID *string   `json:"ringId"`
}

type exportJSON struct {
	UserID        string            `json:"userId"`
	ExportedAt    time.Time         `json:"exportedAt"`
	Verifications []exportCheckJSON `json:"verifications"`
	NamedIn       []namingCheckJSON `json:"namedInVerifications"`
	Started       []startedJSON     `json:"startedVerifications"`
	Links         []linkJSON        `json:"links"`
	Ring          exportRingJSON    `json:"ring"`
	Alerts        []alertJSON       `json:"alerts"`
	Reviews       []reviewJSON      `json:"reviews"`
	AccessLog     []readJSON        `json:"accessLog"`
}

// handleExport answers everything held about one person, read in one consistent snapshot (see
// postgres.Store.SubjectExport): for a privacy officer answering a subject access request. A
// person Doppel holds nothing about gets the empty document. The export is itself recorded in
// the access log, after the entries it lists (the queue is written first, so they are up to now).
func (s *Server) handleExport(c echo.Context) error {
	userID, err := userIDParam(c)
	if err != nil {
		return err
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	s.flushAccessLog(c.Request().Context())
	x, err := st.SubjectExport(c.Request().Context(), userID)
	if err != nil {
		return err
	}
	out := toExport(x)
	shown := [][]string{{userID}, out.Ring.Members, linkIDs(out.Links), alertsIDs(out.Alerts), reviewsIDs(out.Reviews)}
	for _, v := range out.Verifications {
		shown = append(shown, v.SimilarUserIDs, v.MatchedUserIDs, v.OverflowUserIDs)
	}
	for _, n := range out.NamedIn {
		shown = append(shown, []string{n.UserID})
	}
	if err := s.logRead(c, ringOf(x.Ring.ID, x.Ring.Size), shown...); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func toExport(x duplicate.SubjectExport) exportJSON {
	out := exportJSON{UserID: x.UserID, ExportedAt: time.Now().UTC(),
		Verifications: make([]exportCheckJSON, len(x.Checks)), NamedIn: make([]namingCheckJSON, len(x.NamedIn)),
		Started: make([]startedJSON, len(x.Started)), Links: make([]linkJSON, len(x.Links)),
		Ring:   exportRingJSON{Size: x.Ring.Size, Members: nonNil(x.Ring.Members), Truncated: x.Ring.Truncated},
		Alerts: make([]alertJSON, len(x.Alerts)), Reviews: make([]reviewJSON, len(x.Reviews)), AccessLog: make([]readJSON, len(x.Reads))}
	for i, c := range x.Checks {
		out.Verifications[i] = exportCheckJSON{checkJSON: toCheck(c), OverflowUserIDs: nonNil(x.Overflow[c.SignatureID])}
	}
	for i, n := range x.NamedIn {
		out.NamedIn[i] = namingCheckJSON(n)
	}
	for i, v := range x.Started {
		out.Started[i] = startedJSON(v)
	}
	for i, l := range x.Links {
		out.Links[i] = linkJSON{UserID: l.UserIDLow, DuplicateUserID: l.UserIDHigh, FirstSeenAt: l.FirstSeenAt,
			LastSeenAt: l.LastSeenAt, SeenCount: l.SeenCount, FirstSignatureID: l.FirstSignatureID,
			LastSignatureID: l.LastSignatureID, Regions: nonNil(l.Regions), LatestReview: toReviewPtr(l.LatestReview)}
	}
	if id := ringOf(x.Ring.ID, x.Ring.Size); id != "" {
		out.Ring.RingID = &id
	}
	for i, a := range x.Alerts {
		out.Alerts[i] = toAlert(a)
	}
	for i, r := range x.Reviews {
		out.Reviews[i] = toReview(r)
	}
	for i, r := range x.Reads {
		j := readJSON{ReadAt: r.At, Actor: r.Actor, Via: r.Via, What: r.What}
		if r.RingID != "" {
			id := r.RingID
			j.RingID = &id
		}
		out.AccessLog[i] = j
	}
	return out
}
