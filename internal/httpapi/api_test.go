package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/postgres"
)

func TestTheSpecListsEveryRoute(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var spec struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	res := f.do(http.MethodGet, "/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "application/json", mediaType(res.header))
	res.json(t, &spec)
	require.True(t, strings.HasPrefix(spec.OpenAPI, "3."))

	var documented []string
	for path, ops := range spec.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	registered := f.server.Routes()
	slices.Sort(documented)
	slices.Sort(registered)
	require.Equal(t, registered, documented, "openapi.json and routes.go disagree")
}

func TestTheSpecDescribesEveryOperationsErrorsAndSecurity(t *testing.T) {
	t.Parallel()
	var spec struct {
		Paths map[string]map[string]struct {
			Security  *[]map[string][]string     `json:"security"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(httpapi.OpenAPISpec(), &spec))
	for path, ops := range spec.Paths {
		for method, op := range ops {
			if !strings.HasPrefix(path, "/v1/") {
				continue
			}
			name := method + " " + path
			require.NotNil(t, op.Security, name)
			for _, code := range []string{"400", "401"} {
				require.Contains(t, op.Responses, code, name)
			}
			if !strings.HasPrefix(path, "/v1/callbacks/advance") {
				require.Contains(t, op.Responses, "403", name)
			}
		}
	}
}

func TestAuthenticationAndScopes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "alice", "bob")

	res := f.do(http.MethodGet, "/v1/users/alice/duplicates", "", nil)
	res.apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Equal(t, `Bearer realm="doppel"`, res.header.Get("WWW-Authenticate"))

	f.do(http.MethodGet, "/v1/users/alice/duplicates", "not-a-key", nil).apiError(t, http.StatusUnauthorized, "unauthorized")
	req := func(auth string) response {
		r, _ := http.NewRequest(http.MethodGet, "/v1/users/alice/duplicates", nil)
		r.Header.Set("Authorization", auth)
		rec := newRecorder()
		f.handler.ServeHTTP(rec, r)
		return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	}
	req("Basic "+readKey).apiError(t, http.StatusUnauthorized, "unauthorized")
	req("Bearer").apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Equal(t, http.StatusOK, req("bearer "+readKey).status, "the scheme is case-insensitive")

	// A known key without the scope is 403, not 401.
	e := f.do(http.MethodPost, "/v1/reviews", readKey, map[string]string{"userId": "alice",
		"duplicateUserId": "bob", "decision": "false_positive"}).apiError(t, http.StatusForbidden, "forbidden")
	require.Contains(t, e.Message, "review")
	f.do(http.MethodPost, "/v1/replay", readKey, map[string]any{"signatureIds": []string{"s1"}}).
		apiError(t, http.StatusForbidden, "forbidden")
	f.do(http.MethodGet, "/v1/alerts", reviewOnlyKey, nil).apiError(t, http.StatusForbidden, "forbidden")
	f.do(http.MethodGet, "/v1/checks/s1", reviewOnlyKey, nil).apiError(t, http.StatusForbidden, "forbidden")
	f.do(http.MethodGet, "/v1/users/alice/cluster", reviewOnlyKey, nil).apiError(t, http.StatusForbidden, "forbidden")
	f.do(http.MethodGet, "/v1/users/alice/duplicates", reviewOnlyKey, nil).apiError(t, http.StatusForbidden, "forbidden")

	// Every protected route asks for a key.
	for _, r := range [][2]string{{"GET", "/v1/users/alice/cluster"}, {"GET", "/v1/checks/s1"}, {"GET", "/v1/alerts"},
		{"POST", "/v1/reviews"}, {"POST", "/v1/replay"}} {
		f.do(r[0], r[1], "", "{}").apiError(t, http.StatusUnauthorized, "unauthorized")
	}
}

func TestEveryErrorHasTheOneShape(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.do(http.MethodGet, "/v1/nowhere", readKey, nil).apiError(t, http.StatusNotFound, "not_found")
	res := f.do(http.MethodDelete, "/v1/alerts", readKey, nil)
	res.apiError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	require.Contains(t, res.header.Get("Allow"), "GET")
	f.do(http.MethodPost, "/v1/reviews", reviewKey, "{").apiError(t, http.StatusBadRequest, "invalid_input")
	f.do(http.MethodPost, "/v1/reviews", reviewKey, `{"note":"`+strings.Repeat("x", 70<<10)+`"}`).
		apiError(t, http.StatusRequestEntityTooLarge, "payload_too_large")

	// Without a database the routes still exist and say so.
	bare := setup(t, func(c *httpapi.Config) { c.Store = nil })
	bare.do(http.MethodGet, "/v1/alerts", readKey, nil).apiError(t, http.StatusServiceUnavailable, "not_configured")
}

func TestUserDuplicates(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "alice", "bob", "carol")
	f.seed("s2", "bob", "alice")
	f.seed("s3", "dave")

	var out struct {
		UserID     string `json:"userId"`
		Duplicates []struct {
			UserID       string          `json:"userId"`
			SeenCount    int             `json:"seenCount"`
			SignatureIDs []string        `json:"signatureIds"`
			FirstSeenAt  time.Time       `json:"firstSeenAt"`
			LastSeenAt   time.Time       `json:"lastSeenAt"`
			LatestReview json.RawMessage `json:"latestReview"`
			Reviews      []struct {
				Decision   string `json:"decision"`
				ReviewedBy string `json:"reviewedBy"`
				Note       string `json:"note"`
			} `json:"reviews"`
		} `json:"duplicates"`
	}
	res := f.do(http.MethodGet, "/v1/users/alice/duplicates", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	res.json(t, &out)
	require.Equal(t, "alice", out.UserID)
	require.Len(t, out.Duplicates, 2)
	bob := out.Duplicates[0]
	require.Equal(t, "bob", bob.UserID)
	require.Equal(t, 2, bob.SeenCount)
	require.ElementsMatch(t, []string{"s1", "s2"}, bob.SignatureIDs, "both sides' checks linked the pair")
	require.False(t, bob.FirstSeenAt.IsZero())
	require.JSONEq(t, "null", string(bob.LatestReview))
	require.Equal(t, "carol", out.Duplicates[1].UserID)
	require.Equal(t, []string{"s1"}, out.Duplicates[1].SignatureIDs)

	// Two reviews: the history shows both, newest first, and the latest decision.
	for _, d := range []string{"confirmed_fraud", "false_positive"} {
		res := f.do(http.MethodPost, "/v1/reviews", reviewKey, map[string]string{"userId": "bob",
			"duplicateUserId": "alice", "decision": d, "note": "checked " + d})
		require.Equal(t, http.StatusCreated, res.status, string(res.body))
	}
	res = f.do(http.MethodGet, "/v1/users/alice/duplicates", readKey, nil)
	res.json(t, &out)
	require.Len(t, out.Duplicates[0].Reviews, 2)
	require.Equal(t, "false_positive", out.Duplicates[0].Reviews[0].Decision)
	require.Equal(t, "analyst", out.Duplicates[0].Reviews[0].ReviewedBy)
	require.Equal(t, "confirmed_fraud", out.Duplicates[0].Reviews[1].Decision)
	require.Contains(t, string(out.Duplicates[0].LatestReview), `"false_positive"`)

	// A known user without links has none; an unknown one is 404.
	res = f.do(http.MethodGet, "/v1/users/dave/duplicates", readKey, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.JSONEq(t, `{"userId":"dave","duplicates":[],"truncated":false}`, string(res.body))
	f.do(http.MethodGet, "/v1/users/nobody/duplicates", readKey, nil).apiError(t, http.StatusNotFound, "not_found")

	e := f.do(http.MethodGet, "/v1/users/"+strings.Repeat("u", 300)+"/duplicates", readKey, nil).
		apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "userId", e.Field)
	e = f.do(http.MethodGet, "/v1/users/a%00b/duplicates", readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "userId", e.Field)
	// A bidi override or a zero-width space in a path is refused as at every other entrance.
	for _, path := range []string{"/v1/users/admin%E2%80%AEgnp.exe/duplicates", "/v1/users/ad%E2%80%8Bmin/cluster"} {
		e = f.do(http.MethodGet, path, readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, "userId", e.Field, path)
		require.Contains(t, e.Message, "U+20", path)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("sig-1", "alice", "bob")

	res := f.do(http.MethodGet, "/v1/checks/sig-1", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	var c map[string]any
	res.json(t, &c)
	require.Equal(t, "sig-1", c["signatureId"])
	require.Equal(t, "alice", c["userId"])
	require.Equal(t, "duplicates_found", c["outcome"])
	require.Equal(t, []any{"bob"}, c["matchedUserIds"])
	require.Equal(t, "tx-sig-1", c["vendorTransactionId"])
	require.Equal(t, map[string]any{"topic": "idv.completed", "partition": 2.0, "offset": 40.0}, c["source"])
	require.Equal(t, 0.0, c["replayCount"])
	require.Nil(t, c["replayedAt"])
	require.Nil(t, c["occurredAt"])

	f.do(http.MethodGet, "/v1/checks/sig-2", readKey, nil).apiError(t, http.StatusNotFound, "not_found")
	e := f.do(http.MethodGet, "/v1/checks/"+strings.Repeat("s", 129), readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "signatureId", e.Field)
}

func TestClusterIsTheWholeRing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "carol", "bob")
	f.seed("s2", "bob", "alice")
	f.seed("s3", "erin", "dave")
	f.seed("s4", "frank")

	var ring struct {
		UserID  string   `json:"userId"`
		RingID  string   `json:"ringId"`
		Size    int      `json:"size"`
		Members []string `json:"members"`
		Links   []struct {
			UserID          string          `json:"userId"`
			DuplicateUserID string          `json:"duplicateUserId"`
			SeenCount       int             `json:"seenCount"`
			LatestReview    json.RawMessage `json:"latestReview"`
		} `json:"links"`
		Truncated bool `json:"truncated"`
	}
	res := f.do(http.MethodGet, "/v1/users/carol/cluster", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	res.json(t, &ring)
	require.Equal(t, []string{"alice", "bob", "carol"}, ring.Members, "alice is linked to carol through bob")
	require.Equal(t, 3, ring.Size)
	require.Equal(t, duplicate.RingID("alice"), ring.RingID, "named after its smallest member")
	require.Len(t, ring.Links, 2)
	require.False(t, ring.Truncated)

	// Every member sees the same ring.
	res = f.do(http.MethodGet, "/v1/users/alice/cluster", readKey, nil)
	var other struct {
		RingID string `json:"ringId"`
	}
	res.json(t, &other)
	require.Equal(t, ring.RingID, other.RingID)

	res = f.do(http.MethodGet, "/v1/users/frank/cluster", readKey, nil)
	res.json(t, &ring)
	require.Equal(t, []string{"frank"}, ring.Members, "a known user without links is a ring of one")
	require.Empty(t, ring.Links)

	f.do(http.MethodGet, "/v1/users/zed/cluster", readKey, nil).apiError(t, http.StatusNotFound, "not_found")
}

func TestAlertsArePagedWithACursor(t *testing.T) {
	t.Parallel()
	f := setup(t)
	start := time.Now().Add(-time.Second)
	for i := range 5 {
		f.seed(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i), "shared")
	}
	type page struct {
		Alerts []struct {
			AlertID     string     `json:"alertId"`
			SignatureID string     `json:"signatureId"`
			RingID      string     `json:"ringId"`
			RingSize    int        `json:"ringSize"`
			Severity    string     `json:"severity"`
			PublishedAt *time.Time `json:"publishedAt"`
		} `json:"alerts"`
		NextCursor *string `json:"nextCursor"`
		HasMore    bool    `json:"hasMore"`
	}
	var sigs []string
	target := "/v1/alerts?limit=2&since=" + url.QueryEscape(start.UTC().Format(time.RFC3339Nano))
	for range 4 {
		var p page
		res := f.do(http.MethodGet, target, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, string(res.body))
		res.json(t, &p)
		for _, a := range p.Alerts {
			sigs = append(sigs, a.SignatureID)
			require.Equal(t, duplicate.RingID("shared"), a.RingID, "every user joined the ring of shared")
			require.Nil(t, a.PublishedAt)
		}
		if !p.HasMore {
			require.NotNil(t, p.NextCursor, "a cursor to poll for newer alerts")
			break
		}
		target = "/v1/alerts?limit=2&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	require.Equal(t, []string{"s0", "s1", "s2", "s3", "s4"}, sigs)

	var p page
	res := f.do(http.MethodGet, "/v1/alerts", readKey, nil)
	res.json(t, &p)
	require.Len(t, p.Alerts, 5)
	require.Equal(t, "normal", p.Alerts[0].Severity, "a pair is below the threshold of 3")
	require.Equal(t, 2, p.Alerts[0].RingSize)
	require.Equal(t, "high", p.Alerts[1].Severity, "the ring reached 3 accounts")

	res = f.do(http.MethodGet, "/v1/alerts?since="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), readKey, nil)
	require.JSONEq(t, `{"alerts":[],"nextCursor":null,"hasMore":false}`, string(res.body))

	for _, bad := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=501", "limit"}, {"limit=ten", "limit"}, {"limit=99999999999999999999", "limit"},
		{"since=yesterday", "since"}, {"cursor=abc", "cursor"}, {"cursor=" + strings.Repeat("A", 2000), "cursor"},
	} {
		e := f.do(http.MethodGet, "/v1/alerts?"+bad.query, readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, bad.field, e.Field, bad.query)
	}
}

func TestReviews(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "alice", "bob")
	f.seed("s2", "carol")

	res := f.do(http.MethodPost, "/v1/reviews", reviewKey, map[string]string{"userId": "alice",
		"duplicateUserId": "bob", "decision": "same_person", "note": `re-registered after "losing" the phone`})
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	var r map[string]any
	res.json(t, &r)
	require.Equal(t, "same_person", r["decision"])
	require.Equal(t, "analyst", r["reviewedBy"], "the reviewer is the API key's name")
	require.Equal(t, true, r["linked"])
	require.Equal(t, `re-registered after "losing" the phone`, r["note"])
	require.NotZero(t, r["reviewId"])
	require.NotEmpty(t, r["reviewedAt"])

	// A null note is no note.
	res = f.do(http.MethodPost, "/v1/reviews", reviewKey, `{"userId":"alice","duplicateUserId":"bob","decision":"confirmed_fraud","note":null}`)
	require.Equal(t, http.StatusCreated, res.status, string(res.body))

	// A pair of known users that is not linked yet can be cleared in advance.
	res = f.do(http.MethodPost, "/v1/reviews", reviewOnlyKey, map[string]string{"userId": "carol",
		"duplicateUserId": "alice", "decision": "false_positive"})
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	res.json(t, &r)
	require.Equal(t, false, r["linked"])
	require.Equal(t, "bot", r["reviewedBy"])
	saved := f.seed("s3", "carol", "alice")
	require.Equal(t, []string{"alice"}, saved.NewLinks)
	require.Nil(t, saved.Alert, "a pair cleared as false_positive raises no alert when seen")

	for _, bad := range []struct {
		body  string
		field string
	}{
		{`{"duplicateUserId":"bob","decision":"false_positive"}`, "userId"},
		{`{"userId":"alice","decision":"false_positive"}`, "duplicateUserId"},
		{`{"userId":"alice","duplicateUserId":"bob"}`, "decision"},
		{`{"userId":"alice","duplicateUserId":"bob","decision":"maybe"}`, "decision"},
		{`{"userId":"alice","duplicateUserId":"alice","decision":"false_positive"}`, "duplicateUserId"},
		{`{"userId":7,"duplicateUserId":"bob","decision":"false_positive"}`, "userId"},
		{`{"userId":"alice","duplicateUserId":"bob","decision":"false_positive","extra":1}`, "extra"},
		{`{"userId":"alice","duplicateUserId":"bob","decision":"false_positive","note":"` + strings.Repeat("n", 2001) + `"}`, "note"},
		{`{"userId":"alice","duplicateUserId":"bob","decision":"false_positive","note":"a\u0000b"}`, "note"},
		{`{"userId":"","duplicateUserId":"bob","decision":"false_positive"}`, "userId"},
		{`[]`, ""},
		{`null`, "userId"},
		{``, ""},
		{`{} {}`, ""},
	} {
		e := f.do(http.MethodPost, "/v1/reviews", reviewKey, bad.body).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, bad.field, e.Field, bad.body)
	}

	e := f.do(http.MethodPost, "/v1/reviews", reviewKey, map[string]string{"userId": "alice",
		"duplicateUserId": "nobody", "decision": "confirmed_fraud"}).apiError(t, http.StatusNotFound, "not_found")
	require.Equal(t, "duplicateUserId", e.Field)
}

func TestReplayReRunsFaceSearchAndCountsWhatChanged(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "alice", "bob")
	f.seed("s2", "carol")
	_, err := f.store.SaveCheck(context.Background(), duplicate.Check{SignatureID: "s3", EventType: "SUBMIT_COMPLETED",
		Outcome: duplicate.OutcomeSkipped, CheckedAt: time.Now()})
	require.NoError(t, err)
	f.vendor.set("s1", "bob", "dave") // the vendor's index now also holds dave
	f.vendor.set("s2")

	res := f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s1", "s2", "s3", "s1"}})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	var out struct {
		Requested, Replayed, Skipped, Failed, Changed, NewLinks, Alerts int
		Results                                                         []struct {
			SignatureID string   `json:"signatureId"`
			Status      string   `json:"status"`
			Added       []string `json:"added"`
			NewLinks    []string `json:"newLinks"`
			AlertID     *string  `json:"alertId"`
		} `json:"results"`
	}
	res.json(t, &out)
	require.Equal(t, 3, out.Requested, "repeats are re-run once")
	require.Equal(t, 2, out.Replayed)
	require.Equal(t, 1, out.Skipped)
	require.Equal(t, 1, out.Changed)
	require.Equal(t, 1, out.NewLinks)
	require.Equal(t, 1, out.Alerts)
	require.Equal(t, []string{"dave"}, out.Results[0].Added)
	require.NotNil(t, out.Results[0].AlertID)
	require.Equal(t, "skipped", out.Results[2].Status)
	require.Equal(t, 1, f.vendor.count("s1"), "billed once more, by design")
	require.Equal(t, 0, f.vendor.count("s3"))
	select {
	case <-f.alerted:
	default:
		t.Fatal("the relay was not woken for the new alert")
	}

	check, err := f.store.Check(context.Background(), "s1")
	require.NoError(t, err)
	require.Equal(t, []string{"bob", "dave"}, check.MatchedUserIDs)
	require.Equal(t, 1, check.ReplayCount)
	require.NotNil(t, check.ReplayedAt)

	// By window: every searched check first stored in it.
	res = f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{
		"from": time.Now().Add(-time.Hour).Format(time.RFC3339), "to": time.Now().Add(time.Minute).Format(time.RFC3339), "limit": 10})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	res.json(t, &out)
	require.Equal(t, 2, out.Requested)
	require.Zero(t, out.Changed)
	require.Equal(t, 2, f.vendor.count("s1"))

	// An unknown signatureId stops the whole request before anything is billed.
	e := f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s2", "nope"}}).
		apiError(t, http.StatusNotFound, "not_found")
	require.Equal(t, "signatureIds", e.Field)
	require.Contains(t, e.Message, `"nope"`)
	require.Equal(t, 2, f.vendor.count("s2"))

	for _, bad := range []struct {
		body  string
		field string
	}{
		{`{}`, "signatureIds"},
		{`{"signatureIds":[]}`, "signatureIds"},
		{`{"signatureIds":["s1"],"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z"}`, "signatureIds"},
		{`{"signatureIds":["s1"],"limit":3}`, "limit"},
		{`{"signatureIds":[""]}`, "signatureIds"},
		{`{"signatureIds":"s1"}`, "signatureIds"},
		{`{"signatureIds":[` + strings.Repeat(`"x",`, 1000) + `"y"]}`, "signatureIds"},
		{`{"from":"2026-01-01T00:00:00Z"}`, "to"},
		{`{"to":"2026-01-01T00:00:00Z"}`, "from"},
		{`{"from":"2026-01-02T00:00:00Z","to":"2026-01-01T00:00:00Z"}`, "to"},
		{`{"from":"yesterday","to":"2026-01-01T00:00:00Z"}`, "from"},
		{`{"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z","limit":0}`, "limit"},
		{`{"from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z","limit":1001}`, "limit"},
		{`{"signatureIds":["s1"],"force":true}`, "force"},
	} {
		e := f.do(http.MethodPost, "/v1/replay", reviewKey, bad.body).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, bad.field, e.Field, bad.body)
	}
}

// TestHostileStringsAreHarmless sends quotes, SQL, escapes, odd Unicode and huge values everywhere
// a string goes in: each is answered 2xx or 4xx in the one error shape, never 500, and the data is
// intact afterwards.
func TestHostileStringsAreHarmless(t *testing.T) {
	t.Parallel()
	f := setup(t)
	evil := `o'brien"; DROP TABLE duplicate_links; --`
	f.seed("s1", evil, "bob")

	hostile := []string{evil, `' OR '1'='1`, `"quoted"`, `\`, `%`, `%25`, `a/b`, `..`, `😀`, `ü`, `<script>alert(1)</script>`,
		"tab\there", strings.Repeat("a", 256), strings.Repeat("a", 257), strings.Repeat("é", 200), "\u202e", `$1`, `{}`, `[]`,
		strings.Repeat("x", 100000)}
	for _, h := range hostile {
		p := url.PathEscape(h)
		for _, target := range []string{"/v1/users/" + p + "/duplicates", "/v1/users/" + p + "/cluster", "/v1/checks/" + p,
			"/v1/alerts?since=" + url.QueryEscape(h), "/v1/alerts?cursor=" + url.QueryEscape(h), "/v1/alerts?limit=" + url.QueryEscape(h)} {
			res := f.do(http.MethodGet, target, readKey, nil)
			require.Less(t, res.status, 500, "%s: %s", target, res.body)
			if res.status >= 400 {
				res.apiError(t, res.status, map[int]string{400: "invalid_input", 404: "not_found"}[res.status])
			}
		}
		for _, body := range []any{
			map[string]any{"userId": h, "duplicateUserId": "bob", "decision": "false_positive", "note": h},
			map[string]any{"userId": "bob", "duplicateUserId": h, "decision": h},
			map[string]any{"signatureIds": []string{h}},
			map[string]any{"from": h, "to": h},
		} {
			for _, target := range []string{"/v1/reviews", "/v1/replay"} {
				res := f.do(http.MethodPost, target, reviewKey, body)
				require.Less(t, res.status, 500, "%s %v: %s", target, body, res.body)
			}
		}
	}

	// The user with the SQL in their name is just a user.
	res := f.do(http.MethodGet, "/v1/users/"+url.PathEscape(evil)+"/duplicates", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.Contains(t, string(res.body), `"bob"`)
	res = f.do(http.MethodPost, "/v1/reviews", reviewKey, map[string]string{"userId": evil, "duplicateUserId": "bob",
		"decision": "confirmed_fraud", "note": evil})
	require.Equal(t, http.StatusCreated, res.status, string(res.body))
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM duplicate_links`).Scan(&n))
	require.Equal(t, 1, n)
}

func TestAlertParametersGivenEmptyOrTwiceAreRejected(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, q := range []string{"since=", "limit=", "cursor=", "limit=1&limit=2"} {
		e := f.do(http.MethodGet, "/v1/alerts?"+q, readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.NotEmpty(t, e.Field, q)
	}
}

func TestAnUnreachableDatabaseIs503NotABug(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://doppel@127.0.0.1:1/doppel?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	f := setup(t, func(c *httpapi.Config) { c.Store = postgres.NewStore(pool) })
	res := f.do(http.MethodGet, "/v1/checks/s1", readKey, nil)
	e := res.apiError(t, http.StatusServiceUnavailable, "unavailable")
	require.NotContains(t, e.Message, "127.0.0.1", "internal details are logged, not returned")
	require.Equal(t, "5", res.header.Get("Retry-After"))
}
