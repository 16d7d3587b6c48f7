package httpapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

type ringsPage struct {
	Rings []struct {
		RingID     string   `json:"ringId"`
		Size       int      `json:"size"`
		LinkCount  int      `json:"linkCount"`
		Members    []string `json:"members"`
		OpenAlerts int      `json:"openAlerts"`
	} `json:"rings"`
	NextCursor *string `json:"nextCursor"`
	HasMore    bool    `json:"hasMore"`
}

func TestRingsArePagedLargestFirstAndOneRingHasItsEvidence(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// A ring of three (a-b, c-a) and a ring of two (x-y).
	f.seed("s-b", "b")
	f.seed("s-a", "a", "b")
	f.seed("s-c", "c", "a")
	f.seed("s-y", "y")
	f.seed("s-x", "x", "y")

	var page ringsPage
	res := f.do(http.MethodGet, "/v1/rings?limit=1", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &page)
	require.Len(t, page.Rings, 1)
	require.Equal(t, duplicate.RingID("a"), page.Rings[0].RingID)
	require.Equal(t, 3, page.Rings[0].Size)
	require.Equal(t, 2, page.Rings[0].LinkCount)
	require.Equal(t, []string{"a", "b", "c"}, page.Rings[0].Members)
	require.Equal(t, 2, page.Rings[0].OpenAlerts)
	require.True(t, page.HasMore)

	var next ringsPage
	res = f.do(http.MethodGet, "/v1/rings?limit=1&cursor="+url.QueryEscape(*page.NextCursor), readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &next)
	require.Len(t, next.Rings, 1)
	require.Equal(t, duplicate.RingID("x"), next.Rings[0].RingID)
	require.False(t, next.HasMore)

	var newest ringsPage
	f.do(http.MethodGet, "/v1/rings?order=newest", readKey, nil).json(t, &newest)
	require.Equal(t, duplicate.RingID("x"), newest.Rings[0].RingID, "x-y was linked last")

	var ring struct {
		RingID  string   `json:"ringId"`
		Size    int      `json:"size"`
		Members []string `json:"members"`
		Links   []struct {
			UserID               string   `json:"userId"`
			DuplicateUserID      string   `json:"duplicateUserId"`
			SignatureIDs         []string `json:"signatureIds"`
			VendorTransactionIDs []string `json:"vendorTransactionIds"`
			Reviews              []struct {
				Decision string `json:"decision"`
			} `json:"reviews"`
			LatestReview *struct {
				Decision string `json:"decision"`
			} `json:"latestReview"`
		} `json:"links"`
	}
	// confirmed_fraud keeps the pair in the ring (a cleared pair would leave it).
	res = f.do(http.MethodPost, "/v1/reviews", reviewKey, map[string]string{"userId": "a", "duplicateUserId": "b", "decision": "confirmed_fraud"})
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	res = f.do(http.MethodGet, "/v1/rings/"+duplicate.RingID("a"), readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &ring)
	require.Equal(t, 3, ring.Size)
	require.Len(t, ring.Links, 2)
	require.Equal(t, "a", ring.Links[0].UserID)
	require.Equal(t, "b", ring.Links[0].DuplicateUserID)
	require.Equal(t, []string{"s-a"}, ring.Links[0].SignatureIDs)
	require.Equal(t, []string{"tx-s-a"}, ring.Links[0].VendorTransactionIDs)
	require.Len(t, ring.Links[0].Reviews, 1)
	require.Equal(t, "confirmed_fraud", ring.Links[0].LatestReview.Decision)
	require.Equal(t, []string{"s-c"}, ring.Links[1].SignatureIDs)
	require.Nil(t, ring.Links[1].LatestReview)

	f.do(http.MethodGet, "/v1/rings/ring_0000000000000000", readKey, nil).apiError(t, http.StatusNotFound, "not_found")
	e := f.do(http.MethodGet, "/v1/rings/nope", readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "ringId", e.Field)
	// b is a member but not the smallest: its hash is not a ring id.
	f.do(http.MethodGet, "/v1/rings/"+duplicate.RingID("b"), readKey, nil).apiError(t, http.StatusNotFound, "not_found")
}

func TestAlertFiltersAndOneAlert(t *testing.T) {
	t.Parallel()
	f := setup(t) // high severity from rings of 3
	f.seed("s-b", "b")
	pair := f.seed("s-a", "a", "b")
	three := f.seed("s-c", "c", "a")
	require.NotNil(t, pair.Alert)
	require.NotNil(t, three.Alert)

	alertIDs := func(query string) []string {
		t.Helper()
		var page struct {
			Alerts []struct {
				AlertID string `json:"alertId"`
				Status  string `json:"status"`
			} `json:"alerts"`
		}
		res := f.do(http.MethodGet, "/v1/alerts"+query, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		res.json(t, &page)
		ids := []string{}
		for _, a := range page.Alerts {
			ids = append(ids, a.AlertID+":"+a.Status)
		}
		return ids
	}
	require.Equal(t, []string{three.Alert.AlertID + ":open"}, alertIDs("?severity=high"))
	require.Equal(t, []string{pair.Alert.AlertID + ":open"}, alertIDs("?severity=normal"))
	require.Equal(t, []string{three.Alert.AlertID + ":open"}, alertIDs("?userId=c"))
	require.Len(t, alertIDs("?userId=a"), 2, "a raised one alert and was matched by the other")

	res := f.do(http.MethodPost, "/v1/reviews", reviewKey, map[string]string{"userId": "a", "duplicateUserId": "b", "decision": "confirmed_fraud"})
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	require.Equal(t, []string{pair.Alert.AlertID + ":reviewed"}, alertIDs("?status=reviewed"))
	require.Equal(t, []string{three.Alert.AlertID + ":open"}, alertIDs("?status=open"))

	var one struct {
		AlertID string `json:"alertId"`
		Status  string `json:"status"`
		RingID  string `json:"ringId"`
	}
	res = f.do(http.MethodGet, "/v1/alerts/"+pair.Alert.AlertID, readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &one)
	require.Equal(t, "reviewed", one.Status)
	require.Equal(t, pair.Alert.RingID, one.RingID)
	f.do(http.MethodGet, "/v1/alerts/8abc1463-cea7-4c06-9255-77650933ca25", readKey, nil).apiError(t, http.StatusNotFound, "not_found")
	require.Equal(t, "alertId", f.do(http.MethodGet, "/v1/alerts/x", readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input").Field)
	require.Equal(t, "severity", f.do(http.MethodGet, "/v1/alerts?severity=urgent", readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input").Field)
	require.Equal(t, "status", f.do(http.MethodGet, "/v1/alerts?status=closed", readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input").Field)
}

func TestUnknownQueryParametersAreRejectedOnEveryRoute(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s-b", "b")
	for _, target := range []string{
		"/v1/alerts?severty=high", "/v1/rings?sort=size", "/v1/reviews?user=a", "/v1/users/b/duplicates?x=1",
		"/v1/users/b/cluster?depth=2", "/v1/checks/s-b?verbose=1", "/v1/rings/" + duplicate.RingID("b") + "?page=2",
		"/healthz?x=1", "/openapi.json?format=yaml",
	} {
		res := f.do(http.MethodGet, target, readKey, nil)
		e := res.apiError(t, http.StatusBadRequest, "invalid_input")
		u, _ := url.Parse(target)
		for name := range u.Query() {
			require.Equal(t, name, e.Field, target)
			require.Contains(t, e.Message, name, target)
		}
	}
}

func TestReviewHistoryIsNewestFirstAndFiltered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s-b", "b")
	f.seed("s-a", "a", "b")
	f.seed("s-c", "c", "a")
	for _, r := range []struct{ key, user, other, decision string }{
		{reviewKey, "a", "b", "confirmed_fraud"}, {reviewOnlyKey, "c", "a", "false_positive"}, {reviewKey, "b", "a", "same_person"},
	} {
		res := f.do(http.MethodPost, "/v1/reviews", r.key, map[string]string{"userId": r.user, "duplicateUserId": r.other, "decision": r.decision})
		require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	}
	decisions := func(query string) ([]string, *string) {
		t.Helper()
		var page struct {
			Reviews []struct {
				Decision   string `json:"decision"`
				ReviewedBy string `json:"reviewedBy"`
			} `json:"reviews"`
			NextCursor *string `json:"nextCursor"`
		}
		res := f.do(http.MethodGet, "/v1/reviews"+query, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		res.json(t, &page)
		out := []string{}
		for _, r := range page.Reviews {
			out = append(out, r.Decision+"/"+r.ReviewedBy)
		}
		return out, page.NextCursor
	}
	all, _ := decisions("")
	require.Equal(t, []string{"same_person/analyst", "false_positive/bot", "confirmed_fraud/analyst"}, all)
	byBot, _ := decisions("?reviewer=bot")
	require.Equal(t, []string{"false_positive/bot"}, byBot)
	ofC, _ := decisions("?userId=c")
	require.Equal(t, []string{"false_positive/bot"}, ofC)
	first, cursor := decisions("?limit=2")
	require.Len(t, first, 2)
	require.NotNil(t, cursor)
	rest, _ := decisions("?limit=2&cursor=" + url.QueryEscape(*cursor))
	require.Equal(t, []string{"confirmed_fraud/analyst"}, rest)
	none, _ := decisions("?since=2999-01-01T00:00:00Z")
	require.Empty(t, none)
}

func TestAMethodTheRouteDoesNotServeIs405WhateverItsQuery(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(http.MethodPut, "/v1/alerts?cursor=x&whatever=1", readKey, nil).apiError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	f.do("TRACE", "/v1/callbacks/advance?token=x", "", nil).apiError(t, http.StatusMethodNotAllowed, "method_not_allowed")
}

// A ring of more than duplicate.MaxRingPageMembers accounts answers its totals and one member's
// links (a face farm's page never reads all of its links): ?userId= chooses the member, the ring's
// newest by default; a userId that is not a member is a 404 naming it.
func TestALargeRingAnswersItsTotalsAndOneMembersLinks(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const accounts = duplicate.MaxRingPageMembers + 10
	id := func(i int) string { return fmt.Sprintf("chain-%02d", i) }
	f.seed("chain-s00", id(0))
	for i := 1; i < accounts; i++ {
		f.seed(fmt.Sprintf("chain-s%02d", i), id(i), id(i-1))
	}
	f.seed("lone-s", "lone")
	type page struct {
		Size      int     `json:"size"`
		LinkCount int     `json:"linkCount"`
		Focus     *string `json:"focus"`
		Truncated bool    `json:"truncated"`
		Links     []struct {
			UserID          string   `json:"userId"`
			DuplicateUserID string   `json:"duplicateUserId"`
			SignatureIDs    []string `json:"signatureIds"`
		} `json:"links"`
	}
	ringID := duplicate.RingID(id(0))
	var p page
	res := f.do(http.MethodGet, "/v1/rings/"+ringID+"?userId="+id(30), readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &p)
	require.Equal(t, accounts, p.Size)
	require.Equal(t, accounts-1, p.LinkCount, "the ring's totals, not the page's")
	require.NotNil(t, p.Focus)
	require.Equal(t, id(30), *p.Focus)
	require.True(t, p.Truncated)
	require.Len(t, p.Links, 2, "chain-30's two links")
	for _, l := range p.Links {
		require.Contains(t, []string{l.UserID, l.DuplicateUserID}, id(30))
		require.NotEmpty(t, l.SignatureIDs, "each link with its evidence")
	}

	res = f.do(http.MethodGet, "/v1/rings/"+ringID, readKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	p = page{}
	res.json(t, &p)
	require.Equal(t, id(accounts-1), *p.Focus, "the ring's newest member by default: the last to verify")
	require.Len(t, p.Links, 1)

	res = f.do(http.MethodGet, "/v1/rings/"+ringID+"?userId=lone", readKey, nil)
	require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
	require.Contains(t, string(res.body), `"field":"userId"`)
}
