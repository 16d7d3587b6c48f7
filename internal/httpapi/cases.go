package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// CaseStore is what the case routes (and the console's queue) read and write; postgres.Store
// implements it.
type CaseStore interface {
	Cases(ctx context.Context, q duplicate.CaseQuery) ([]duplicate.Case, error)
	Case(ctx context.Context, caseID string) (duplicate.CaseDetail, error)
	ClaimCase(ctx context.Context, caseID, who string, limit int) (string, error)
	AssignCase(ctx context.Context, caseID, assignee, by string, limit int) (string, error)
	AddCaseNote(ctx context.Context, caseID, author, text string) (duplicate.CaseEvent, error)
	SnoozeCase(ctx context.Context, caseID string, until time.Time, by string) (string, error)
}

// maxSnooze bounds how far a case may be snoozed: a case put away for longer is one to decide.
const maxSnooze = 30 * 24 * time.Hour

type caseJSON struct {
	CaseID            string     `json:"caseId"`
	RingID            *string    `json:"ringId"`
	Size              int        `json:"size"`
	NewAccounts       int        `json:"newAccounts"`
	OpenAlerts        int        `json:"openAlerts"`
	Regions           []string   `json:"regions"`
	Severity          string     `json:"severity"`
	Status            string     `json:"status"`
	Assignee          *string    `json:"assignee"`
	DueAt             time.Time  `json:"dueAt"`
	Overdue           bool       `json:"overdue"`
	OldestOpenAlertAt time.Time  `json:"oldestOpenAlertAt"`
	SnoozedUntil      *time.Time `json:"snoozedUntil"`
}

type caseNoteJSON struct {
	Author string    `json:"author"`
	Text   string    `json:"text"`
	At     time.Time `json:"at"`
}

type caseEventJSON struct {
	Kind string `json:"kind"`
	caseNoteJSON
}

type caseDetailJSON struct {
	caseJSON
	Members   []string        `json:"members"`
	Truncated bool            `json:"truncated"`
	SplitFrom *string         `json:"splitFrom"`
	Notes     []caseNoteJSON  `json:"notes"`
	History   []caseEventJSON `json:"history"`
}

type casesJSON struct {
	Cases      []caseJSON `json:"cases"`
	NextCursor *string    `json:"nextCursor"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// toCase is a queue row as the API answers it.
func toCase(c duplicate.Case) caseJSON {
	return caseJSON{CaseID: c.CaseID, RingID: optional(c.RingID), Size: c.Size, NewAccounts: c.NewAccounts,
		OpenAlerts: c.OpenAlerts, Regions: nonNil(c.Regions), Severity: c.Severity, Status: c.Status,
		Assignee: optional(c.Assignee), DueAt: c.DueAt, Overdue: c.Overdue, OldestOpenAlertAt: c.OldestOpenAlertAt,
		SnoozedUntil: c.SnoozedUntil}
}

func (s *Server) caseStore() (CaseStore, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// caseQuery reads the queue's filters but region (regionQuery's): status (open, in_review,
// closed), assignee (me, none or a name; me is actor), severity.
func caseQuery(get func(string) (string, error), actor string) (duplicate.CaseQuery, error) {
	var q duplicate.CaseQuery
	status, err := get("status")
	if err != nil {
		return q, err
	}
	switch status {
	case "":
	case duplicate.CaseOpen, duplicate.CaseInReview, duplicate.CaseClosed:
		q.Statuses = []string{status}
	default:
		return q, invalid("status", "status must be open, in_review or closed")
	}
	assignee, err := get("assignee")
	if err != nil {
		return q, err
	}
	switch assignee {
	case "":
	case "none":
		q.NoAssignee = true
	case "me":
		q.Assignee = actor
	default:
		if !duplicate.ValidUserID(assignee) {
			return q, invalidID("assignee", assignee, duplicate.MaxUserIDLen)
		}
		q.Assignee = assignee
	}
	if q.Severity, err = get("severity"); err != nil {
		return q, err
	}
	if q.Severity != "" && q.Severity != duplicate.SeverityNormal && q.Severity != duplicate.SeverityHigh {
		return q, invalid("severity", "severity must be normal or high")
	}
	return q, nil
}

func encodeCaseCursor(c duplicate.Case, asOf time.Time) string {
	b, _ := json.Marshal(duplicate.CaseCursor{Overdue: c.Overdue, High: c.Severity == duplicate.SeverityHigh,
		Oldest: c.OldestOpenAlertAt, CaseID: c.CaseID, AsOf: asOf})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCaseCursor(raw string) (*duplicate.CaseCursor, error) {
	var cur duplicate.CaseCursor
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(raw) > 512 || json.Unmarshal(b, &cur) != nil || cur.AsOf.IsZero() || len(cur.CaseID) != 36 {
		return nil, invalid("cursor", "cursor must be a nextCursor value from a previous page")
	}
	return &cur, nil
}

// handleCases answers a page of the case queue: overdue first, then high severity, then oldest.
// "Overdue" is judged at the first page's time for every page of one listing (the cursor keeps it).
func (s *Server) handleCases(c echo.Context) error {
	get := func(name string) (string, error) { return singleQuery(c, name) }
	q, err := caseQuery(get, keyName(c))
	if err != nil {
		return err
	}
	if q.Region, err = s.regionQuery(c); err != nil {
		return err
	}
	sort, err := get("sort")
	if err != nil {
		return err
	}
	if sort != "" && sort != "due" {
		return invalid("sort", "sort must be due (overdue first, then severity, then oldest; the only order)")
	}
	if q.Limit, err = listLimit(c); err != nil {
		return err
	}
	q.AsOf = time.Now()
	cursor, err := get("cursor")
	if err != nil {
		return err
	}
	if cursor != "" {
		if q.After, err = decodeCaseCursor(cursor); err != nil {
			return err
		}
		q.AsOf = q.After.AsOf
	}
	st, err := s.caseStore()
	if err != nil {
		return err
	}
	want := q.Limit
	q.Limit++
	cases, err := st.Cases(c.Request().Context(), q)
	if err != nil {
		return err
	}
	out := casesJSON{Cases: []caseJSON{}}
	if len(cases) > want {
		cases = cases[:want]
		next := encodeCaseCursor(cases[want-1], q.AsOf)
		out.NextCursor = &next
	}
	for _, k := range cases {
		out.Cases = append(out.Cases, toCase(k))
	}
	return c.JSON(http.StatusOK, out)
}

func caseIDParam(c echo.Context) (string, error) {
	id, err := pathParam(c, "caseId")
	if err != nil {
		return "", err
	}
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		return "", invalid("caseId", "caseId must be a UUID such as 8abc1463-cea7-4c06-9255-77650933ca25")
	}
	return strings.ToLower(id), nil
}

// toCaseDetail is a case as GET /v1/cases/{caseId} answers it.
func toCaseDetail(d duplicate.CaseDetail) caseDetailJSON {
	out := caseDetailJSON{caseJSON: toCase(d.Case), Members: nonNil(d.Members), Truncated: d.Truncated,
		SplitFrom: optional(d.SplitFrom), Notes: []caseNoteJSON{}, History: []caseEventJSON{}}
	for _, n := range d.Notes {
		out.Notes = append(out.Notes, caseNoteJSON{Author: n.Author, Text: n.Text, At: n.At})
	}
	for _, e := range d.History {
		out.History = append(out.History, caseEventJSON{Kind: e.Kind, caseNoteJSON: caseNoteJSON{Author: e.Author, Text: e.Text, At: e.At}})
	}
	return out
}

// handleCase answers one case with its ring's members (bounded as a ring's page is) and its notes
// and history. A case merged into another answers as that one (its caseId says which).
func (s *Server) handleCase(c echo.Context) error {
	id, err := caseIDParam(c)
	if err != nil {
		return err
	}
	st, err := s.caseStore()
	if err != nil {
		return err
	}
	d, err := st.Case(c.Request().Context(), id)
	if err != nil {
		return err
	}
	out := toCaseDetail(d)
	if err := s.logRead(c, d.RingID, out.Members); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// answerCase answers the case id after a change, as GET /v1/cases/{caseId} would.
func (s *Server) answerCase(c echo.Context, st CaseStore, id string) error {
	d, err := st.Case(c.Request().Context(), id)
	if err != nil {
		return err
	}
	out := toCaseDetail(d)
	if err := s.logRead(c, d.RingID, out.Members); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// handleClaimCase gives the case to the caller (the API key's name), within DOPPEL_CASE_CAP.
func (s *Server) handleClaimCase(c echo.Context) error {
	id, err := caseIDParam(c)
	if err != nil {
		return err
	}
	st, err := s.caseStore()
	if err != nil {
		return err
	}
	live, err := st.ClaimCase(c.Request().Context(), id, keyName(c), s.cfg.CaseCap)
	if err != nil {
		return err
	}
	return s.answerCase(c, st, live)
}

// caseActRequest reads what an act on a case with a body starts with: the caseId of the path and
// the JSON body (a 400 or 415 naming the problem otherwise).
func caseActRequest[T any](c echo.Context) (string, T, error) {
	var req T
	id, err := caseIDParam(c)
	if err != nil {
		return "", req, err
	}
	return id, req, decodeJSON(c.Request(), &req, maxJSONBody)
}

type assignRequest struct {
	Assignee *string `json:"assignee"`
}

// handleAssignCase gives the case to a named analyst (scope assign: a lead), within the cap.
func (s *Server) handleAssignCase(c echo.Context) error {
	id, req, err := caseActRequest[assignRequest](c)
	if err != nil {
		return err
	}
	if req.Assignee == nil {
		return invalid("assignee", "assignee is required: the name of the analyst to give the case to")
	}
	if !duplicate.ValidUserID(*req.Assignee) {
		return invalidID("assignee", *req.Assignee, duplicate.MaxUserIDLen)
	}
	st, err := s.caseStore()
	if err != nil {
		return err
	}
	live, err := st.AssignCase(c.Request().Context(), id, *req.Assignee, keyName(c), s.cfg.CaseCap)
	if err != nil {
		return err
	}
	return s.answerCase(c, st, live)
}

type noteRequest struct {
	Text *string `json:"text"`
}

// validNote checks a case note: text of 1 to duplicate.MaxNoteLen characters without NUL.
func validNote(text string) bool {
	return strings.TrimSpace(text) != "" && utf8.ValidString(text) && !strings.ContainsRune(text, 0) &&
		utf8.RuneCountInString(text) <= duplicate.MaxNoteLen
}

// handleCaseNote appends a note, by the caller, to the case's history.
func (s *Server) handleCaseNote(c echo.Context) error {
	id, req, err := caseActRequest[noteRequest](c)
	if err != nil {
		return err
	}
	if req.Text == nil || !validNote(*req.Text) {
		return invalid("text", "text is required: 1 to %d characters without NUL", duplicate.MaxNoteLen)
	}
	st, err := s.caseStore()
	if err != nil {
		return err
	}
	n, err := st.AddCaseNote(c.Request().Context(), id, keyName(c), *req.Text)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, caseNoteJSON{Author: n.Author, Text: n.Text, At: n.At})
}

type snoozeRequest struct {
	Until *string `json:"until"`
}

// parseSnooze reads a snooze's end: an RFC 3339 time in the future, at most maxSnooze away.
func parseSnooze(raw string, now time.Time) (time.Time, error) {
	until, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(raw))
	if err != nil {
		return time.Time{}, invalid("until", "until must be an RFC 3339 time, e.g. 2026-11-25T09:00:00Z")
	}
	if !until.After(now) || until.Sub(now) > maxSnooze {
		return time.Time{}, invalid("until", "until must be in the future and at most %d days away", int(maxSnooze.Hours()/24))
	}
	return until, nil
}

// handleSnoozeCase takes the case off the queue until the given time.
func (s *Server) handleSnoozeCase(c echo.Context) error {
	id, req, err := caseActRequest[snoozeRequest](c)
	if err != nil {
		return err
	}
	if req.Until == nil {
		return invalid("until", "until is required: an RFC 3339 time")
	}
	until, err := parseSnooze(*req.Until, time.Now())
	if err != nil {
		return err
	}
	st, err := s.caseStore()
	if err != nil {
		return err
	}
	live, err := st.SnoozeCase(c.Request().Context(), id, until, keyName(c))
	if err != nil {
		return err
	}
	return s.answerCase(c, st, live)
}
