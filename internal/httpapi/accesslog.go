package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// AccessLog records the reads of a person's data; accesslog.Writer implements it.
type AccessLog interface {
	// Record queues an entry, or returns accesslog.ErrUnavailable when it cannot.
	Record(ctx context.Context, e accesslog.Entry) error
	// Flush returns once every entry recorded before it is stored.
	Flush(ctx context.Context) error
}

// PrivacyStore is what the access-log and export routes read; postgres.Store implements it.
type PrivacyStore interface {
	AccessLog(ctx context.Context, q accesslog.Query) ([]accesslog.Entry, error)
	SubjectExport(ctx context.Context, userID string) (duplicate.SubjectExport, error)
}

// codeAccessLogUnavailable answers a read that could not be recorded in the access log.
const codeAccessLogUnavailable = "access_log_unavailable"

// Access-log page sizes.
const (
	defaultAccessLogLimit = 100
	maxAccessLogLimit     = 500
)

// flushTimeout bounds the wait for the access log's queue to be written before the access log or
// an export is read.
const flushTimeout = 5 * time.Second

// logRead records that the answer about to be sent shows userIDs (the one asked about first) and
// ringID. A read that cannot be recorded is refused with 503 and the answer is not sent: an access
// log that silently misses reads protects no one. Without an access log configured it does nothing.
func (s *Server) logRead(c echo.Context, ringID string, userIDs ...[]string) error {
	if s.cfg.AccessLog == nil {
		return nil
	}
	ids, n := accesslog.Shown(userIDs...)
	err := s.cfg.AccessLog.Record(c.Request().Context(), accesslog.Entry{At: time.Now(), Actor: keyName(c), Via: accesslog.ViaAPI,
		What: c.Request().Method + " " + openAPIPath(c.Path()), UserIDs: ids, UserCount: n, RingID: ringID})
	if errors.Is(err, accesslog.ErrUnavailable) {
		e := newError(http.StatusServiceUnavailable, codeAccessLogUnavailable,
			"this read cannot be recorded in the access log right now, so it is not answered; retry later")
		e.header = map[string]string{"Retry-After": "5"}
		return e
	}
	return err
}

// flushAccessLog writes the queued entries before the access log is read, so that the answer
// includes the reads made up to now. A flush that does not finish in time only makes the answer
// miss the last moments' reads, which a later call shows.
func (s *Server) flushAccessLog(ctx context.Context) {
	if s.cfg.AccessLog == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if err := s.cfg.AccessLog.Flush(ctx); err != nil {
		s.log.Warn("access log: not every queued entry was written before it was read", "error", err)
	}
}

// The ids each answer shows, as logRead takes them.

func linkedIDs(out duplicatesJSON) []string {
	ids := make([]string, len(out.Duplicates))
	for i, d := range out.Duplicates {
		ids[i] = d.UserID
	}
	return ids
}

func linkIDs(links []linkJSON) []string {
	ids := make([]string, 0, 2*len(links))
	for _, l := range links {
		ids = append(ids, l.UserID, l.DuplicateUserID)
	}
	return ids
}

func alertIDs(a alertJSON) []string {
	ids := append([]string{a.UserID}, a.MatchedUserIDs...)
	ids = append(ids, a.NewMatchedUserIDs...)
	return append(ids, a.MatchedFailedUserIDs...)
}

func alertsIDs(alerts []alertJSON) []string {
	var ids []string
	for _, a := range alerts {
		ids = append(ids, alertIDs(a)...)
	}
	return ids
}

func reviewsIDs(reviews []reviewJSON) []string {
	ids := make([]string, 0, 2*len(reviews))
	for _, r := range reviews {
		ids = append(ids, r.UserID, r.DuplicateUserID)
	}
	return ids
}

// ringOf returns the ring id an answer shows: none for a ring of one.
func ringOf(id string, size int) string {
	if size < 2 {
		return ""
	}
	return id
}

type accessLogEntryJSON struct {
	EntryID   int64     `json:"entryId"`
	ReadAt    time.Time `json:"readAt"`
	Actor     string    `json:"actor"`
	Via       string    `json:"via"`
	What      string    `json:"what"`
	UserIDs   []string  `json:"userIds"`
	UserCount int       `json:"userCount"`
	RingID    *string   `json:"ringId"`
}

type accessLogJSON struct {
	Entries    []accessLogEntryJSON `json:"entries"`
	NextCursor *string              `json:"nextCursor"`
	HasMore    bool                 `json:"hasMore"`
}

type accessLogCursorJSON struct {
	At time.Time `json:"t"`
	ID int64     `json:"id"`
}

func encodeAccessLogCursor(p accesslog.Position) string {
	b, _ := json.Marshal(accessLogCursorJSON{At: p.At, ID: p.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeAccessLogCursor(raw string) (accesslog.Position, bool) {
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(raw) > 256 {
		return accesslog.Position{}, false
	}
	var cj accessLogCursorJSON
	if json.Unmarshal(b, &cj) != nil || cj.At.IsZero() || cj.ID < 1 {
		return accesslog.Position{}, false
	}
	return accesslog.Position{At: cj.At, ID: cj.ID}, true
}

// actorPattern is the shape of an API key's name (DOPPEL_API_KEYS), which every actor is.
var actorPattern = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// accessLogQuery reads the access log's query parameters, strictly.
func accessLogQuery(c echo.Context) (accesslog.Query, error) {
	q := accesslog.Query{Limit: defaultAccessLogLimit}
	var err error
	if q.UserID, err = singleQuery(c, "userId"); err != nil {
		return q, err
	}
	if q.UserID != "" && !duplicate.ValidUserID(q.UserID) {
		return q, invalidID("userId", q.UserID, duplicate.MaxUserIDLen)
	}
	if q.RingID, err = singleQuery(c, "ringId"); err != nil {
		return q, err
	}
	if q.RingID != "" && !ringIDPattern.MatchString(q.RingID) {
		return q, invalid("ringId", "ringId must be ring_ and 16 lowercase hex digits")
	}
	if q.Actor, err = singleQuery(c, "actor"); err != nil {
		return q, err
	}
	if q.Actor != "" && !actorPattern.MatchString(q.Actor) {
		return q, invalid("actor", "actor must be an API key's name: 1 to 64 letters, digits, '.', '_', '@' or '-'")
	}
	since, err := singleQuery(c, "since")
	if err != nil {
		return q, err
	}
	if since != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, strings.TrimSpace(since)); err != nil {
			return q, invalid("since", "since must be an RFC 3339 time, e.g. 2026-11-25T00:00:00Z")
		}
	}
	limit, err := singleQuery(c, "limit")
	if err != nil {
		return q, err
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > maxAccessLogLimit {
			return q, invalid("limit", "limit must be a whole number from 1 to %d", maxAccessLogLimit)
		}
		q.Limit = n
	}
	cursor, err := singleQuery(c, "cursor")
	if err != nil {
		return q, err
	}
	if cursor != "" {
		p, ok := decodeAccessLogCursor(cursor)
		if !ok {
			return q, invalid("cursor", "cursor must be a nextCursor value from a previous page")
		}
		q.Before = &p
	}
	return q, nil
}

// handleAccessLog answers who read what: a page of access-log entries, newest first, filtered by
// ?userId= (entries whose answer showed that user), ?ringId=, ?actor= and ?since=. Reading the log
// is itself a read of people's data, and is recorded like any other.
func (s *Server) handleAccessLog(c echo.Context) error {
	q, err := accessLogQuery(c)
	if err != nil {
		return err
	}
	st, err := s.store()
	if err != nil {
		return err
	}
	s.flushAccessLog(c.Request().Context())
	want := q.Limit
	q.Limit++ // one more tells whether another page follows
	entries, err := st.AccessLog(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := accessLogJSON{Entries: []accessLogEntryJSON{}}
	if len(entries) > want {
		entries = entries[:want]
		out.HasMore = true
		last := entries[want-1]
		next := encodeAccessLogCursor(accesslog.Position{At: last.At, ID: last.ID})
		out.NextCursor = &next
	}
	shown := [][]string{{q.UserID}}
	for _, e := range entries {
		j := accessLogEntryJSON{EntryID: e.ID, ReadAt: e.At, Actor: e.Actor, Via: e.Via, What: e.What,
			UserIDs: nonNil(e.UserIDs), UserCount: e.UserCount}
		if e.RingID != "" {
			j.RingID = &e.RingID
		}
		out.Entries = append(out.Entries, j)
		shown = append(shown, e.UserIDs)
	}
	if err := s.logRead(c, q.RingID, shown...); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
