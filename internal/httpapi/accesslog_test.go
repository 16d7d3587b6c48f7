package httpapi_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/httpapi"
)

// The privacy officer's key: erase only. analyst (read+review+replay) has every other scope.
const eraseKey = "erase-key-0123456789"

// withAccessLog gives the test server an access log written by the real batching writer into its
// database, and the privacy officer's key.
func withAccessLog(t *testing.T, w **accesslog.Writer) func(*httpapi.Config) {
	return func(cfg *httpapi.Config) {
		writer := accesslog.NewWriter(cfg.Store.(accesslog.Sink), accesslog.Config{FlushInterval: 5 * time.Millisecond})
		t.Cleanup(func() { _ = writer.Close(context.Background()) })
		cfg.AccessLog = writer
		cfg.APIKeys = append(apiKeys(), apikey.Key{Name: "dpo", Scopes: []string{apikey.ScopeErase}, SHA256: sha256.Sum256([]byte(eraseKey))})
		*w = writer
	}
}

type loggedRead struct {
	Actor, Via, What string
	UserIDs          []string
	UserCount        int
	RingID           string
}

// reads returns the stored entries, oldest first, once the writer's queue is written.
func (f *fixture) reads(w *accesslog.Writer) []loggedRead {
	f.t.Helper()
	require.NoError(f.t, w.Flush(context.Background()))
	rows, err := f.pool.Query(context.Background(),
		`SELECT actor, via, what, user_ids, user_count, coalesce(ring_id, '') FROM access_log ORDER BY read_at, entry_id`)
	require.NoError(f.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[loggedRead])
	require.NoError(f.t, err)
	return out
}

func TestEveryReadOfAPersonsDataIsInTheAccessLog(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	f.seed("s-b", "b")
	saved := f.seed("s-a", "a", "b")
	f.seed("s-c", "c", "a")
	f.seed("s-z", "z") // a loner nobody reads
	require.NotNil(t, saved.Alert)
	ring := duplicate.RingID("a")

	for _, target := range []string{"/v1/users/a/duplicates", "/v1/users/c/cluster", "/v1/checks/s-a",
		"/v1/alerts/" + saved.Alert.AlertID, "/v1/alerts?userId=b", "/v1/rings/" + ring, "/v1/reviews?userId=a"} {
		res := f.do(http.MethodGet, target, reviewKey, nil)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", target, res.body)
	}
	// Not about a person: the unfiltered lists, and answers that showed nobody.
	for _, target := range []string{"/v1/alerts", "/v1/rings", "/v1/reviews"} {
		require.Equal(t, http.StatusOK, f.do(http.MethodGet, target, reviewKey, nil).status)
	}
	f.do(http.MethodGet, "/v1/users/nobody/cluster", reviewKey, nil).apiError(t, http.StatusNotFound, "not_found")

	got := f.reads(w)
	want := []loggedRead{
		{What: "GET /v1/users/{userId}/duplicates", UserIDs: []string{"a", "b", "c"}},
		{What: "GET /v1/users/{userId}/cluster", UserIDs: []string{"c", "a", "b"}, RingID: ring},
		{What: "GET /v1/checks/{signatureId}", UserIDs: []string{"a", "b"}},
		{What: "GET /v1/alerts/{alertId}", UserIDs: []string{"a", "b"}, RingID: ring},
		{What: "GET /v1/alerts", UserIDs: []string{"b", "a"}},
		{What: "GET /v1/rings/{ringId}", UserIDs: []string{"a", "b", "c"}, RingID: ring},
		{What: "GET /v1/reviews", UserIDs: []string{"a"}},
	}
	require.Len(t, got, len(want), "%+v", got)
	for i, w := range want {
		w.Actor, w.Via, w.UserCount = "analyst", "api", len(w.UserIDs)
		require.Equal(t, w, got[i], "entry %d", i)
	}
}

func TestTheAccessLogAnswersWhoReadWhatNewestFirstInPages(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	f.seed("s-b", "b")
	f.seed("s-a", "a", "b")
	f.seed("s-y", "y")
	f.seed("s-x", "x", "y")
	start := time.Now().UTC()
	for _, target := range []string{"/v1/users/a/cluster", "/v1/users/x/cluster", "/v1/users/b/duplicates"} {
		require.Equal(t, http.StatusOK, f.do(http.MethodGet, target, reviewKey, nil).status)
	}
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/v1/users/y/duplicates", readKey, nil).status)

	type page struct {
		Entries []struct {
			EntryID   int64     `json:"entryId"`
			ReadAt    time.Time `json:"readAt"`
			Actor     string    `json:"actor"`
			Via       string    `json:"via"`
			What      string    `json:"what"`
			UserIDs   []string  `json:"userIds"`
			UserCount int       `json:"userCount"`
			RingID    *string   `json:"ringId"`
		} `json:"entries"`
		NextCursor *string `json:"nextCursor"`
		HasMore    bool    `json:"hasMore"`
	}
	var p page
	// The queue is written before the log is read: no waiting for the writer's interval.
	f.do(http.MethodGet, "/v1/access-log?userId=a", eraseKey, nil).json(t, &p)
	require.Len(t, p.Entries, 2, "a was shown by its cluster and by b's duplicates")
	require.Equal(t, "GET /v1/users/{userId}/duplicates", p.Entries[0].What, "newest first")
	require.Equal(t, []string{"b", "a"}, p.Entries[0].UserIDs)
	require.Nil(t, p.Entries[0].RingID)
	require.Equal(t, duplicate.RingID("a"), *p.Entries[1].RingID)
	require.Equal(t, "analyst", p.Entries[1].Actor)
	require.Equal(t, "api", p.Entries[1].Via)
	require.False(t, p.HasMore)
	require.Nil(t, p.NextCursor)
	require.False(t, p.Entries[1].ReadAt.Before(start.Truncate(time.Millisecond)))

	p = page{}
	f.do(http.MethodGet, "/v1/access-log?actor=dashboard", eraseKey, nil).json(t, &p)
	require.Len(t, p.Entries, 1)
	require.Equal(t, []string{"y", "x"}, p.Entries[0].UserIDs)
	p = page{}
	f.do(http.MethodGet, "/v1/access-log?ringId="+duplicate.RingID("x"), eraseKey, nil).json(t, &p)
	require.Len(t, p.Entries, 1)
	require.Equal(t, []string{"x", "y"}, p.Entries[0].UserIDs)
	p = page{}
	f.do(http.MethodGet, "/v1/access-log?since="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), eraseKey, nil).json(t, &p)
	require.Empty(t, p.Entries)

	// Reading the log is a read too: the three reads above that showed ids are entries now.
	var seen []int64
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 20)
		p = page{}
		f.do(http.MethodGet, "/v1/access-log?actor=analyst&limit=2"+cursor, eraseKey, nil).json(t, &p)
		for _, e := range p.Entries {
			require.Equal(t, "analyst", e.Actor)
			seen = append(seen, e.EntryID)
		}
		if !p.HasMore {
			break
		}
		cursor = "&cursor=" + url.QueryEscape(*p.NextCursor)
	}
	require.Len(t, seen, 3, "three reads by analyst, each once across the pages")
	require.Greater(t, seen[0], seen[1])
	require.Greater(t, seen[1], seen[2])
	p = page{}
	f.do(http.MethodGet, "/v1/access-log?actor=dpo", eraseKey, nil).json(t, &p)
	require.NotEmpty(t, p.Entries, "the privacy officer's reads of the log are logged")
	require.Equal(t, "GET /v1/access-log", p.Entries[0].What)
}

func TestThePrivacyRoutesNeedTheEraseScopeAndStrictQueries(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	f.seed("s-a", "a")
	for _, target := range []string{"/v1/access-log", "/v1/users/a/export"} {
		f.do(http.MethodGet, target, "", nil).apiError(t, http.StatusUnauthorized, "unauthorized")
		for _, key := range []string{readKey, reviewKey, reviewOnlyKey} {
			e := f.do(http.MethodGet, target, key, nil).apiError(t, http.StatusForbidden, "forbidden")
			require.Contains(t, e.Message, "erase")
		}
		require.Equal(t, http.StatusOK, f.do(http.MethodGet, target, eraseKey, nil).status)
	}
	// And the erase key alone reads nothing else.
	f.do(http.MethodGet, "/v1/users/a/cluster", eraseKey, nil).apiError(t, http.StatusForbidden, "forbidden")

	for query, field := range map[string]string{
		"userId=a%00b":                     "userId",
		"userId=":                          "userId",
		"userId=a&userId=b":                "userId",
		"ringId=ring_1":                    "ringId",
		"ringId=RING_0123456789abcdef":     "ringId",
		"actor=" + strings.Repeat("k", 65): "actor",
		"actor=a%20b":                      "actor",
		"since=yesterday":                  "since",
		"limit=0":                          "limit",
		"limit=501":                        "limit",
		"limit=ten":                        "limit",
		"cursor=not-a-cursor":              "cursor",
		"cursor=e30":                       "cursor", // {}
		"user=a":                           "user",
	} {
		e := f.do(http.MethodGet, "/v1/access-log?"+query, eraseKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Equal(t, field, e.Field, query)
	}
	e := f.do(http.MethodGet, "/v1/users/a/export?region=ph", eraseKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "region", e.Field)
	e = f.do(http.MethodGet, "/v1/users/a%E2%80%AEb/export", eraseKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "userId", e.Field)
}

// refusingLog is an access log whose queue stays full.
type refusingLog struct{}

func (refusingLog) Record(context.Context, accesslog.Entry) error { return accesslog.ErrUnavailable }
func (refusingLog) Flush(context.Context) error                   { return nil }

func TestAReadThatCannotBeRecordedIsNotAnswered(t *testing.T) {
	t.Parallel()
	f := setup(t, func(cfg *httpapi.Config) { cfg.AccessLog = refusingLog{} })
	f.seed("s-b", "b")
	f.seed("s-a", "a", "b")
	res := f.do(http.MethodGet, "/v1/users/a/cluster", readKey, nil)
	res.apiError(t, http.StatusServiceUnavailable, "access_log_unavailable")
	require.Equal(t, "5", res.header.Get("Retry-After"))
	require.NotContains(t, string(res.body), `"b"`, "nothing of the answer is sent")
	// Lists that show no particular person are not logged, so they are answered.
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/v1/alerts", readKey, nil).status)
}

func TestTheExportHoldsEveryRowAboutThePersonAndNothingOfAnother(t *testing.T) {
	t.Parallel()
	var w *accesslog.Writer
	f := setup(t, withAccessLog(t, &w))
	ctx := context.Background()
	// a's ring: a verified twice; b matched a; c matched a (and later matched by a's second check).
	f.seed("s-a1", "a")
	f.seed("s-b", "b", "a")
	f.seed("s-c", "c", "a", "b")
	f.seed("s-a2", "a", "b", "c")
	// Someone else entirely: z and its ring with y, reviewed and read.
	f.seed("s-y", "y")
	f.seed("s-z", "z", "y")
	_, err := f.store.AddReview(ctx, duplicate.Review{UserID: "a", DuplicateUserID: "b", Decision: duplicate.DecisionConfirmedFraud,
		Note: "same selfie", ReviewedBy: "analyst"})
	require.NoError(t, err)
	_, err = f.store.AddReview(ctx, duplicate.Review{UserID: "y", DuplicateUserID: "z", Decision: duplicate.DecisionFalsePositive,
		Note: "twins, same name", ReviewedBy: "analyst"})
	require.NoError(t, err)
	// A third pair whose note names a: a review naming them.
	f.seed("s-p", "p")
	f.seed("s-q", "q", "p")
	_, err = f.store.AddReview(ctx, duplicate.Review{UserID: "p", DuplicateUserID: "q", Decision: duplicate.DecisionConfirmedFraud,
		Note: "same device as a.", ReviewedBy: "analyst"})
	require.NoError(t, err)
	require.NoError(t, f.store.RecordStarted(ctx, duplicate.Started{SignatureID: "s-a3", UserID: "a", Region: "ph"}, time.Minute,
		duplicate.Source{Topic: "idv.started"}))
	require.NoError(t, f.store.RecordStarted(ctx, duplicate.Started{SignatureID: "s-z2", UserID: "z", Region: "ph"}, time.Minute,
		duplicate.Source{Topic: "idv.started"}))
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/v1/users/a/cluster", reviewKey, nil).status)
	require.Equal(t, http.StatusOK, f.do(http.MethodGet, "/v1/users/z/cluster", readKey, nil).status)

	var x struct {
		UserID        string `json:"userId"`
		Verifications []struct {
			SignatureID     string   `json:"signatureId"`
			MatchedUserIDs  []string `json:"matchedUserIds"`
			OverflowUserIDs []string `json:"overflowUserIds"`
		} `json:"verifications"`
		NamedIn []struct {
			SignatureID string `json:"signatureId"`
			UserID      string `json:"userId"`
		} `json:"namedInVerifications"`
		Started []struct {
			SignatureID string `json:"signatureId"`
			Status      string `json:"status"`
		} `json:"startedVerifications"`
		Links []struct {
			UserID          string `json:"userId"`
			DuplicateUserID string `json:"duplicateUserId"`
		} `json:"links"`
		Ring struct {
			RingID  *string  `json:"ringId"`
			Size    int      `json:"size"`
			Members []string `json:"members"`
		} `json:"ring"`
		Alerts []struct {
			UserID string `json:"userId"`
		} `json:"alerts"`
		Reviews []struct {
			Note string `json:"note"`
		} `json:"reviews"`
		AccessLog []struct {
			Actor  string  `json:"actor"`
			What   string  `json:"what"`
			RingID *string `json:"ringId"`
		} `json:"accessLog"`
	}
	res := f.do(http.MethodGet, "/v1/users/a/export", eraseKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.json(t, &x)
	require.Equal(t, "a", x.UserID)
	require.Len(t, x.Verifications, 2)
	require.Equal(t, "s-a1", x.Verifications[0].SignatureID)
	require.Equal(t, []string{"b", "c"}, x.Verifications[1].MatchedUserIDs)
	require.Empty(t, x.Verifications[1].OverflowUserIDs)
	require.Len(t, x.NamedIn, 2)
	require.Equal(t, "s-b", x.NamedIn[0].SignatureID)
	require.Equal(t, "c", x.NamedIn[1].UserID)
	require.Len(t, x.Started, 1)
	require.Equal(t, "pending", x.Started[0].Status)
	require.Len(t, x.Links, 2, "a-b and a-c")
	require.Equal(t, duplicate.RingID("a"), *x.Ring.RingID)
	require.Equal(t, []string{"a", "b", "c"}, x.Ring.Members)
	require.Len(t, x.Alerts, 2, "raised for b and for c, naming a (a's second check linked nothing new)")
	require.Len(t, x.Reviews, 2, "a-b's review, and p-q's whose note names a")
	require.Equal(t, "same device as a.", x.Reviews[1].Note)
	require.Len(t, x.AccessLog, 1)
	require.Equal(t, "GET /v1/users/{userId}/cluster", x.AccessLog[0].What)
	require.Equal(t, "analyst", x.AccessLog[0].Actor)
	// Nothing of the other ring (whose note holds an "a" inside words only), nor who read it.
	for _, other := range []string{`"z"`, `"y"`, "s-z", "s-y", duplicate.RingID("y"), "dashboard", "twins"} {
		require.NotContains(t, string(res.body), other)
	}

	// The export is a read of a's data, logged as the privacy officer's.
	got := f.reads(w)
	last := got[len(got)-1]
	require.Equal(t, "dpo", last.Actor)
	require.Equal(t, "GET /v1/users/{userId}/export", last.What)
	require.Equal(t, "a", last.UserIDs[0])
	require.Equal(t, duplicate.RingID("a"), last.RingID)

	// Someone Doppel holds nothing about: the empty document, and a ring of one.
	res = f.do(http.MethodGet, "/v1/users/stranger/export", eraseKey, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	x.Verifications, x.Links, x.Alerts = nil, nil, nil
	res.json(t, &x)
	require.Empty(t, x.Verifications)
	require.Empty(t, x.Links)
	require.Empty(t, x.Alerts)
	require.Nil(t, x.Ring.RingID)
	require.Equal(t, 1, x.Ring.Size)
}
