package httpapi_test

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/httpapi"
)

const leadKey = "lead-key-0123456789"

type caseRow struct {
	CaseID            string    `json:"caseId"`
	RingID            *string   `json:"ringId"`
	Size              int       `json:"size"`
	Regions           []string  `json:"regions"`
	Severity          string    `json:"severity"`
	Status            string    `json:"status"`
	Assignee          *string   `json:"assignee"`
	DueAt             time.Time `json:"dueAt"`
	OldestOpenAlertAt time.Time `json:"oldestOpenAlertAt"`
}

type casesPage struct {
	Cases      []caseRow `json:"cases"`
	NextCursor *string   `json:"nextCursor"`
}

type caseDetail struct {
	caseRow
	Members   []string `json:"members"`
	SplitFrom *string  `json:"splitFrom"`
	Notes     []struct {
		Author string    `json:"author"`
		Text   string    `json:"text"`
		At     time.Time `json:"at"`
	} `json:"notes"`
}

func withCases(capOf int) func(*httpapi.Config) {
	return func(c *httpapi.Config) {
		c.CaseCap = capOf
		c.APIKeys = append(c.APIKeys, apikey.Key{Name: "lena", Scopes: []string{apikey.ScopeRead, apikey.ScopeReview, apikey.ScopeAssign},
			SHA256: sha256.Sum256([]byte(leadKey))})
	}
}

func (f *fixture) caseOf(t *testing.T, member string) caseDetail {
	t.Helper()
	var page casesPage
	res := f.do(http.MethodGet, "/v1/cases?limit=500", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &page)
	for _, c := range page.Cases {
		var d caseDetail
		f.do(http.MethodGet, "/v1/cases/"+c.CaseID, readKey, nil).json(t, &d)
		for _, m := range d.Members {
			if m == member {
				return d
			}
		}
	}
	t.Fatalf("no case holds %s", member)
	return caseDetail{}
}

// Every case route, with its error answers: the queue and its filters, one case, claim (and the
// cap), assign (a lead's), notes and snooze.
func TestTheCaseRoutes(t *testing.T) {
	t.Parallel()
	f := setup(t, withCases(1))
	f.seed("s-a2", "a2")
	f.seed("s-a1", "a1", "a2")
	f.seed("s-a3", "a3", "a1") // a ring of three: high severity here
	f.seed("s-b2", "b2")
	f.seed("s-b1", "b1", "b2")

	var page casesPage
	res := f.do(http.MethodGet, "/v1/cases?status=open&sort=due", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &page)
	require.Len(t, page.Cases, 2)
	require.Equal(t, "high", page.Cases[0].Severity, "high severity before normal when neither is overdue")
	require.Equal(t, 3, page.Cases[0].Size)
	require.Equal(t, []string{"default"}, page.Cases[0].Regions)
	require.Equal(t, "open", page.Cases[0].Status)
	require.Nil(t, page.Cases[0].Assignee)
	require.WithinDuration(t, page.Cases[0].OldestOpenAlertAt.Add(24*time.Hour), page.Cases[0].DueAt, time.Second)
	high, normal := page.Cases[0].CaseID, page.Cases[1].CaseID

	res = f.do(http.MethodGet, "/v1/cases?limit=1", readKey, nil)
	res.json(t, &page)
	require.Len(t, page.Cases, 1)
	require.NotNil(t, page.NextCursor)
	res = f.do(http.MethodGet, "/v1/cases?limit=1&cursor="+url.QueryEscape(*page.NextCursor), readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &page)
	require.Equal(t, normal, page.Cases[0].CaseID)
	require.Nil(t, page.NextCursor)

	var d caseDetail
	res = f.do(http.MethodGet, "/v1/cases/"+high, readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &d)
	require.Equal(t, []string{"a1", "a2", "a3"}, d.Members)
	require.Empty(t, d.Notes)

	for _, bad := range []struct{ path, field string }{
		{"/v1/cases?status=done", "status"}, {"/v1/cases?severity=urgent", "severity"}, {"/v1/cases?sort=size", "sort"},
		{"/v1/cases?cursor=nope", "cursor"}, {"/v1/cases?assigne=me", "assigne"}, {"/v1/cases/not-a-uuid", "caseId"},
	} {
		e := f.do(http.MethodGet, bad.path, readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, bad.field, e.Field, bad.path)
	}
	f.do(http.MethodGet, "/v1/cases/00000000-0000-0000-0000-000000000000", readKey, nil).apiError(t, http.StatusNotFound, "not_found")
	f.do(http.MethodPost, "/v1/cases/"+high+"/claim", readKey, nil).apiError(t, http.StatusForbidden, "forbidden")
	f.do(http.MethodGet, "/v1/cases", "", nil).apiError(t, http.StatusUnauthorized, "unauthorized")

	// Claim: the API key's name is the assignee; the cap is 1.
	res = f.do(http.MethodPost, "/v1/cases/"+high+"/claim", reviewKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &d)
	require.Equal(t, "analyst", *d.Assignee)
	require.Equal(t, "in_review", d.Status)
	f.do(http.MethodPost, "/v1/cases/"+normal+"/claim", reviewKey, nil).apiError(t, http.StatusConflict, "case_cap_reached")
	f.do(http.MethodPost, "/v1/cases/"+high+"/claim", reviewOnlyKey, nil).apiError(t, http.StatusConflict, "case_claimed")
	f.do(http.MethodPost, "/v1/cases/00000000-0000-0000-0000-000000000000/claim", reviewKey, nil).apiError(t, http.StatusNotFound, "not_found")
	res = f.do(http.MethodGet, "/v1/cases?assignee=me", reviewKey, nil)
	res.json(t, &page)
	require.Len(t, page.Cases, 1)
	res = f.do(http.MethodGet, "/v1/cases?assignee=none", reviewKey, nil)
	res.json(t, &page)
	require.Equal(t, normal, page.Cases[0].CaseID)

	// Assign: a lead's (scope assign), within the assignee's cap.
	f.do(http.MethodPost, "/v1/cases/"+normal+"/assign", reviewKey, map[string]string{"assignee": "bot"}).
		apiError(t, http.StatusForbidden, "forbidden")
	e := f.do(http.MethodPost, "/v1/cases/"+normal+"/assign", leadKey, map[string]any{}).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "assignee", e.Field)
	f.do(http.MethodPost, "/v1/cases/"+normal+"/assign", leadKey, map[string]string{"assignee": "analyst"}).
		apiError(t, http.StatusConflict, "case_cap_reached")
	res = f.do(http.MethodPost, "/v1/cases/"+normal+"/assign", leadKey, map[string]string{"assignee": "bot"})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &d)
	require.Equal(t, "bot", *d.Assignee)

	// Notes, by the key's name.
	res = f.do(http.MethodPost, "/v1/cases/"+high+"/notes", reviewKey, map[string]string{"text": "same device as ring 7"})
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	e = f.do(http.MethodPost, "/v1/cases/"+high+"/notes", reviewKey, map[string]string{"text": "  "}).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "text", e.Field)
	f.do(http.MethodPost, "/v1/cases/"+high+"/notes", reviewKey, "text=x").apiError(t, http.StatusBadRequest, "invalid_input")
	f.do(http.MethodGet, "/v1/cases/"+high, readKey, nil).json(t, &d)
	require.Len(t, d.Notes, 1)
	require.Equal(t, "analyst", d.Notes[0].Author)
	require.Equal(t, "same device as ring 7", d.Notes[0].Text)

	// Snooze: off the unassigned queue until then.
	e = f.do(http.MethodPost, "/v1/cases/"+normal+"/snooze", reviewKey, map[string]string{"until": "2001-01-01T00:00:00Z"}).
		apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "until", e.Field)
	res = f.do(http.MethodPost, "/v1/cases/"+normal+"/snooze", reviewKey,
		map[string]string{"until": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	f.do(http.MethodGet, "/v1/cases", readKey, nil).json(t, &page)
	require.Len(t, page.Cases, 1)
	require.Equal(t, high, page.Cases[0].CaseID)
}

// Over the API too, a case survives its ring's merge and split with its notes and assignee.
func TestACaseSurvivesItsRingsMergeAndSplitOverTheAPI(t *testing.T) {
	t.Parallel()
	f := setup(t, withCases(10))
	f.seed("s-a2", "a2")
	f.seed("s-a1", "a1", "a2")
	f.seed("s-a3", "a3", "a1")
	f.seed("s-b2", "b2")
	f.seed("s-b1", "b1", "b2")
	a, b := f.caseOf(t, "a1"), f.caseOf(t, "b1")
	require.Equal(t, http.StatusOK, f.do(http.MethodPost, "/v1/cases/"+a.CaseID+"/claim", reviewKey, nil).status)
	require.Equal(t, http.StatusCreated, f.do(http.MethodPost, "/v1/cases/"+a.CaseID+"/notes", reviewKey, map[string]string{"text": "note on a"}).status)
	require.Equal(t, http.StatusCreated, f.do(http.MethodPost, "/v1/cases/"+b.CaseID+"/notes", reviewKey, map[string]string{"text": "note on b"}).status)

	f.seed("s-b3", "b3", "b1", "a3") // joins the two rings
	var merged caseDetail
	f.do(http.MethodGet, "/v1/cases/"+b.CaseID, readKey, nil).json(t, &merged)
	require.Equal(t, a.CaseID, merged.CaseID)
	require.Equal(t, []string{"a1", "a2", "a3", "b1", "b2", "b3"}, merged.Members)
	require.Equal(t, "analyst", *merged.Assignee)
	require.Len(t, merged.Notes, 2)

	for _, pair := range [][2]string{{"b3", "a3"}} {
		res := f.do(http.MethodPost, "/v1/reviews", reviewKey, map[string]string{"userId": pair[0], "duplicateUserId": pair[1], "decision": "false_positive"})
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	}
	var kept caseDetail
	f.do(http.MethodGet, "/v1/cases/"+a.CaseID, readKey, nil).json(t, &kept)
	require.Equal(t, []string{"a1", "a2", "a3"}, kept.Members)
	require.Equal(t, "analyst", *kept.Assignee)
	require.Len(t, kept.Notes, 2, "no note lost")
	split := f.caseOf(t, "b1")
	require.NotEqual(t, a.CaseID, split.CaseID)
	require.Equal(t, a.CaseID, *split.SplitFrom)
}
