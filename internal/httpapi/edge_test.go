package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/readiness"
)

// send serves req and returns the answer.
func (f *fixture) send(req *http.Request) response {
	f.t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func TestCallbackIgnoresTheUserAndEveryOtherEnrichmentField(t *testing.T) {
	t.Parallel()
	f := setup(t)
	res := f.callback("?token="+callbackToken,
		`{"signatureId":"s1","type":"COMPLETED","userId":"innocent-user","occurredAt":"2026-11-25T10:00:00Z","eventId":"e1"}`, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	// Their types do not matter either: they are not read.
	res = f.callback("?token="+callbackToken, `{"signatureId":"s2","type":"COMPLETED","userId":7,"occurredAt":"soon"}`, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.body))

	msgs := f.events.published()
	require.Len(t, msgs, 2)
	require.JSONEq(t, `{"signatureId":"s1","type":"COMPLETED"}`, msgs[0][1], "get-result supplies the user")
	require.JSONEq(t, `{"signatureId":"s2","type":"COMPLETED"}`, msgs[1][1])
}

func TestSignedCallbacksCoverAFreshTimestamp(t *testing.T) {
	t.Parallel()
	f := setup(t)
	at := func(d time.Duration) string { return strconv.FormatInt(time.Now().Add(d).Unix(), 10) }
	signedAt := func(ts string) map[string]string {
		return map[string]string{httpapi.TimestampHeader: ts, httpapi.SignatureHeader: httpapi.Sign(hmacSecret, ts, []byte(vendorBody))}
	}
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, signedAt(at(0))).status)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, signedAt(at(-4*time.Minute))).status)

	for name, header := range map[string]map[string]string{
		"six minutes old":      signedAt(at(-6 * time.Minute)),
		"six minutes ahead":    signedAt(at(6 * time.Minute)),
		"no timestamp":         {httpapi.SignatureHeader: httpapi.Sign(hmacSecret, at(0), []byte(vendorBody))},
		"not a number":         {httpapi.TimestampHeader: "yesterday", httpapi.SignatureHeader: httpapi.Sign(hmacSecret, "yesterday", []byte(vendorBody))},
		"another timestamp":    {httpapi.TimestampHeader: at(0), httpapi.SignatureHeader: httpapi.Sign(hmacSecret, at(-time.Minute), []byte(vendorBody))},
		"the body alone (old)": {httpapi.TimestampHeader: at(0), httpapi.SignatureHeader: legacySign([]byte(vendorBody))},
	} {
		e := f.callback("", vendorBody, header).apiError(t, http.StatusUnauthorized, "unauthorized")
		require.Contains(t, e.Message, httpapi.TimestampHeader, name)
	}
	require.Len(t, f.events.published(), 2, "nothing replayed or forged was published")
}

// legacySign is the signature of the body alone, as producers sent it before timestamps.
func legacySign(body []byte) string {
	m := hmac.New(sha256.New, []byte(hmacSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestTheCallbackTokenMayComeInAHeader(t *testing.T) {
	t.Parallel()
	f := setup(t)
	require.Equal(t, http.StatusOK, f.callback("", vendorBody, map[string]string{httpapi.CallbackTokenHeader: callbackToken}).status)
	f.callback("", vendorBody, map[string]string{httpapi.CallbackTokenHeader: "wrong-token-0123456789"}).
		apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Len(t, f.events.published(), 1)
}

// failureLog collects what the server logs, to check what a failed authentication leaves.
type failureLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *failureLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *failureLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestFailedAuthenticationIsCountedLoggedAndThrottled(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	counted := map[[2]string]int{}
	logs := &failureLog{}
	f := setup(t, func(c *httpapi.Config) {
		c.AuthFailuresPerMinute = 3
		c.OnAuthFailure = func(route, reason string) {
			mu.Lock()
			defer mu.Unlock()
			counted[[2]string{route, reason}]++
		}
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	from := func(addr, key string) response {
		req := httptest.NewRequest(http.MethodGet, "/v1/alerts", nil)
		req.RemoteAddr = addr
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return f.send(req)
	}
	const guess = "guessed-key-do-not-log-me"
	from("203.0.113.7:1111", "").apiError(t, http.StatusUnauthorized, "unauthorized")
	from("203.0.113.7:2222", guess).apiError(t, http.StatusUnauthorized, "unauthorized")
	from("203.0.113.7:3333", guess).apiError(t, http.StatusUnauthorized, "unauthorized")

	// The address has used its failures up: even the right key waits, so guessing gets nowhere.
	res := from("203.0.113.7:4444", readKey)
	res.apiError(t, http.StatusTooManyRequests, "too_many_requests")
	retry, err := strconv.Atoi(res.header.Get("Retry-After"))
	require.NoError(t, err)
	require.True(t, retry >= 1 && retry <= 20, "about one failure's worth of refill (20 s at 3 a minute): %d", retry)
	// ... while other addresses are not affected, and a known key that lacks a scope is no guess.
	require.Equal(t, http.StatusOK, from("198.51.100.1:5555", readKey).status)
	req := httptest.NewRequest(http.MethodPost, "/v1/reviews", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+readKey)
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "198.51.100.1:5555"
	for range 5 {
		f.send(req.Clone(context.Background())).apiError(t, http.StatusForbidden, "forbidden")
	}
	// A callback token guessed from the same address is throttled too.
	cb := httptest.NewRequest(http.MethodPost, "/v1/callbacks/advance?token=guess-0123456789abcdef", strings.NewReader(vendorBody))
	cb.Header.Set("Content-Type", "application/json")
	cb.RemoteAddr = "203.0.113.7:6666"
	f.send(cb).apiError(t, http.StatusTooManyRequests, "too_many_requests")

	mu.Lock()
	require.Equal(t, map[[2]string]int{
		{"/v1/alerts", "missing_credentials"}:  1,
		{"/v1/alerts", "invalid_api_key"}:      2,
		{"/v1/alerts", "throttled"}:            1,
		{"/v1/reviews", "missing_scope"}:       5,
		{"/v1/callbacks/advance", "throttled"}: 1,
	}, counted)
	mu.Unlock()
	out := logs.String()
	require.Contains(t, out, `"msg":"authentication failed"`)
	require.Contains(t, out, `"reason":"invalid_api_key"`)
	require.Contains(t, out, `"remote_addr":"203.0.113.7"`)
	require.NotContains(t, out, guess, "credentials are never logged")
	require.NotContains(t, out, "guess-0123456789abcdef")
}

func TestAFloodOfFailuresLogsAFewLinesAndCountsTheRest(t *testing.T) {
	t.Parallel()
	logs := &failureLog{}
	f := setup(t, func(c *httpapi.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) })
	for i := range 200 {
		req := httptest.NewRequest(http.MethodGet, "/v1/alerts", nil)
		req.RemoteAddr = "192.0.2." + strconv.Itoa(i%250) + ":1000"
		f.send(req).apiError(t, http.StatusUnauthorized, "unauthorized")
	}
	lines := strings.Count(logs.String(), `"msg":"authentication failed"`)
	require.Positive(t, lines)
	require.LessOrEqual(t, lines, 10, "rate-limited: a flood does not flood the log")
}

func TestTheThrottleForgetsAnAddressOnceItHasRecovered(t *testing.T) {
	t.Parallel()
	// 30 a minute refills one failure every 2 s: far longer than the 30 failures take even on a
	// loaded machine, so the bucket is surely empty when the other address asks.
	f := setup(t, func(c *httpapi.Config) { c.AuthFailuresPerMinute = 30 })
	req := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/alerts", nil)
		r.Header.Set("Authorization", "Bearer wrong")
		r.RemoteAddr = "[2001:db8::1]:1000"
		return r
	}
	for range 30 {
		f.send(req()).apiError(t, http.StatusUnauthorized, "unauthorized")
	}
	other := req()
	other.RemoteAddr = "[2001:db8::2]:1000" // the same /64
	f.send(other).apiError(t, http.StatusTooManyRequests, "too_many_requests")
	require.Eventually(t, func() bool { return f.send(req()).status == http.StatusUnauthorized }, 10*time.Second, 100*time.Millisecond)
}

// fixedReadiness is a fixed readiness answer.
type fixedReadiness struct {
	report readiness.Report
}

func (r fixedReadiness) Report() readiness.Report { return r.report }

func TestOperationsEndpointsAreOnlyOnTheAdminListener(t *testing.T) {
	t.Parallel()
	checkedAt := time.Now()
	notReady := fixedReadiness{readiness.Report{Ready: false, CheckedAt: checkedAt,
		Checks: map[string]string{"database": "ping db.internal:5432 as doppel: connection refused", "vendor": "ok"}}}
	f := setup(t, func(c *httpapi.Config) { c.Readiness = notReady })
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		f.do(http.MethodGet, path, "", nil).apiError(t, http.StatusNotFound, "not_found")
	}
	res := f.do(http.MethodGet, "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status)
	require.JSONEq(t, `{"status":"not_ready"}`, string(res.body), "no host, user or vendor code on the public listener")

	// The pipeline stopped (a stalled partition) but the database answers: the public listener can
	// serve, so it is ready; the admin one is not, and says why.
	stalled := fixedReadiness{readiness.Report{Ready: false, Serving: true, CheckedAt: checkedAt,
		Checks: map[string]string{"database": "ok", "consumer": "partition 0 has made no progress for 1m0s"}}}
	g := setup(t, func(c *httpapi.Config) { c.Readiness = stalled })
	res = g.do(http.MethodGet, "/readyz", "", nil)
	require.Equal(t, http.StatusOK, res.status)
	require.JSONEq(t, `{"status":"ready"}`, string(res.body))

	admin := httpapi.NewAdmin(httpapi.AdminConfig{Readiness: notReady,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "doppel_up 1\n") })})
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		admin.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	require.Equal(t, "doppel_up 1\n", get("/metrics").Body.String())
	require.Equal(t, http.StatusOK, get("/debug/pprof/").Code)
	require.Equal(t, http.StatusOK, get("/debug/pprof/heap?debug=1").Code)
	rec := get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	var detail struct {
		Status    string            `json:"status"`
		CheckedAt time.Time         `json:"checkedAt"`
		Checks    map[string]string `json:"checks"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &detail))
	require.Equal(t, "not_ready", detail.Status)
	require.Contains(t, detail.Checks["database"], "connection refused", "the reasons are for operators")
	require.WithinDuration(t, checkedAt, detail.CheckedAt, time.Second)
}

func TestReplayNeedsTheReplayScopeIsCappedAndHasADryRun(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *httpapi.Config) { c.ReplayMaxChecks = 2 })
	f.seed("s1", "alice", "bob")
	f.seed("s2", "carol")
	f.seed("s3", "dave")

	// The review scope no longer re-runs (and bills) searches.
	e := f.do(http.MethodPost, "/v1/replay", reviewOnlyKey, map[string]any{"signatureIds": []string{"s1"}}).
		apiError(t, http.StatusForbidden, "forbidden")
	require.Contains(t, e.Message, "replay")

	e = f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s1", "s2", "s3"}}).
		apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "signatureIds", e.Field)
	require.Contains(t, e.Message, "DOPPEL_REPLAY_MAX_CHECKS")
	window := map[string]any{"from": time.Now().Add(-time.Hour).Format(time.RFC3339), "to": time.Now().Add(time.Minute).Format(time.RFC3339)}
	window["limit"] = 3
	e = f.do(http.MethodPost, "/v1/replay", reviewKey, window).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "limit", e.Field)

	// A dry run says what would be re-run and bills nothing.
	res := f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s1", "s2"}, "dryRun": true})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.JSONEq(t, `{"dryRun":true,"requested":2,"signatureIds":["s1","s2"]}`, string(res.body))
	delete(window, "limit")
	window["dryRun"] = true
	res = f.do(http.MethodPost, "/v1/replay", reviewKey, window)
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	var plan struct {
		DryRun       bool     `json:"dryRun"`
		Requested    int      `json:"requested"`
		SignatureIDs []string `json:"signatureIds"`
	}
	res.json(t, &plan)
	require.True(t, plan.DryRun)
	require.Equal(t, 2, plan.Requested, "a window is capped too")
	f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"nope"}, "dryRun": true}).
		apiError(t, http.StatusNotFound, "not_found")
	for _, s := range []string{"s1", "s2", "s3"} {
		require.Zero(t, f.vendor.count(s), "a dry run bills nothing")
	}
	res = f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s1", "s2"}})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	require.Equal(t, 1, f.vendor.count("s1"))
}

func TestACursorInAnotherUUIDSpellingIsNotA500(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "u1", "shared")
	f.seed("s2", "u2", "shared")
	var page struct {
		Alerts []struct {
			AlertID    string    `json:"alertId"`
			DetectedAt time.Time `json:"detectedAt"`
		} `json:"alerts"`
	}
	f.do(http.MethodGet, "/v1/alerts", readKey, nil).json(t, &page)
	require.Len(t, page.Alerts, 2)
	first := page.Alerts[0]
	for _, id := range []string{"urn:uuid:" + first.AlertID, "{" + first.AlertID + "}", strings.ReplaceAll(first.AlertID, "-", "")} {
		raw, _ := json.Marshal(map[string]any{"t": first.DetectedAt, "id": id})
		res := f.do(http.MethodGet, "/v1/alerts?cursor="+base64.RawURLEncoding.EncodeToString(raw), readKey, nil)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", id, res.body)
		var next struct {
			Alerts []struct {
				AlertID string `json:"alertId"`
			} `json:"alerts"`
		}
		res.json(t, &next)
		require.Len(t, next.Alerts, 1, "the page after the first alert")
	}
	raw, _ := json.Marshal(map[string]any{"t": first.DetectedAt, "id": "urn:isbn:0451450523"})
	e := f.do(http.MethodGet, "/v1/alerts?cursor="+base64.RawURLEncoding.EncodeToString(raw), readKey, nil).
		apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "cursor", e.Field)
}

func TestJSONPostsRequireTheJSONContentType(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "alice", "bob")
	post := func(target, contentType, key, body string) response {
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return f.send(req)
	}
	review := `{"userId":"alice","duplicateUserId":"bob","decision":"false_positive"}`
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "text/json"} {
		post("/v1/reviews", ct, reviewKey, review).apiError(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
		post("/v1/replay", ct, reviewKey, `{"signatureIds":["s1"]}`).apiError(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
		post("/v1/callbacks/advance?token="+callbackToken, ct, "", vendorBody).
			apiError(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
	}
	require.Equal(t, http.StatusCreated, post("/v1/reviews", "application/json; charset=utf-8", reviewKey, review).status)
	require.Equal(t, http.StatusOK, post("/v1/callbacks/advance?token="+callbackToken, "Application/JSON", "", vendorBody).status)
	// Authentication comes first: a stranger learns nothing about the body rules.
	post("/v1/reviews", "text/plain", "", review).apiError(t, http.StatusUnauthorized, "unauthorized")
	require.Equal(t, 0, f.vendor.count("s1"))
	require.Len(t, f.events.published(), 1)
}

func TestInvalidUTF8InAJSONBodyIsA400(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("s1", "alice", "bob")
	e := f.do(http.MethodPost, "/v1/replay", reviewKey, "{\"signatureIds\":[\"s\xff1\"]}").apiError(t, http.StatusBadRequest, "invalid_input")
	require.Contains(t, e.Message, "UTF-8")
	f.do(http.MethodPost, "/v1/reviews", reviewKey, "{\"userId\":\"alice\",\"duplicateUserId\":\"b\xc3\",\"decision\":\"false_positive\"}").
		apiError(t, http.StatusBadRequest, "invalid_input")
	e = f.callback("?token="+callbackToken, "{\"signatureId\":\"s\xff1\",\"type\":\"COMPLETED\"}", nil).
		apiError(t, http.StatusBadRequest, "invalid_input")
	require.Equal(t, "signatureId", e.Field)
	require.Empty(t, f.events.published())
}

func TestDecodeErrorsOfTheCallbackNameJSONTypes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, body := range []string{`[]`, `"COMPLETED"`, `42`, `{"signatureId":["s1"],"type":"COMPLETED"}`} {
		e := f.callback("?token="+callbackToken, body, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.NotContains(t, e.Message, "duplicate.", body)
		require.NotContains(t, e.Message, "Event", body)
	}
	e := f.callback("?token="+callbackToken, `[]`, nil).apiError(t, http.StatusBadRequest, "invalid_input")
	require.Contains(t, e.Message, "must be a JSON object with signatureId and type, got an array")
}

// rawExchange sends raw bytes to a real listener and reads one answer.
func rawExchange(t *testing.T, addr, method, raw string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(c, raw)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

// serveOnFreePort runs srv.Serve on a free loopback port until the test ends.
func serveOnFreePort(t *testing.T, serve func(ctx context.Context, addr string, timeout time.Duration) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, addr, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	return addr
}

func TestEveryAnswerOfARealListenerHasTheJSONShapeAndHEADWorks(t *testing.T) {
	t.Parallel()
	f := setup(t)
	addr := serveOnFreePort(t, f.server.Serve)
	auth := "Authorization: Bearer " + readKey + "\r\n"
	for _, tc := range []struct {
		name, method, raw string
		status            int
		code              string
	}{
		{"bad escape in the path", "GET", "GET /v1/checks/%zz HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", 400, "invalid_input"},
		{"bad escape in a user", "GET", "GET /v1/users/%e0%zz/duplicates HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_input"},
		{"no Host", "GET", "GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_input"},
		{"header too large", "GET", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 80<<10) + "\r\n\r\n", 431, "header_too_large"},
		{"unknown transfer encoding", "POST", "POST /v1/reviews HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"},
		{"wrong method", "DELETE", "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"},
		{"unknown route", "GET", "GET /v1/nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
	} {
		resp, body := rawExchange(t, addr, tc.method, tc.raw)
		require.Equal(t, tc.status, resp.StatusCode, "%s: %s", tc.name, body)
		require.Equal(t, "application/json", mediaType(resp.Header), tc.name)
		var e httpapi.Error
		require.NoError(t, json.Unmarshal(body, &e), "%s: %s", tc.name, body)
		require.Equal(t, tc.code, e.Error, tc.name)
		require.NotEmpty(t, e.Message, tc.name)
	}

	// HEAD works on every GET route, with the GET's status and no body.
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json", "/v1/alerts"} {
		resp, body := rawExchange(t, addr, "HEAD", "HEAD "+path+" HTTP/1.1\r\nHost: x\r\n"+auth+"Connection: close\r\n\r\n")
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Empty(t, body, path)
	}
	resp, _ := rawExchange(t, addr, "HEAD", "HEAD /v1/alerts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "HEAD is authenticated like GET")

	// A normal answer passes through untouched, also on a kept-alive connection after an error.
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	r := bufio.NewReader(c)
	ok, err := http.ReadResponse(r, nil)
	require.NoError(t, err)
	okBody, _ := io.ReadAll(ok.Body)
	require.JSONEq(t, `{"status":"ok"}`, string(okBody))
}

func TestTheDetailedReadinessIsTheCheckersCachedAnswer(t *testing.T) {
	t.Parallel()
	var calls int
	var mu sync.Mutex
	checker := readiness.New(readiness.Config{Interval: time.Hour},
		readiness.Check{Name: "kafka", Check: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			return nil
		}})
	checker.CheckNow(context.Background())
	f := setup(t, func(c *httpapi.Config) { c.Readiness = checker })
	for range 50 {
		res := f.do(http.MethodGet, "/readyz", "", nil)
		require.JSONEq(t, `{"status":"ready"}`, string(res.body))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, calls, "a /readyz call runs no check (and opens no connection)")
}

func TestInvalidUTF8OutsideTheSignatureIDNamesNoField(t *testing.T) {
	t.Parallel()
	f := setup(t)
	e := f.callback("?token="+callbackToken, "{\"signatureId\":\"s1\",\"type\":\"COMPLETED\",\"note\":\"\xfe\"}", nil).
		apiError(t, http.StatusBadRequest, "invalid_input")
	require.Empty(t, e.Field)
	require.Contains(t, e.Message, "UTF-8")
}

// A query string that does not parse is a 400 naming the problem. Before, Echo dropped the parse
// error: "?userId=cust-1002;" read as no filter at all and answered every alert.
func TestAQueryThatDoesNotParseIsA400NamingTheProblem(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed("sig-1", "cust-1001", "cust-1000")
	f.seed("sig-2", "cust-1003", "cust-1002")

	res := f.do(http.MethodGet, "/v1/alerts?userId=cust-1002", readKey, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.NotContains(t, string(res.body), "cust-1001", "the filter works when the query parses")

	for target, problem := range map[string]string{
		"/v1/alerts?userId=cust-1002;":          "semicolon",
		"/v1/alerts?userId=cust-1002;limit=500": "semicolon",
		"/v1/alerts?userId=cust%zz":             "percent-escape",
		"/v1/rings?limit=5&order=%":             "percent-escape",
		"/v1/users/cust-1002/duplicates?x;y":    "semicolon",
	} {
		e := f.do(http.MethodGet, target, readKey, nil).apiError(t, http.StatusBadRequest, "invalid_input")
		require.Contains(t, e.Message, problem, target)
		require.Contains(t, e.Message, "query string", target)
	}
}

// Billed re-runs have a per-key daily quota (DOPPEL_REPLAY_DAILY_LIMIT) besides the per-call cap:
// a loop of small calls cannot run up the vendor's bill. A call that would overspend re-runs
// nothing and says how much is left; another key has a quota of its own.
func TestReplayHasADailyQuotaPerKey(t *testing.T) {
	t.Parallel()
	const otherReplayKey = "other-replay-key-0123456789"
	f := setup(t, func(c *httpapi.Config) {
		c.ReplayDailyLimit = 3
		c.APIKeys = append(c.APIKeys, apikey.Key{Name: "nightly", Scopes: []string{apikey.ScopeReplay},
			SHA256: sha256.Sum256([]byte(otherReplayKey))})
	})
	f.seed("s1", "alice", "bob")
	f.seed("s2", "carol")
	f.seed("s3", "dave")

	res := f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s1", "s2"}})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	e := f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s3", "s1"}}).
		apiError(t, http.StatusTooManyRequests, "quota_exceeded")
	require.Contains(t, e.Message, "2 of 3 used today")
	require.Contains(t, e.Message, "DOPPEL_REPLAY_DAILY_LIMIT")
	require.Zero(t, f.vendor.count("s3"), "nothing re-run")
	require.Equal(t, 1, f.vendor.count("s1"))

	// A dry run bills nothing and is not counted.
	res = f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s1", "s2", "s3"}, "dryRun": true})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	res = f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s3"}})
	require.Equal(t, http.StatusOK, res.status, string(res.body))
	f.do(http.MethodPost, "/v1/replay", reviewKey, map[string]any{"signatureIds": []string{"s1"}}).
		apiError(t, http.StatusTooManyRequests, "quota_exceeded")

	res = f.do(http.MethodPost, "/v1/replay", otherReplayKey, map[string]any{"signatureIds": []string{"s1", "s2", "s3"}})
	require.Equal(t, http.StatusOK, res.status, "another key's quota is its own: %s", res.body)
	require.Equal(t, 2, f.vendor.count("s3"))
}

// Every answer of the public listener, errors included, is neither stored by a browser or proxy
// nor sniffed; behind TLS (DOPPEL_PUBLIC_URL https) it carries HSTS too.
func TestEveryAnswerCarriesNoStoreAndNosniffAndHSTSBehindTLS(t *testing.T) {
	t.Parallel()
	plain := setup(t)
	tls := setup(t, func(c *httpapi.Config) { c.HSTS = true })
	for _, target := range []string{"/v1/alerts", "/v1/users/nobody/duplicates", "/v1/nothing-here", "/healthz", "/openapi.json"} {
		for _, f := range []*fixture{plain, tls} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, target, nil)
			req.Header.Set("Authorization", "Bearer "+readKey)
			f.handler.ServeHTTP(rec, req)
			require.Equal(t, "no-store", rec.Header().Get("Cache-Control"), target)
			require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"), target)
			if f == tls {
				require.Equal(t, "max-age=63072000", rec.Header().Get("Strict-Transport-Security"), target)
			} else {
				require.Empty(t, rec.Header().Get("Strict-Transport-Security"), "no HSTS without TLS in front")
			}
		}
	}
}
