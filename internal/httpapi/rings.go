package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// RingStore is what the ring, alert and review-history endpoints (and the console) read;
// postgres.Store implements it.
type RingStore interface {
	Alert(ctx context.Context, alertID string) (duplicate.StoredAlert, error)
	Rings(ctx context.Context, q duplicate.RingQuery) ([]duplicate.RingSummary, error)
	RingDetail(ctx context.Context, ringID, focus string) (duplicate.RingDetail, error)
	Reviews(ctx context.Context, q duplicate.ReviewQuery) ([]duplicate.Review, error)
}

// Page sizes of the ring and review lists.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// ringIDPattern is the shape duplicate.RingID produces.
var ringIDPattern = regexp.MustCompile(`^ring_[0-9a-f]{16}$`)

// alertFilters reads ?severity=, ?status= and ?userId= into q.
func alertFilters(c echo.Context, q *duplicate.AlertQuery) error {
	q.Severity = c.QueryParam("severity")
	if q.Severity != "" && q.Severity != duplicate.SeverityNormal && q.Severity != duplicate.SeverityHigh {
		return invalid("severity", "severity must be normal or high")
	}
	q.Status = c.QueryParam("status")
	if q.Status != "" && q.Status != duplicate.AlertOpen && q.Status != duplicate.AlertReviewed {
		return invalid("status", "status must be open (a new pair has no review yet) or reviewed")
	}
	q.UserID = c.QueryParam("userId")
	if q.UserID != "" && !duplicate.ValidUserID(q.UserID) {
		return invalidID("userId", q.UserID, duplicate.MaxUserIDLen)
	}
	return nil
}

// listLimit reads ?limit= for the ring and review lists.
func listLimit(c echo.Context) (int, error) {
	raw, err := singleQuery(c, "limit")
	if err != nil || raw == "" {
		return defaultListLimit, err
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxListLimit {
		return 0, invalid("limit", "limit must be a whole number from 1 to %d", maxListLimit)
	}
	return n, nil
}

// listCursor is the opaque ?cursor= of the ring list (an offset) and the review list (the last
// review id seen).
type listCursor struct {
	Offset int   `json:"o,omitempty"`
	Before int64 `json:"b,omitempty"`
}

func encodeListCursor(lc listCursor) string {
	b, _ := json.Marshal(lc)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeListCursor(c echo.Context) (listCursor, error) {
	raw, err := singleQuery(c, "cursor")
	if err != nil || raw == "" {
		return listCursor{}, err
	}
	var lc listCursor
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(raw) > 128 || json.Unmarshal(b, &lc) != nil || lc.Offset < 0 || lc.Before < 0 {
		return listCursor{}, invalid("cursor", "cursor must be a nextCursor value from a previous page")
	}
	return lc, nil
}

type ringSummaryJSON struct {
	RingID      string    `json:"ringId"`
	Size        int       `json:"size"`
	LinkCount   int       `json:"linkCount"`
	Members     []string  `json:"members"`
	FirstSeenAt time.Time `json:"firstSeenAt"`
	LastSeenAt  time.Time `json:"lastSeenAt"`
	OpenAlerts  int       `json:"openAlerts"`
}

type ringsJSON struct {
	Rings      []ringSummaryJSON `json:"rings"`
	NextCursor *string           `json:"nextCursor"`
	HasMore    bool              `json:"hasMore"`
}

// handleRings answers a page of fraud rings, ?order=largest (default) or newest.
func (s *Server) handleRings(c echo.Context) error {
	order, err := singleQuery(c, "order")
	if err != nil {
		return err
	}
	q := duplicate.RingQuery{Order: duplicate.RingOrder(order)}
	switch q.Order {
	case "":
		q.Order = duplicate.RingsLargestFirst
	case duplicate.RingsLargestFirst, duplicate.RingsNewestFirst:
	default:
		return invalid("order", "order must be largest or newest")
	}
	if q.Limit, err = listLimit(c); err != nil {
		return err
	}
	cur, err := decodeListCursor(c)
	if err != nil {
		return err
	}
	q.Offset = cur.Offset
	st, err := s.store()
	if err != nil {
		return err
	}
	want := q.Limit
	q.Limit++
	rings, err := st.Rings(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := ringsJSON{Rings: []ringSummaryJSON{}}
	if len(rings) > want {
		rings = rings[:want]
		out.HasMore = true
		next := encodeListCursor(listCursor{Offset: q.Offset + want})
		out.NextCursor = &next
	}
	for _, r := range rings {
		out.Rings = append(out.Rings, ringSummaryJSON{RingID: r.ID, Size: r.Size, LinkCount: r.LinkCount,
			Members: nonNil(r.Members), FirstSeenAt: r.FirstSeenAt, LastSeenAt: r.LastSeenAt, OpenAlerts: r.OpenAlerts})
	}
	return c.JSON(http.StatusOK, out)
}

type ringPairJSON struct {
	linkJSON
	SignatureIDs         []string     `json:"signatureIds"`
	VendorTransactionIDs []string     `json:"vendorTransactionIds"`
	Reviews              []reviewJSON `json:"reviews"`
}

type ringJSON struct {
	RingID      string         `json:"ringId"`
	Size        int            `json:"size"`
	LinkCount   int            `json:"linkCount"`
	OpenAlerts  int            `json:"openAlerts"`
	FirstSeenAt time.Time      `json:"firstSeenAt"`
	LastSeenAt  time.Time      `json:"lastSeenAt"`
	Members     []string       `json:"members"`
	Focus       *string        `json:"focus"`
	Links       []ringPairJSON `json:"links"`
	Truncated   bool           `json:"truncated"`
}

// handleRing answers one ring with its links' evidence and review history: every link of a ring
// of at most duplicate.MaxRingPageMembers accounts, the links of ?userId= (a member; the ring's
// newest by default) in a larger one.
func (s *Server) handleRing(c echo.Context) error {
	id, err := pathParam(c, "ringId")
	if err != nil {
		return err
	}
	if !ringIDPattern.MatchString(id) {
		return invalid("ringId", "ringId must be ring_ and 16 lowercase hex digits")
	}
	focus, err := singleQuery(c, "userId")
	if err != nil {
		return err
	}
	if focus != "" && !duplicate.ValidUserID(focus) {
		return invalidID("userId", focus, duplicate.MaxUserIDLen)
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	ring, err := st.RingDetail(c.Request().Context(), id, focus)
	if err != nil {
		return err
	}
	out := toRing(ring)
	if err := s.logRead(c, ring.ID, out.Members); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

func toRing(r duplicate.RingDetail) ringJSON {
	out := ringJSON{RingID: r.ID, Size: r.Size, LinkCount: r.LinkCount, OpenAlerts: r.OpenAlerts,
		FirstSeenAt: r.FirstSeenAt, LastSeenAt: r.LastSeenAt, Members: nonNil(r.Members), Truncated: r.Truncated,
		Links: make([]ringPairJSON, len(r.Pairs))}
	if r.Focus != "" {
		out.Focus = &r.Focus
	}
	for i, p := range r.Pairs {
		j := ringPairJSON{linkJSON: linkJSON{UserID: p.UserIDLow, DuplicateUserID: p.UserIDHigh,
			FirstSeenAt: p.FirstSeenAt, LastSeenAt: p.LastSeenAt, SeenCount: p.SeenCount,
			FirstSignatureID: p.FirstSignatureID, LastSignatureID: p.LastSignatureID, Regions: nonNil(p.Regions)},
			SignatureIDs: nonNil(p.SignatureIDs), VendorTransactionIDs: nonNil(p.VendorTransactionIDs),
			Reviews: make([]reviewJSON, len(p.Reviews))}
		for k, rv := range p.Reviews {
			j.Reviews[k] = toReview(rv)
		}
		if len(j.Reviews) > 0 {
			j.LatestReview = &j.Reviews[0]
		}
		out.Links[i] = j
	}
	return out
}

// handleAlert answers one alert with its status.
func (s *Server) handleAlert(c echo.Context) error {
	id, err := pathParam(c, "alertId")
	if err != nil {
		return err
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return invalid("alertId", "alertId must be a UUID such as 8abc1463-cea7-4c06-9255-77650933ca25")
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	a, err := st.Alert(c.Request().Context(), strings.ToLower(id))
	if err != nil {
		return err
	}
	out := toAlert(a)
	if err := s.logRead(c, a.RingID, alertIDs(out)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

type reviewsJSON struct {
	Reviews    []reviewJSON `json:"reviews"`
	NextCursor *string      `json:"nextCursor"`
	HasMore    bool         `json:"hasMore"`
}

// handleReviews answers the review history, newest first, filtered by ?userId=, ?reviewer= and
// ?since=.
func (s *Server) handleReviews(c echo.Context) error {
	var q duplicate.ReviewQuery
	var err error
	if q.UserID, err = singleQuery(c, "userId"); err != nil {
		return err
	}
	if q.UserID != "" && !duplicate.ValidUserID(q.UserID) {
		return invalidID("userId", q.UserID, duplicate.MaxUserIDLen)
	}
	if q.Reviewer, err = singleQuery(c, "reviewer"); err != nil {
		return err
	}
	if q.Reviewer != "" && !duplicate.ValidUserID(q.Reviewer) {
		return invalidID("reviewer", q.Reviewer, duplicate.MaxUserIDLen)
	}
	since, err := singleQuery(c, "since")
	if err != nil {
		return err
	}
	if since != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(since)); err != nil {
			return invalid("since", "since must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z")
		}
	}
	if q.Limit, err = listLimit(c); err != nil {
		return err
	}
	cur, err := decodeListCursor(c)
	if err != nil {
		return err
	}
	q.Before = cur.Before
	st, err := s.store()
	if err != nil {
		return err
	}
	want := q.Limit
	q.Limit++
	reviews, err := st.Reviews(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := reviewsJSON{Reviews: []reviewJSON{}}
	if len(reviews) > want {
		reviews = reviews[:want]
		out.HasMore = true
		next := encodeListCursor(listCursor{Before: reviews[want-1].ID})
		out.NextCursor = &next
	}
	for _, r := range reviews {
		out.Reviews = append(out.Reviews, toReview(r))
	}
	if q.UserID != "" { // a person's reviews; the unfiltered history is the team's audit trail
		if err := s.logRead(c, "", []string{q.UserID}, reviewsIDs(out.Reviews)); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}
