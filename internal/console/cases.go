package console

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// CaseStore is the case work the console does; postgres.Store implements it.
type CaseStore interface {
	Cases(ctx context.Context, q duplicate.CaseQuery) ([]duplicate.Case, error)
	Case(ctx context.Context, caseID string) (duplicate.CaseDetail, error)
	CaseOfRing(ctx context.Context, ringID string) (string, error)
	ClaimCase(ctx context.Context, caseID, who string, limit int) (string, error)
	AssignCase(ctx context.Context, caseID, assignee, by string, limit int) (string, error)
	NextCase(ctx context.Context, who string, limit int) (string, error)
	AddCaseNote(ctx context.Context, caseID, author, text string) (duplicate.CaseEvent, error)
	SnoozeCase(ctx context.Context, caseID string, until time.Time, by string) (string, error)
}

// Bounds of the exports: a CSV is a working file, not a dump of the database.
const (
	maxQueueExport = 5_000
	maxAuditExport = 20_000
)

type snoozeChoice struct {
	Hours int
	Label string
}

var snoozeChoices = []snoozeChoice{{1, "1 hour"}, {4, "4 hours"}, {24, "1 day"}, {72, "3 days"}}

type queueData struct {
	Status, Region, Assignee, Severity string
	Cases                              []duplicate.Case
	Next                               string
	First                              bool
	Error                              string
	CSV                                string
	Snoozes                            []snoozeChoice
}

// caseFilters reads the queue's filters (status, region, assignee me|none|name, severity) into q.
func caseFilters(v url.Values, me string) (queueData, duplicate.CaseQuery, string) {
	d := queueData{Status: v.Get("status"), Region: strings.TrimSpace(v.Get("region")), Assignee: strings.TrimSpace(v.Get("assignee")),
		Severity: v.Get("severity"), First: v.Get("after") == "", Snoozes: snoozeChoices}
	var q duplicate.CaseQuery
	switch d.Status {
	case "":
	case duplicate.CaseOpen, duplicate.CaseInReview, duplicate.CaseClosed:
		q.Statuses = []string{d.Status}
	default:
		return d, q, "Status must be open, in review or closed."
	}
	if d.Region != "" && !duplicate.ValidUserID(d.Region) {
		return d, q, "That is not a region."
	}
	q.Region = d.Region
	switch d.Assignee {
	case "":
	case "none":
		q.NoAssignee = true
	case "me":
		q.Assignee = me
	default:
		if !duplicate.ValidUserID(d.Assignee) {
			return d, q, "That is not an analyst's name."
		}
		q.Assignee = d.Assignee
	}
	if d.Severity != "" && d.Severity != duplicate.SeverityNormal && d.Severity != duplicate.SeverityHigh {
		return d, q, "Severity must be normal or high."
	}
	q.Severity = d.Severity
	return d, q, ""
}

func (d queueData) filters() url.Values {
	v := url.Values{}
	for k, val := range map[string]string{"status": d.Status, "region": d.Region, "assignee": d.Assignee, "severity": d.Severity} {
		if val != "" {
			v.Set(k, val)
		}
	}
	return v
}

// handleQueue shows the case queue: one row per ring with work, overdue first, then high severity,
// then oldest.
func (c *Console) handleQueue(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	v := r.URL.Query()
	d, q, problem := caseFilters(v, s.name)
	d.Error = problem
	q.AsOf, q.Limit = c.now(), queuePageSize+1
	if after := v.Get("after"); after != "" && d.Error == "" {
		cur, ok := parseCaseCursor(after)
		if !ok {
			d.Error = "That page link is not valid any more; start from the first page."
		}
		q.After = cur
		if cur != nil {
			q.AsOf = cur.AsOf
		}
	}
	f := d.filters()
	d.CSV = "/console/queue.csv"
	if len(f) > 0 {
		d.CSV += "?" + f.Encode()
	}
	if d.Error != "" {
		c.render(w, r, http.StatusBadRequest, "queue", page{Title: "Queue", Data: d})
		return
	}
	cases, err := c.cfg.Store.Cases(r.Context(), q)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if len(cases) > queuePageSize {
		cases = cases[:queuePageSize]
		f.Set("after", caseCursor(cases[queuePageSize-1], q.AsOf))
		d.Next = "/console/queue?" + f.Encode()
	}
	for i := range cases {
		cases[i].Regions = c.regionNames(cases[i].Regions)
	}
	d.Cases = cases
	c.render(w, r, http.StatusOK, "queue", page{Title: "Queue", Data: d})
}

// caseCursor is the sort key of a page's last case: overdue~high~oldest~caseId~asOf.
func caseCursor(k duplicate.Case, asOf time.Time) string {
	return fmt.Sprintf("%t~%t~%s~%s~%s", k.Overdue, k.Severity == duplicate.SeverityHigh,
		k.OldestOpenAlertAt.UTC().Format(time.RFC3339Nano), k.CaseID, asOf.UTC().Format(time.RFC3339Nano))
}

func parseCaseCursor(s string) (*duplicate.CaseCursor, bool) {
	parts := strings.Split(s, "~")
	if len(parts) != 5 {
		return nil, false
	}
	overdue, err1 := strconv.ParseBool(parts[0])
	high, err2 := strconv.ParseBool(parts[1])
	oldest, err3 := time.Parse(time.RFC3339Nano, parts[2])
	asOf, err4 := time.Parse(time.RFC3339Nano, parts[4])
	if errors.Join(err1, err2, err3, err4) != nil || len(parts[3]) != 36 {
		return nil, false
	}
	return &duplicate.CaseCursor{Overdue: overdue, High: high, Oldest: oldest, CaseID: parts[3], AsOf: asOf}, true
}

func (c *Console) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// recordExport records an export in the access log: who (the session's name) and what (the
// export and its filters), with the userIds it holds. Without a record there is no export.
func (c *Console) recordExport(w http.ResponseWriter, r *http.Request, what string, userIDs ...[]string) bool {
	if c.cfg.AccessLog == nil {
		return true
	}
	ids, n := accesslog.Shown(userIDs...)
	err := c.cfg.AccessLog.Record(r.Context(), accesslog.Entry{At: c.now(), Actor: sessionOf(r.Context()).name,
		Via: accesslog.ViaConsole, What: what, UserIDs: ids, UserCount: n})
	if err == nil {
		return true
	}
	if !errors.Is(err, accesslog.ErrUnavailable) {
		c.log.Error("console: record the export", "error", err)
	}
	w.Header().Set("Retry-After", "5")
	c.fail(w, r, http.StatusServiceUnavailable, "This export cannot be recorded in the access log right now, so it is not made. Try again in a moment.")
	return false
}

// exportWhat names an export in the access log: its route and the filters it was made with.
func exportWhat(r *http.Request, filters url.Values) string {
	if len(filters) == 0 {
		return r.Pattern
	}
	return r.Pattern + "?" + filters.Encode()
}

func csvHeaders(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.Header().Set("Cache-Control", "no-store")
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet (a userId "=cmd|..." is data).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// handleQueueCSV exports the queue as the filters select it (at most maxQueueExport cases).
func (c *Console) handleQueueCSV(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	d, q, problem := caseFilters(r.URL.Query(), s.name)
	if problem != "" {
		c.fail(w, r, http.StatusBadRequest, problem)
		return
	}
	q.AsOf, q.Limit = c.now(), maxQueueExport
	cases, err := c.cfg.Store.Cases(r.Context(), q)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if !c.recordExport(w, r, exportWhat(r, d.filters())) {
		return
	}
	csvHeaders(w, "doppel-queue-"+q.AsOf.UTC().Format("2006-01-02")+".csv")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"caseId", "ringId", "size", "newAccounts", "openAlerts", "regions", "severity", "status",
		"assignee", "dueAt", "overdue", "oldestOpenAlertAt"})
	for _, k := range cases {
		_ = cw.Write([]string{k.CaseID, k.RingID, strconv.Itoa(k.Size), strconv.Itoa(k.NewAccounts), strconv.Itoa(k.OpenAlerts),
			csvSafe(strings.Join(k.Regions, " ")), k.Severity, k.Status, csvSafe(k.Assignee), k.DueAt.Format(time.RFC3339),
			strconv.FormatBool(k.Overdue), k.OldestOpenAlertAt.Format(time.RFC3339)})
	}
	cw.Flush()
	c.log.Info("console: queue exported", "cases", len(cases), "by", s.name)
}

// handleAuditCSV exports the review history as the audit page's filters select it, newest first
// (at most maxAuditExport reviews).
func (c *Console) handleAuditCSV(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := duplicate.ReviewQuery{UserID: strings.TrimSpace(v.Get("user")), Reviewer: strings.TrimSpace(v.Get("reviewer")), Limit: 500}
	filters := url.Values{}
	for k, val := range map[string]string{"user": q.UserID, "reviewer": q.Reviewer, "since": v.Get("since")} {
		if val != "" {
			filters.Set(k, val)
		}
	}
	if since := v.Get("since"); since != "" {
		t, err := time.Parse("2006-01-02", since)
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, "The date must look like 2026-11-25.")
			return
		}
		q.Since = t
	}
	if (q.UserID != "" && !duplicate.ValidUserID(q.UserID)) || (q.Reviewer != "" && !duplicate.ValidUserID(q.Reviewer)) {
		c.fail(w, r, http.StatusBadRequest, "User and reviewer must be ids without control characters.")
		return
	}
	var reviews []duplicate.Review
	for len(reviews) < maxAuditExport {
		page, err := c.cfg.Store.Reviews(r.Context(), q)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		reviews = append(reviews, page...)
		if len(page) < q.Limit {
			break
		}
		q.Before = page[len(page)-1].ID
	}
	reviews = reviews[:min(len(reviews), maxAuditExport)]
	if !c.recordExport(w, r, exportWhat(r, filters), []string{q.UserID}, reviewUsers(reviews)) {
		return
	}
	csvHeaders(w, "doppel-audit-"+c.now().UTC().Format("2006-01-02")+".csv")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"reviewId", "reviewedAt", "reviewedBy", "userId", "duplicateUserId", "decision", "note"})
	for _, rv := range reviews {
		_ = cw.Write([]string{strconv.FormatInt(rv.ID, 10), rv.ReviewedAt.Format(time.RFC3339), csvSafe(rv.ReviewedBy),
			csvSafe(rv.UserID), csvSafe(rv.DuplicateUserID), string(rv.Decision), csvSafe(rv.Note)})
	}
	cw.Flush()
	c.log.Info("console: audit exported", "reviews", len(reviews), "by", sessionOf(r.Context()).name)
}

// ringCase returns the case of ring ringID with its history, nil when it has none.
func (c *Console) ringCase(ctx context.Context, ringID string) (*duplicate.CaseDetail, error) {
	id, err := c.cfg.Store.CaseOfRing(ctx, ringID)
	if err != nil || id == "" {
		return nil, err
	}
	d, err := c.cfg.Store.Case(ctx, id)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// handleCase opens a case: the page of the ring it follows now (a merge or split may have changed
// the ring's id since the link was made).
func (c *Console) handleCase(w http.ResponseWriter, r *http.Request) {
	d, err := c.cfg.Store.Case(r.Context(), r.PathValue("caseId"))
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if d.RingID == "" {
		c.fail(w, r, http.StatusNotFound, "This case's ring has dissolved: every link in it was cleared.")
		return
	}
	http.Redirect(w, r, "/console/rings/"+url.PathEscape(d.RingID), http.StatusSeeOther)
}

// caseFailed shows a case act's refusal (the cap, a case another holds, nothing waiting) as the
// next page's message, on the page the form came from.
func (c *Console) caseFailed(w http.ResponseWriter, r *http.Request, err error, fallback string) {
	switch duplicate.ErrorCode(err) {
	case duplicate.ECASECAP, duplicate.ECASECLAIMED, duplicate.ECASECLOSED, duplicate.ENOCASE:
		var de *duplicate.Error
		errors.As(err, &de)
		c.setFlash(r, sessionOf(r.Context()), de.Message)
		http.Redirect(w, r, backTo(r, fallback), http.StatusSeeOther)
	default:
		c.failErr(w, r, err)
	}
}

// handleNextCase claims the top unclaimed case and opens it.
func (c *Console) handleNextCase(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	id, err := c.cfg.Store.NextCase(r.Context(), s.name, c.cfg.CaseCap)
	if err != nil {
		c.caseFailed(w, r, err, "/console/queue")
		return
	}
	c.log.Info("console: next case claimed", "case_id", id, "by", s.name)
	http.Redirect(w, r, "/console/cases/"+id, http.StatusSeeOther)
}

func (c *Console) handleClaimCase(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	id, err := c.cfg.Store.ClaimCase(r.Context(), r.PathValue("caseId"), s.name, c.cfg.CaseCap)
	if err != nil {
		c.caseFailed(w, r, err, "/console/queue")
		return
	}
	c.setFlash(r, s, "The case is yours.")
	http.Redirect(w, r, backTo(r, "/console/cases/"+id), http.StatusSeeOther)
}

func (c *Console) handleAssignCase(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	to := strings.TrimSpace(r.PostFormValue("assignee"))
	if !duplicate.ValidUserID(to) {
		c.fail(w, r, http.StatusBadRequest, "Name the analyst to give the case to.")
		return
	}
	id, err := c.cfg.Store.AssignCase(r.Context(), r.PathValue("caseId"), to, s.name, c.cfg.CaseCap)
	if err != nil {
		c.caseFailed(w, r, err, "/console/queue")
		return
	}
	c.setFlash(r, s, "Assigned to "+to+".")
	http.Redirect(w, r, backTo(r, "/console/cases/"+id), http.StatusSeeOther)
}

func (c *Console) handleCaseNote(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	text := strings.TrimSpace(r.PostFormValue("text"))
	if text == "" || utf8.RuneCountInString(text) > duplicate.MaxNoteLen || strings.ContainsRune(text, 0) {
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("A note is 1 to %d characters.", duplicate.MaxNoteLen))
		return
	}
	id := r.PathValue("caseId")
	if _, err := c.cfg.Store.AddCaseNote(r.Context(), id, s.name, text); err != nil {
		c.failErr(w, r, err)
		return
	}
	c.setFlash(r, s, "Note added.")
	http.Redirect(w, r, backTo(r, "/console/cases/"+id), http.StatusSeeOther)
}

func (c *Console) handleSnoozeCase(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r.Context())
	hours, err := strconv.Atoi(r.PostFormValue("hours"))
	if err != nil || hours < 1 || hours > 30*24 {
		c.fail(w, r, http.StatusBadRequest, "Choose how long to snooze the case.")
		return
	}
	until := c.now().Add(time.Duration(hours) * time.Hour)
	if _, err := c.cfg.Store.SnoozeCase(r.Context(), r.PathValue("caseId"), until, s.name); err != nil {
		c.caseFailed(w, r, err, "/console/queue")
		return
	}
	c.setFlash(r, s, "Snoozed until "+until.UTC().Format("2006-01-02 15:04 UTC")+".")
	http.Redirect(w, r, "/console/queue", http.StatusSeeOther)
}
