package console_test

import (
	"context"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/console"
)

// rowsOf returns the data-<attr> values of the rows of the page's element with data-testid=testid.
func rowsOf(t *testing.T, body, testid, attr string) []string {
	t.Helper()
	start := strings.Index(body, `data-testid="`+testid+`"`)
	require.GreaterOrEqual(t, start, 0, "the page has no %s", testid)
	section := body[start:]
	if end := strings.Index(section, "</table>"); end >= 0 {
		section = section[:end]
	}
	var out []string
	for _, m := range regexp.MustCompile(`data-`+attr+`="([^"]*)"`).FindAllStringSubmatch(section, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

var matchLink = regexp.MustCompile(`<li><a class="id" href="/console/users\?userId=([^"]+)">`)

func matchesOf(body string) []string {
	var out []string
	for _, m := range matchLink.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestTheUsersSearchListsUserIdsByTheirStartAndPagesThem(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	f.seedRings()
	f.seedFarm(60)
	c := newClient(t, f.srv.URL)
	c.signIn(viewerKey)

	status, _, body := c.get("/console/users?q=cust-a")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, []string{"cust-a1", "cust-a2", "cust-a3", "cust-a4"}, matchesOf(body))
	require.NotContains(t, body, `rel="next"`)

	// The exact id of one user goes to the user's page.
	status, h, _ := c.get("/console/users?q=cust-b2")
	require.Equal(t, http.StatusSeeOther, status)
	require.Equal(t, "/console/users?userId=cust-b2", h.Get("Location"))

	// Sixty farm accounts: fifty on the first page, in order, and a link to the rest.
	status, _, body = c.get("/console/users?q=farm-")
	require.Equal(t, http.StatusOK, status)
	first := matchesOf(body)
	require.Len(t, first, 50)
	require.Equal(t, "farm-0000", first[0])
	require.Equal(t, "farm-0049", first[49])
	more := regexp.MustCompile(`<a href="([^"]+)" rel="next">More</a>`).FindStringSubmatch(body)
	require.NotNil(t, more, "a link to more users")
	status, _, body = c.get(html.UnescapeString(more[1]))
	require.Equal(t, http.StatusOK, status)
	rest := matchesOf(body)
	require.Len(t, rest, 10)
	require.Equal(t, "farm-0050", rest[0])
	require.NotContains(t, body, `rel="next"`)

	status, _, body = c.get("/console/users?q=nobody-")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "No userId starts with")
	status, _, body = c.get("/console/users?q=cust%07")
	require.Equal(t, http.StatusBadRequest, status)
	require.Contains(t, body, "control characters")

	// Each list of users shown is in the access log, as the user's page is.
	got := f.reads(w)
	require.Len(t, got, 3, "%+v", got)
	require.Equal(t, []string{"cust-a1", "cust-a2", "cust-a3", "cust-a4"}, got[0].UserIDs)
	require.Equal(t, "GET /console/users", got[1].What)
	require.Equal(t, 50, got[1].UserCount)
	require.Equal(t, 10, got[2].UserCount)
}

func TestAUsersPageListsTheirVerificationsAndAlerts(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	ringA, _ := f.seedRings()
	c := newClient(t, f.srv.URL)
	c.signIn(viewerKey)

	// cust-a1 verified once (in the default region, shown by its host's name, sg) and was matched
	// by cust-a2's and cust-a3's checks: two alerts, both open, both leading to the ring.
	status, _, body := c.get("/console/users?userId=cust-a1")
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, []string{"sig-0001-cust-a1"}, rowsOf(t, body, "checks", "check"))
	checks := body[strings.Index(body, `data-testid="checks"`):]
	checks = checks[:strings.Index(checks, "</table>")]
	require.Contains(t, checks, "no duplicates")
	require.Contains(t, checks, "<td>sg</td>")
	alerts := rowsOf(t, body, "user-alerts", "alert")
	require.Len(t, alerts, 2)
	require.Contains(t, body, "/console/rings/"+ringA+"?alert="+alerts[0])
	section := body[strings.Index(body, `data-testid="user-alerts"`):]
	require.Contains(t, section, "cust-a3", "the newest alert first: raised for cust-a3")
	require.Less(t, strings.Index(section, "cust-a3"), strings.Index(section, "cust-a2"))
	require.Contains(t, body, `data-testid="open-ring" href="/console/rings/`+ringA+`?user=cust-a1"`)

	// cust-a4 verified in th and its check found cust-a3: its own alert.
	status, _, body = c.get("/console/users?userId=cust-a4")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, rowsOf(t, body, "user-alerts", "alert"), 1)
	require.Contains(t, body, "this account")
	checks = body[strings.Index(body, `data-testid="checks"`):]
	require.Contains(t, checks[:strings.Index(checks, "</table>")], "<td>th</td>")
	require.Contains(t, checks, "duplicates found")

	status, _, _ = c.get("/console/users?userId=nobody")
	require.Equal(t, http.StatusNotFound, status)

	got := f.reads(w)
	require.Len(t, got, 2)
	require.Equal(t, "GET /console/users", got[0].What)
	require.Equal(t, ringA, got[0].RingID)
	require.Equal(t, []string{"cust-a1", "cust-a2", "cust-a3"}, got[0].UserIDs, "the user, the accounts linked and those the alerts name")
}

// caseLink returns the count and the link of the overview's count data-case=key.
func caseLink(t *testing.T, body, key string) (count, href string) {
	t.Helper()
	m := regexp.MustCompile(`href="([^"]+)" data-case="` + regexp.QuoteMeta(key) + `">(?:<span class="region">[^<]*</span> )?<span class="n">([^<]*)</span>`).FindStringSubmatch(body)
	require.NotNil(t, m, "the overview has no count %q", key)
	return m[2], html.UnescapeString(m[1])
}

func TestTheOverviewCountsOpenCasesAndLinksEachToTheQueue(t *testing.T) {
	t.Parallel()
	now := time.Now()
	f := setup(t, func(cfg *console.Config) {
		cfg.Now = func() time.Time { return now }
		cfg.ReviewSLA = 90 * time.Minute
	})
	f.seedRings() // ring A of four (high from 4 here; alerts in sg and th), ring B of two (sg)
	_, err := f.pool.Exec(context.Background(), `UPDATE alerts SET detected_at = $1 WHERE user_id = 'cust-b2'`,
		now.Add(-3*time.Hour-30*time.Second))
	require.NoError(t, err)
	c := newClient(t, f.srv.URL)
	c.signIn(viewerKey)
	status, _, body := c.get("/console/")
	require.Equal(t, http.StatusOK, status)

	for key, want := range map[string][2]string{
		"open":           {"2", "/console/queue"},
		"overdue":        {"1", "/console/queue?sort=due"},
		"high":           {"1", "/console/queue?severity=high"},
		"oldest":         {"3 h 0 min", "/console/queue?sort=due"},
		"region-default": {"2", "/console/queue?region=default"},
		"region-th":      {"1", "/console/queue?region=th"},
	} {
		n, href := caseLink(t, body, key)
		require.Equal(t, want[0], n, key)
		require.Equal(t, want[1], href, key)
	}
	require.Contains(t, body, "overdue (open longer than 90 min)")
	require.Contains(t, body, `<span class="region">sg</span>`, "the default region by its host's name")
}
