package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/reconcile"
)

// Alert page sizes.
const (
	defaultAlertLimit = 100
	maxAlertLimit     = 500
)

func (s *Server) store() (Store, error) {
	if s.cfg.Store == nil {
		return nil, newError(http.StatusServiceUnavailable, codeNotConfigured, "no database is configured")
	}
	return s.cfg.Store, nil
}

// pathParam returns a path parameter decoded once: Echo hands over the raw segment when the URL
// holds escapes its default encoding would not produce (e.g. %2F), and the decoded one otherwise.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath != "" {
		u, err := url.PathUnescape(v)
		if err != nil {
			return "", invalid(name, "%s is not a valid URL path segment", name)
		}
		v = u
	}
	return v, nil
}

func userIDParam(c echo.Context) (string, error) {
	id, err := pathParam(c, "userId")
	if err != nil {
		return "", err
	}
	if !duplicate.ValidUserID(id) {
		return "", invalidID("userId", id, duplicate.MaxUserIDLen)
	}
	return id, nil
}

// handleUserDuplicates answers the accounts linked to a user.
func (s *Server) handleUserDuplicates(c echo.Context) error {
	userID, err := userIDParam(c)
	if err != nil {
		return err
	}
	region, err := s.regionQuery(c)
	if err != nil {
		return err
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	linked, err := st.UserDuplicates(c.Request().Context(), userID, region)
	if err != nil {
		return err
	}
	out := duplicatesJSON{UserID: userID, Duplicates: make([]duplicateJSON, len(linked)),
		Truncated: len(linked) >= duplicate.MaxLinkedAccounts}
	for i, a := range linked {
		d := duplicateJSON{UserID: a.UserID, FirstSeenAt: a.FirstSeenAt, LastSeenAt: a.LastSeenAt, SeenCount: a.SeenCount,
			SignatureIDs: nonNil(a.SignatureIDs), Regions: nonNil(a.Regions), Reviews: make([]reviewJSON, len(a.Reviews))}
		for j, r := range a.Reviews {
			d.Reviews[j] = toReview(r)
		}
		if len(a.Reviews) > 0 {
			d.LatestReview = &d.Reviews[0]
		}
		out.Duplicates[i] = d
	}
	if err := s.logRead(c, "", []string{userID}, linkedIDs(out)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// handleUserCluster answers the user's fraud ring, or with ?region= the part of it that region's
// face search found.
func (s *Server) handleUserCluster(c echo.Context) error {
	userID, err := userIDParam(c)
	if err != nil {
		return err
	}
	region, err := s.regionQuery(c)
	if err != nil {
		return err
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	ring, err := st.Ring(c.Request().Context(), userID)
	if err != nil {
		return err
	}
	if region != "" {
		ring = duplicate.RegionRing(ring, userID, region)
	}
	out := clusterJSON{UserID: userID, RingID: ring.ID, Size: ring.Size, Members: nonNil(ring.Members),
		Links: make([]linkJSON, len(ring.Links)), Truncated: ring.Truncated}
	for i, l := range ring.Links {
		out.Links[i] = linkJSON{UserID: l.UserIDLow, DuplicateUserID: l.UserIDHigh, FirstSeenAt: l.FirstSeenAt,
			LastSeenAt: l.LastSeenAt, SeenCount: l.SeenCount, FirstSignatureID: l.FirstSignatureID,
			LastSignatureID: l.LastSignatureID, Regions: nonNil(l.Regions), LatestReview: toReviewPtr(l.LatestReview)}
	}
	if err := s.logRead(c, ringOf(out.RingID, out.Size), []string{userID}, out.Members, linkIDs(out.Links)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// handleCheck answers the stored outcome of one verification.
func (s *Server) handleCheck(c echo.Context) error {
	sig, err := pathParam(c, "signatureId")
	if err != nil {
		return err
	}
	if !duplicate.ValidSignatureID(sig) {
		return invalidID("signatureId", sig, duplicate.MaxSignatureIDLen)
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	check, err := st.Check(c.Request().Context(), sig)
	if err != nil {
		return err
	}
	if err := s.logRead(c, "", []string{check.UserID}, check.SimilarUserIDs, check.MatchedUserIDs); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toCheck(check))
}

type cursorJSON struct {
	DetectedAt time.Time `json:"t"`
	AlertID    string    `json:"id"`
}

func encodeCursor(p duplicate.AlertPosition) string {
	b, _ := json.Marshal(cursorJSON{DetectedAt: p.DetectedAt, AlertID: p.AlertID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (duplicate.AlertPosition, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 512 {
		return duplicate.AlertPosition{}, false
	}
	var cj cursorJSON
	if json.Unmarshal(b, &cj) != nil || cj.DetectedAt.IsZero() {
		return duplicate.AlertPosition{}, false
	}
	// uuid.Parse also takes forms PostgreSQL refuses (urn:uuid:..., {...}); the canonical form of
	// the id is what the query gets.
	id, err := uuid.Parse(cj.AlertID)
	if err != nil {
		return duplicate.AlertPosition{}, false
	}
	return duplicate.AlertPosition{DetectedAt: cj.DetectedAt, AlertID: id.String()}, true
}

// handleAlerts answers a page of alerts, oldest first, from ?since= (an RFC 3339 time; default: the
// beginning) or after ?cursor= (the nextCursor of the previous page, which wins over since),
// filtered by ?severity=, ?status= and ?userId= (see alertFilters).
func (s *Server) handleAlerts(c echo.Context) error {
	q := duplicate.AlertQuery{Limit: defaultAlertLimit}
	params := c.QueryParams()
	for _, name := range []string{"limit", "since", "cursor", "severity", "status", "userId"} {
		if v, given := params[name]; given && (len(v) != 1 || v[0] == "") {
			return invalid(name, "%s must be given once and not be empty", name)
		}
	}
	if raw := c.QueryParam("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxAlertLimit {
			return invalid("limit", "limit must be a whole number from 1 to %d", maxAlertLimit)
		}
		q.Limit = n
	}
	if raw := c.QueryParam("since"); raw != "" {
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(raw))
		if err != nil {
			return invalid("since", "since must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z")
		}
		q.Since = t
	}
	region, err := s.regionQuery(c)
	if err != nil {
		return err
	}
	q.Region = region
	var cursor *string
	if raw := c.QueryParam("cursor"); raw != "" {
		p, ok := decodeCursor(raw)
		if !ok {
			return invalid("cursor", "cursor must be a nextCursor value from a previous page")
		}
		q.After = &p
		cursor = &raw
	}
	if err := alertFilters(c, &q); err != nil {
		return err
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	want := q.Limit
	q.Limit++ // one more tells whether another page follows
	alerts, err := st.Alerts(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := alertsJSON{Alerts: []alertJSON{}, NextCursor: cursor}
	if len(alerts) > want {
		alerts = alerts[:want]
		out.HasMore = true
	}
	for _, a := range alerts {
		out.Alerts = append(out.Alerts, toAlert(a))
	}
	if n := len(alerts); n > 0 {
		next := encodeCursor(duplicate.AlertPosition{DetectedAt: alerts[n-1].DetectedAt, AlertID: alerts[n-1].AlertID})
		out.NextCursor = &next
	}
	if q.UserID != "" { // a person's alerts; the unfiltered list is the team's work queue
		if err := s.logRead(c, "", []string{q.UserID}, alertsIDs(out.Alerts)); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

type reconciliationJSON struct {
	reconcile.Counts
	RecoveredRatio float64 `json:"recoveredRatio"`
	AlertRatio     float64 `json:"alertRatio"`
}

// handleReconciliation answers the started verifications' counts.
func (s *Server) handleReconciliation(c echo.Context) error {
	if s.cfg.Reconciliation == nil {
		return newError(http.StatusServiceUnavailable, codeNotConfigured, "reconciliation is not configured")
	}
	counts, err := s.cfg.Reconciliation(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, reconciliationJSON{Counts: counts, RecoveredRatio: counts.RecoveredShare(),
		AlertRatio: s.cfg.ReconcileAlertRatio})
}
