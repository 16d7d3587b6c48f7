package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
)

// Page sizes.
const (
	queuePageSize = 25
	pairsPageSize = 50
	auditPageSize = 50
)

// page is what every template gets: the layout's parts and the page's own Data.
type page struct {
	Title   string
	Nav     string
	Session *session
	Flash   string
	Data    any
}

var funcs = template.FuncMap{
	"ago":      ago,
	"due":      due,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"decision": decisionLabel,
	"short":    shorten,
	"shown":    visibleID,
	"can":      func(s *session, scope string) bool { return s != nil && s.can(scope) },
	"holdText": holdText,
	"add":      func(a, b int) int { return a + b },
	"outcome":  outcomeLabel,
	"decisions": func() []duplicate.Decision {
		return duplicate.Decisions
	},
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "signedin", "error", "overview", "queue", "alerts", "ring", "users", "audit", "members", "analysts"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html",
			"templates/*.partial.html")
		if err != nil {
			return nil, fmt.Errorf("console: parse %s page: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a page; it is rendered into a buffer first, so that a template error is a clean
// 500 instead of half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if p.Session == nil {
		p.Session = sessionOf(r.Context())
	}
	if p.Nav == "" {
		p.Nav = name
	}
	if p.Flash == "" && p.Session != nil && p.Session.flash != "" {
		var err error
		if p.Flash, err = c.cfg.Store.TakeSessionFlash(r.Context(), p.Session.id); err != nil {
			c.log.Warn("console: read the page's message", "error", err) // the page is still worth showing
		}
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.log.Error("console: render page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// setFlash leaves msg for the session's next page; a message that cannot be kept is only logged:
// what it reports is already done.
func (c *Console) setFlash(r *http.Request, s *session, msg string) {
	if err := c.cfg.Store.SetSessionFlash(r.Context(), s.id, msg); err != nil {
		c.log.Warn("console: keep the next page's message", "error", err)
	}
}

// fail shows an error page with a message safe to show.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Nav: "none", Data: msg})
}

// failErr maps a store error to a page: the domain's not-found and invalid-input errors say what
// was wrong; anything else is logged and shown as an internal error.
func (c *Console) failErr(w http.ResponseWriter, r *http.Request, err error) {
	var de *duplicate.Error
	switch {
	case errors.As(err, &de) && de.Code == duplicate.ENOTFOUND:
		c.fail(w, r, http.StatusNotFound, de.Message)
	case errors.As(err, &de) && de.Code == duplicate.EINVALID:
		c.fail(w, r, http.StatusBadRequest, de.Message)
	default:
		c.log.Error("console", "path", r.URL.Path, "error", err)
		c.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side; it has been logged. Try again.")
	}
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// due says when a case is due: "in 5 h", or "overdue 2 h" once past.
func due(t time.Time) string {
	d := time.Until(t)
	past := d < 0
	if past {
		d = -d
	}
	var s string
	switch {
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Hours()))
	default:
		s = fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	if past {
		return "overdue " + s
	}
	return "in " + s
}

func outcomeLabel(o duplicate.Outcome) string {
	switch o {
	case duplicate.OutcomeDuplicatesFound:
		return "duplicates found"
	case duplicate.OutcomeNoDuplicates:
		return "no duplicates"
	case duplicate.OutcomeNotPassed:
		return "not passed"
	}
	return string(o)
}

// age says how long ago t was, to the minute: "3 d 4 h", "5 h 12 min", "7 min".
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "< 1 min"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}

func decisionLabel(d string) string {
	switch duplicate.Decision(d) {
	case duplicate.DecisionConfirmedFraud:
		return "Confirmed fraud"
	case duplicate.DecisionFalsePositive:
		return "False positive"
	case duplicate.DecisionSamePerson:
		return "Same person"
	}
	return "Undecided"
}

// --- Overview ---

type bar struct {
	X, Y, W, H float64
	Day        string
	Count      int
	Label      bool
}

// caseCount is one of the overview's counts of open cases, with the queue it opens.
type caseCount struct {
	// Key names the count in the page (data-case), for tests and scripts.
	Key   string
	Label string
	Count string
	URL   string
	// Attention marks a count that needs someone: overdue or high-severity cases.
	Attention bool
}

type overviewData struct {
	duplicate.Overview
	// Cases are the open cases' counts: total, overdue, high severity, oldest; ByRegion by region.
	Cases           []caseCount
	ByRegion        []caseCount
	CasesCapped     int
	SLA             string
	DeadLetters     string
	Bars            []bar
	ChartMax        int
	ChartW, ChartH  int
	AlertsLast30    int
	FirstDay, Today string
}

func (c *Console) handleOverview(w http.ResponseWriter, r *http.Request) {
	o, err := c.cfg.Store.Overview(r.Context(), c.cfg.Now())
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := overviewData{Overview: o, DeadLetters: "not configured", ChartW: 1100, ChartH: 220}
	now := c.cfg.Now()
	cases, err := c.cfg.Store.OpenCases(r.Context(), now, c.cfg.ReviewSLA)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.addCases(&d, cases, now)
	if c.cfg.DeadLetters != nil {
		if n, err := c.cfg.DeadLetters(r.Context()); err != nil {
			c.log.Warn("console: count dead letters", "error", err)
			d.DeadLetters = "unavailable"
		} else {
			d.DeadLetters = strconv.FormatInt(n, 10)
		}
	}
	d.ChartMax = 1
	for _, day := range o.AlertsPerDay {
		d.ChartMax = max(d.ChartMax, day.Count)
		d.AlertsLast30 += day.Count
	}
	const top, bottom = 10, 24
	slot := float64(d.ChartW) / float64(max(len(o.AlertsPerDay), 1))
	for i, day := range o.AlertsPerDay {
		h := float64(d.ChartH-top-bottom) * float64(day.Count) / float64(d.ChartMax)
		d.Bars = append(d.Bars, bar{X: float64(i)*slot + 2, W: slot - 4, H: h, Y: float64(d.ChartH-bottom) - h,
			Day: day.Day.Format("Jan 2"), Count: day.Count, Label: i%7 == 1 || i == len(o.AlertsPerDay)-1})
	}
	if n := len(o.AlertsPerDay); n > 0 {
		d.FirstDay, d.Today = o.AlertsPerDay[0].Day.Format("2 Jan"), o.AlertsPerDay[n-1].Day.Format("2 Jan")
	}
	c.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Data: d})
}

// addCases fills in the overview's open cases, each count linking to the queue filtered to it.
// The links name the filters the case queue takes (region, severity, sort=due).
func (c *Console) addCases(d *overviewData, cases duplicate.OpenCases, now time.Time) {
	n := func(v int) string {
		if cases.Capped {
			return strconv.Itoa(v) + "+"
		}
		return strconv.Itoa(v)
	}
	d.SLA = durationText(c.cfg.ReviewSLA)
	if cases.Capped {
		d.CasesCapped = cases.Read
	}
	oldest := "none open"
	if !cases.OldestOpenAlertAt.IsZero() {
		oldest = age(now, cases.OldestOpenAlertAt)
	}
	d.Cases = []caseCount{
		{Key: "open", Label: "open cases", Count: n(cases.Total), URL: "/console/queue", Attention: cases.Total > 0},
		{Key: "overdue", Label: "overdue (open longer than " + d.SLA + ")", Count: n(cases.Overdue), URL: "/console/queue?sort=due", Attention: cases.Overdue > 0},
		{Key: "high", Label: "high severity", Count: n(cases.HighSeverity), URL: "/console/queue?severity=high", Attention: cases.HighSeverity > 0},
		{Key: "oldest", Label: "oldest case waiting", Count: oldest, URL: "/console/queue?sort=due"},
	}
	for _, rc := range cases.ByRegion {
		name := rc.Region
		if name == duplicate.DefaultRegion && c.cfg.Region != "" {
			name = c.cfg.Region
		}
		d.ByRegion = append(d.ByRegion, caseCount{Key: "region-" + rc.Region, Label: name, Count: n(rc.Count),
			URL: "/console/queue?" + url.Values{"region": {rc.Region}}.Encode()})
	}
}

// durationText writes a setting's duration as people do: "24h", "90 min", "45s".
func durationText(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}

// --- Queue ---

type alertsData struct {
	Severity, Status, UserID string
	Alerts                   []duplicate.StoredAlert
	Region                   string
	Next                     string
	First                    bool
	Error                    string
}

// queueCursor is the position after the last alert of a page: its time and id.
func queueCursor(a duplicate.StoredAlert) string {
	return a.DetectedAt.UTC().Format(time.RFC3339Nano) + "~" + a.AlertID
}

func parseQueueCursor(s string) (*duplicate.AlertPosition, bool) {
	at, id, ok := strings.Cut(s, "~")
	if !ok {
		return nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil || uuid.Validate(id) != nil {
		return nil, false
	}
	return &duplicate.AlertPosition{DetectedAt: t, AlertID: id}, true
}

func (c *Console) handleAlerts(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	d := alertsData{Severity: v.Get("severity"), Status: v.Get("status"), UserID: strings.TrimSpace(v.Get("user")),
		Region: c.cfg.Region, First: v.Get("after") == ""}
	if !v.Has("status") {
		d.Status = duplicate.AlertOpen
	}
	q := duplicate.AlertQuery{NewestFirst: true, Limit: queuePageSize + 1, Severity: d.Severity, UserID: d.UserID}
	if d.Status != "all" {
		q.Status = d.Status
	}
	switch {
	case q.Severity != "" && q.Severity != duplicate.SeverityNormal && q.Severity != duplicate.SeverityHigh:
		d.Error = "Severity must be normal or high."
	case q.Status != "" && q.Status != duplicate.AlertOpen && q.Status != duplicate.AlertReviewed:
		d.Error = "Status must be open, reviewed or all."
	case q.UserID != "" && !duplicate.ValidUserID(q.UserID):
		d.Error = "That is not a userId."
	}
	if after := v.Get("after"); after != "" && d.Error == "" {
		p, ok := parseQueueCursor(after)
		if !ok {
			d.Error = "That page link is not valid any more; start from the first page."
		}
		q.After = p
	}
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	} else {
		alerts, err := c.cfg.Store.Alerts(r.Context(), q)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		if len(alerts) > queuePageSize {
			alerts = alerts[:queuePageSize]
			next := url.Values{"after": {queueCursor(alerts[queuePageSize-1])}, "status": {d.Status}}
			if d.Severity != "" {
				next.Set("severity", d.Severity)
			}
			if d.UserID != "" {
				next.Set("user", d.UserID)
			}
			d.Next = "/console/alerts?" + next.Encode()
		}
		d.Alerts = alerts
		if d.UserID != "" && !c.logRead(w, r, "", []string{d.UserID}, alertUsers(alerts)) {
			return
		}
	}
	c.render(w, r, status, "alerts", page{Title: "Alerts", Data: d})
}

// --- Ring ---

type pairRow struct {
	duplicate.RingPair
	Focus bool
	// RegionNames are the regions that found the pair, `default` shown as the vendor host's region
	// when known (as the queue shows alerts').
	RegionNames []string
	// Evidence is what the two accounts' records say; nil when the page shows no evidence.
	Evidence *pairEvidence
}

type ringData struct {
	Ring       duplicate.RingDetail
	Alert      *duplicate.StoredAlert
	Focus      string
	Graph      graph
	Pairs      []pairRow
	Undecided  int
	Page       int
	Pages      int
	Prev, Next string
	Return     string
	// Large describes what the page of a ring above largeRing accounts leaves out; nil otherwise.
	Large *largeRingView
	// Evidence is the accounts' faces and documents; nil when the console shows none.
	Evidence *evidenceSection
	// Case is the ring's case, nil when it has none (no alert ever opened one).
	Case *duplicate.CaseDetail
	// Snoozes are the snooze choices of the case card.
	Snoozes []snoozeChoice
}

// regionNames returns regions with `default` named after the vendor host's region when known,
// each name once (a pair found in `default` and in the region of that name is one region).
func (c *Console) regionNames(regions []string) []string {
	out := make([]string, 0, len(regions))
	for _, r := range regions {
		if r == duplicate.DefaultRegion && c.cfg.Region != "" {
			r = c.cfg.Region
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func (c *Console) handleRing(w http.ResponseWriter, r *http.Request) {
	ringID := r.PathValue("ringId")
	v := r.URL.Query()
	var alert *duplicate.StoredAlert
	if id := v.Get("alert"); id != "" {
		if uuid.Validate(id) != nil {
			c.fail(w, r, http.StatusBadRequest, "That is not an alert id.")
			return
		}
		a, err := c.cfg.Store.Alert(r.Context(), id)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		alert = &a
	}
	focus := v.Get("user")
	if alert != nil {
		focus = alert.UserID
	}
	detail, large, err := c.ringDetail(r.Context(), ringID, focus)
	if large != nil {
		focus = large.Centre
	}
	if duplicate.ErrorCode(err) == duplicate.ENOTFOUND && focus != "" {
		// The ring grew into another one since the alert: show the ring the user is in now.
		if now, rerr := c.cfg.Store.Ring(r.Context(), focus); rerr == nil && now.ID != ringID && now.Size > 1 {
			q := r.URL.Query()
			http.Redirect(w, r, "/console/rings/"+url.PathEscape(now.ID)+"?"+q.Encode(), http.StatusSeeOther)
			return
		}
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	d := ringData{Ring: detail, Alert: alert, Focus: focus, Graph: drawRing(detail, focus), Large: large}
	if large != nil {
		d.Graph.Folded, d.Graph.FoldURL = large.Folded, large.MembersURL
	}
	d.Evidence = c.ringEvidence(r, detail.ID, detail.Members)
	if d.Case, err = c.ringCase(r.Context(), detail.ID); err != nil {
		c.failErr(w, r, err)
		return
	}
	d.Snoozes = snoozeChoices
	rows := make([]pairRow, len(detail.Pairs))
	for i, p := range detail.Pairs {
		rows[i] = pairRow{RingPair: p, Focus: focus != "" && (p.UserIDLow == focus || p.UserIDHigh == focus),
			RegionNames: c.regionNames(p.Regions), Evidence: d.Evidence.pair(p)}
		if p.LatestReview == nil {
			d.Undecided++
		}
	}
	// The focused account's pairs first, then undecided before decided: what needs a decision.
	slices.SortStableFunc(rows, func(a, b pairRow) int {
		if a.Focus != b.Focus {
			if a.Focus {
				return -1
			}
			return 1
		}
		ua, ub := a.LatestReview == nil, b.LatestReview == nil
		if ua != ub {
			if ua {
				return -1
			}
			return 1
		}
		return 0
	})
	d.Pages = max((len(rows)+pairsPageSize-1)/pairsPageSize, 1)
	d.Page, _ = strconv.Atoi(v.Get("page"))
	d.Page = min(max(d.Page, 1), d.Pages)
	from := (d.Page - 1) * pairsPageSize
	d.Pairs = rows[from:min(from+pairsPageSize, len(rows))]
	pageURL := func(n int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		return r.URL.Path + "?" + q.Encode()
	}
	if d.Page > 1 {
		d.Prev = pageURL(d.Page - 1)
	}
	if d.Page < d.Pages {
		d.Next = pageURL(d.Page + 1)
	}
	d.Return = r.URL.RequestURI()
	if !c.logRead(w, r, detail.ID, ringPageIDs(d)...) {
		return
	}
	c.render(w, r, http.StatusOK, "ring", page{Title: "Ring " + detail.ID, Nav: "queue", Data: d})
}

// decisionForm reads the decision and note of a decision form.
func decisionForm(r *http.Request) (duplicate.Decision, string, error) {
	d := duplicate.Decision(r.PostFormValue("decision"))
	if !d.Valid() {
		return "", "", duplicate.Invalid("decision", "Choose a decision: confirmed fraud, false positive or same person.")
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	if len([]rune(note)) > duplicate.MaxNoteLen || strings.ContainsRune(note, 0) {
		return "", "", duplicate.Invalid("note", "The note must be at most %d characters.", duplicate.MaxNoteLen)
	}
	return d, note, nil
}

// backTo returns where a form goes after it is done: its return field when that is a console page,
// else fallback.
func backTo(r *http.Request, fallback string) string {
	ret := r.PostFormValue("return")
	u, err := url.Parse(ret)
	if ret == "" || err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, "/console/") || strings.HasPrefix(ret, "//") {
		return fallback
	}
	return u.String()
}

// handleDecideRing decides the ring's undecided pairs (every pair when the analyst asks to
// re-decide), then goes on to the next case: it claims the top unclaimed one and opens it, or
// goes back to the queue when none waits or the cap is reached.
func (c *Console) handleDecideRing(w http.ResponseWriter, r *http.Request) {
	ringID := r.PathValue("ringId")
	decision, note, err := decisionForm(r)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	redecide := r.PostFormValue("redecide") == "on"
	s := sessionOf(r.Context())
	n, err := c.cfg.Store.DecideRing(r.Context(), ringID, decision, note, s.name, redecide)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.log.Info("console: ring decided", "ring_id", ringID, "decision", decision, "reviews", n, "reviewed_by", s.name)
	msg := fmt.Sprintf("Recorded %d reviews: the ring's undecided pairs are %s.", n, strings.ToLower(decisionLabel(string(decision))))
	if redecide {
		msg = fmt.Sprintf("Recorded %d reviews: every pair of the ring is %s.", n, strings.ToLower(decisionLabel(string(decision))))
	}
	if r.PostFormValue("stay") == "on" {
		c.setFlash(r, s, msg)
		http.Redirect(w, r, backTo(r, "/console/rings/"+url.PathEscape(ringID)), http.StatusSeeOther)
		return
	}
	next, err := c.cfg.Store.NextCase(r.Context(), s.name, c.cfg.CaseCap)
	switch duplicate.ErrorCode(err) {
	case "":
		c.setFlash(r, s, msg+" This is your next case.")
		http.Redirect(w, r, "/console/cases/"+next, http.StatusSeeOther)
	case duplicate.ENOCASE, duplicate.ECASECAP:
		c.setFlash(r, s, msg+" "+err.Error())
		http.Redirect(w, r, "/console/queue", http.StatusSeeOther)
	default:
		c.failErr(w, r, err)
	}
}

func (c *Console) handleDecidePair(w http.ResponseWriter, r *http.Request) {
	decision, note, err := decisionForm(r)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	s := sessionOf(r.Context())
	rv := duplicate.Review{UserID: r.PostFormValue("userId"), DuplicateUserID: r.PostFormValue("duplicateUserId"),
		Decision: decision, Note: note, ReviewedBy: s.name}
	if !duplicate.ValidUserID(rv.UserID) || !duplicate.ValidUserID(rv.DuplicateUserID) {
		c.fail(w, r, http.StatusBadRequest, "The form names no pair of accounts.")
		return
	}
	stored, err := c.cfg.Store.AddReview(r.Context(), rv)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	c.log.Info("console: pair decided", "review_id", stored.ID, "decision", decision, "reviewed_by", s.name)
	c.setFlash(r, s, fmt.Sprintf("Recorded: %s – %s is %s.", rv.UserID, rv.DuplicateUserID, strings.ToLower(decisionLabel(string(decision)))))
	http.Redirect(w, r, backTo(r, "/console/audit"), http.StatusSeeOther)
}

// --- Users: search by prefix, and a user's page ---

// Bounds of the users pages.
const (
	userSearchPageSize = 50
	userChecksShown    = 25
	userAlertsShown    = 25
)

type usersData struct {
	// Query is the prefix searched; Matches the userIds found, at most userSearchPageSize, and
	// More the next page of them.
	Query   string
	Matches []string
	More    string
	// Searched is set once a search ran, so that none found can be told from none asked.
	Searched bool
	Error    string
	User     *userPage
}

// userPage is one user's page: their verifications, alerts, ring and linked accounts.
type userPage struct {
	UserID     string
	Checks     []duplicate.UserCheck
	MoreChecks bool
	Alerts     []duplicate.StoredAlert
	MoreAlerts bool
	AlertsURL  string
	Ring       duplicate.Ring
	Duplicates []duplicate.LinkedAccount
	// DefaultIn names the region called `default` (Config.Region), "" when unknown.
	DefaultIn string
	// Erasure is the legal hold and the erasure form (nil: erasure is not configured).
	Erasure *erasureForm
}

// handleUsers serves the search (?q=prefix, paged with after) and a user's page (?userId=). A
// search that finds exactly the id typed goes to that user's page.
func (c *Console) handleUsers(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	if id := strings.TrimSpace(v.Get("userId")); id != "" {
		c.handleUser(w, r, id)
		return
	}
	d := usersData{Query: strings.TrimSpace(v.Get("q"))}
	after := v.Get("after")
	status := http.StatusOK
	switch {
	case d.Query == "":
	case !duplicate.ValidUserID(d.Query) || (after != "" && !duplicate.ValidUserID(after)):
		d.Error, status = "Search with the start of a userId, without control characters.", http.StatusBadRequest
	default:
		d.Searched = true
		ids, err := c.cfg.Store.UserIDsByPrefix(r.Context(), d.Query, after, userSearchPageSize+1)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		if len(ids) == 1 && ids[0] == d.Query && after == "" {
			http.Redirect(w, r, "/console/users?"+url.Values{"userId": {d.Query}}.Encode(), http.StatusSeeOther)
			return
		}
		if len(ids) > userSearchPageSize {
			ids = ids[:userSearchPageSize]
			d.More = "/console/users?" + url.Values{"q": {d.Query}, "after": {ids[len(ids)-1]}}.Encode()
		}
		d.Matches = ids
		if len(ids) > 0 && !c.logRead(w, r, "", ids) {
			return
		}
	}
	c.render(w, r, status, "users", page{Title: "Users", Data: d})
}

func (c *Console) handleUser(w http.ResponseWriter, r *http.Request, userID string) {
	d := usersData{Query: userID}
	if !duplicate.ValidUserID(userID) {
		d.Error = "That is not a userId."
		c.render(w, r, http.StatusBadRequest, "users", page{Title: "Users", Data: d})
		return
	}
	u := &userPage{UserID: userID, DefaultIn: c.cfg.Region,
		AlertsURL: "/console/alerts?" + url.Values{"status": {"all"}, "user": {userID}}.Encode()}
	dups, err := c.cfg.Store.UserDuplicates(r.Context(), userID, "")
	if duplicate.ErrorCode(err) == duplicate.ENOTFOUND {
		d.Error = fmt.Sprintf("No verification or link mentions %q.", userID)
		c.render(w, r, http.StatusNotFound, "users", page{Title: "Users", Data: d})
		return
	}
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	u.Duplicates = dups
	if u.Ring, err = c.cfg.Store.Ring(r.Context(), userID); err != nil {
		c.failErr(w, r, err)
		return
	}
	if u.Checks, err = c.cfg.Store.UserChecks(r.Context(), userID, userChecksShown+1); err != nil {
		c.failErr(w, r, err)
		return
	}
	if len(u.Checks) > userChecksShown {
		u.Checks, u.MoreChecks = u.Checks[:userChecksShown], true
	}
	u.Alerts, err = c.cfg.Store.Alerts(r.Context(), duplicate.AlertQuery{UserID: userID, NewestFirst: true, Limit: userAlertsShown + 1})
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if len(u.Alerts) > userAlertsShown {
		u.Alerts, u.MoreAlerts = u.Alerts[:userAlertsShown], true
	}
	hold, err := c.holdOf(r, userID)
	if err != nil {
		c.failErr(w, r, err)
		return
	}
	if hold != nil {
		u.Erasure = &erasureForm{Hold: hold, CanErase: sessionOf(r.Context()).can(apikey.ScopeErase)}
	}
	ring := ""
	if u.Ring.Size > 1 {
		ring = u.Ring.ID
	}
	if !c.logRead(w, r, ring, []string{userID}, linkedUsers(dups), alertUsers(u.Alerts)) {
		return
	}
	d.User = u
	c.render(w, r, http.StatusOK, "users", page{Title: "User " + visibleID(userID), Nav: "users", Data: d})
}

// --- Audit ---

type auditData struct {
	UserID, Reviewer, Since string
	Reviews                 []duplicate.Review
	Next                    string
	First                   bool
	Error                   string
}

func (c *Console) handleAudit(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	d := auditData{UserID: strings.TrimSpace(v.Get("user")), Reviewer: strings.TrimSpace(v.Get("reviewer")),
		Since: v.Get("since"), First: v.Get("before") == ""}
	q := duplicate.ReviewQuery{UserID: d.UserID, Reviewer: d.Reviewer, Limit: auditPageSize + 1}
	if d.Since != "" {
		t, err := time.Parse("2006-01-02", d.Since)
		if err != nil {
			d.Error = "The date must look like 2026-11-25."
		}
		q.Since = t
	}
	if b := v.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			d.Error = "That page link is not valid; start from the first page."
		}
		q.Before = n
	}
	if (d.UserID != "" && !duplicate.ValidUserID(d.UserID)) || (d.Reviewer != "" && !duplicate.ValidUserID(d.Reviewer)) {
		d.Error = "User and reviewer must be ids without control characters."
	}
	status := http.StatusOK
	if d.Error != "" {
		status = http.StatusBadRequest
	} else {
		reviews, err := c.cfg.Store.Reviews(r.Context(), q)
		if err != nil {
			c.failErr(w, r, err)
			return
		}
		if len(reviews) > auditPageSize {
			reviews = reviews[:auditPageSize]
			next := url.Values{"before": {strconv.FormatInt(reviews[auditPageSize-1].ID, 10)}}
			for k, val := range map[string]string{"user": d.UserID, "reviewer": d.Reviewer, "since": d.Since} {
				if val != "" {
					next.Set(k, val)
				}
			}
			d.Next = "/console/audit?" + next.Encode()
		}
		d.Reviews = reviews
		if d.UserID != "" && !c.logRead(w, r, "", []string{d.UserID}, reviewUsers(reviews)) {
			return
		}
	}
	c.render(w, r, status, "audit", page{Title: "Audit", Data: d})
}

// visibleID returns an identifier as the console displays it: every invisible character
// (duplicate.Invisible: controls, bidi overrides, zero-width and other format characters) replaced
// by a visible marker naming its code point, so "admin\u202egnp.exe" reads "admin⟦U+202E⟧gnp.exe"
// and not "adminexe.png". Doppel refuses such ids at every entrance; rows stored before it did
// still hold them.
func visibleID(id string) string {
	if !strings.ContainsFunc(id, duplicate.Invisible) {
		return id
	}
	var b strings.Builder
	for _, r := range id {
		if duplicate.Invisible(r) {
			fmt.Fprintf(&b, "⟦%U⟧", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
