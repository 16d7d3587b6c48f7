package service_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

const (
	analystKey    = "analyst-key-for-the-service-test"
	callbackToken = "callback-token-for-the-service-test"
)

func hexSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// apiFixture is a running Doppel with the callback and API configured, reached over real HTTP;
// edit changes the configuration before it starts.
func apiFixture(t *testing.T, edit ...func(*config.Config)) (*fixture, string) {
	t.Helper()
	f := setup(t, advancesim.Config{})
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	f.cfg.APIKeys = "analyst:read+review+replay:" + hexSHA256(analystKey)
	f.cfg.CallbackToken = callbackToken
	f.cfg.RingHighSeveritySize = 3
	for _, e := range edit {
		e(&f.cfg)
	}
	require.NoError(t, f.cfg.Validate())
	base := "http://" + f.cfg.HTTPAddr
	f.start(t)
	testinfra.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "/healthz answers")
	return f, base
}

func call(t *testing.T, method, url, key string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

// The walk-through: the vendor calls back, the callback becomes a stored check and an
// alert on the alert topic, the analyst asks for the ring, records a review and re-runs a search.
func TestACallbackBecomesAnAlertAndTheAnalystReviewsTheRing(t *testing.T) {
	t.Parallel()
	f, base := apiFixture(t)
	a := testinfra.AddSession(t, f.sim, "alice", "F1", "PASS")
	b := testinfra.AddSession(t, f.sim, "bob", "F1", "PASS")
	c := testinfra.AddSession(t, f.sim, "carol", "F1", "PASS")

	for _, sig := range []string{a, b, c} {
		status, body := call(t, http.MethodPost, base+"/v1/callbacks/advance?token="+callbackToken, "",
			map[string]string{"signatureId": sig, "type": "COMPLETED"})
		require.Equal(t, http.StatusOK, status, string(body))
	}
	// The vendor retries one: harmless.
	status, _ := call(t, http.MethodPost, base+"/v1/callbacks/advance?token="+callbackToken, "",
		map[string]string{"signatureId": a, "type": "COMPLETED"})
	require.Equal(t, http.StatusOK, status)
	status, _ = call(t, http.MethodPost, base+"/v1/callbacks/advance?token=wrong", "",
		map[string]string{"signatureId": a, "type": "COMPLETED"})
	require.Equal(t, http.StatusUnauthorized, status)

	f.waitForChecks(t, 3, 60*time.Second)
	require.EqualValues(t, 1, f.sim.Stats().FaceSearchBySignature[a], "the repeated callback was not searched again")
	var stored int
	testinfra.Eventually(t, 10*time.Second, func() bool {
		_ = f.pool.QueryRow(context.Background(), `SELECT count(*) FROM alerts`).Scan(&stored)
		return stored >= 2
	}, "alerts stored")
	msgs := testinfra.ReadAll(t, f.cfg.TopicAlerts, stored, 30*time.Second)
	require.Len(t, msgs, stored)
	var last duplicate.Alert
	sizes := map[int]bool{}
	for _, m := range msgs {
		var al duplicate.Alert
		require.NoError(t, json.Unmarshal(m.Value, &al))
		require.NotEmpty(t, al.RingID)
		sizes[al.RingSize] = true
		if al.RingSize == 3 {
			last = al
		}
	}
	require.True(t, sizes[3], "the alert of the third member sees the ring of three")
	require.Equal(t, duplicate.SeverityHigh, last.Severity)
	require.Equal(t, duplicate.RingID("alice"), last.RingID)

	// The analyst asks for carol's ring.
	status, body := call(t, http.MethodGet, base+"/v1/users/carol/cluster", analystKey, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var ring struct {
		RingID  string   `json:"ringId"`
		Size    int      `json:"size"`
		Members []string `json:"members"`
	}
	require.NoError(t, json.Unmarshal(body, &ring))
	require.Equal(t, []string{"alice", "bob", "carol"}, ring.Members)
	require.Equal(t, last.RingID, ring.RingID)

	// ... records a review, and sees it on the duplicates.
	status, body = call(t, http.MethodPost, base+"/v1/reviews", analystKey,
		map[string]string{"userId": "carol", "duplicateUserId": "alice", "decision": "confirmed_fraud", "note": "same face, three accounts"})
	require.Equal(t, http.StatusCreated, status, string(body))
	status, body = call(t, http.MethodGet, base+"/v1/users/carol/duplicates", analystKey, nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"confirmed_fraud"`)

	// The analyst re-runs bob's check on purpose: billed once more, counted, and the vendor's
	// answer is the same (face search only returns verifications completed before bob's), so
	// nothing changes and no alert is raised.
	var seen int
	pairSeen := `SELECT seen_count FROM duplicate_links WHERE user_id_low = 'alice' AND user_id_high = 'bob'`
	require.NoError(t, f.pool.QueryRow(context.Background(), pairSeen).Scan(&seen))
	require.Equal(t, 1, seen)
	status, body = call(t, http.MethodPost, base+"/v1/replay", analystKey, map[string]any{"signatureIds": []string{b}})
	require.Equal(t, http.StatusOK, status, string(body))
	var replay struct {
		Replayed, Changed, NewLinks, Alerts int
	}
	require.NoError(t, json.Unmarshal(body, &replay))
	require.Equal(t, 1, replay.Replayed)
	require.Zero(t, replay.Changed)
	require.Zero(t, replay.NewLinks)
	require.Zero(t, replay.Alerts)
	require.EqualValues(t, 2, f.sim.Stats().FaceSearchBySignature[b])
	require.NoError(t, f.pool.QueryRow(context.Background(), pairSeen).Scan(&seen))
	require.Equal(t, 2, seen, "the re-run saw the pair again")
	var replays int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT replay_count FROM idv_checks WHERE signature_id = $1`, b).Scan(&replays))
	require.Equal(t, 1, replays)

	// The spec is served.
	status, body = call(t, http.MethodGet, base+"/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"/v1/callbacks/advance"`)
}

// The public listener has the API and a status-only readiness; metrics, pprof and the reasons are
// on the admin listener, where failed authentications are counted.
func TestOperationsEndpointsAreOnTheAdminListenerOnly(t *testing.T) {
	t.Parallel()
	f, base := apiFixture(t)
	admin := "http://" + f.cfg.AdminAddr
	status, _ := call(t, http.MethodPost, base+"/v1/callbacks/advance?token=wrong-token", "",
		map[string]string{"signatureId": "s1", "type": "COMPLETED"})
	require.Equal(t, http.StatusUnauthorized, status)

	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		status, body := call(t, http.MethodGet, base+path, "", nil)
		require.Equal(t, http.StatusNotFound, status, "%s: %s", path, body)
	}
	testinfra.Eventually(t, 30*time.Second, func() bool {
		status, body := call(t, http.MethodGet, base+"/readyz", "", nil)
		return status == http.StatusOK && string(body) == "{\"status\":\"ready\"}\n"
	}, "the public readyz says ready, and nothing else")
	status, body := call(t, http.MethodGet, admin+"/readyz", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `"database":"ok"`)

	status, body = call(t, http.MethodGet, admin+"/metrics", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(body), `doppel_http_auth_failures_total{reason="invalid_token",route="/v1/callbacks/advance"} 1`)
	status, _ = call(t, http.MethodGet, admin+"/debug/pprof/goroutine?debug=1", "", nil)
	require.Equal(t, http.StatusOK, status)
}

// doppel serve wires the signing secrets, the header-only token and the replay protection in
// PostgreSQL: a Standard Webhooks delivery is published once, its replay is a duplicate.
func TestServeAcceptsStandardWebhooksOnceAndCanRefuseTheQueryToken(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	f, base := apiFixture(t, func(c *config.Config) {
		c.CallbackSigningSecrets = []string{secret}
		c.CallbackTokenInQuery = false
	})
	body := []byte(`{"signatureId":"sig-webhook","type":"COMPLETED"}`)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	now := time.Now()
	sig, err := wh.Sign("msg_serve", now, body)
	require.NoError(t, err)
	post := func() (int, string) {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/callbacks/advance", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", "msg_serve")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(out)
	}
	status, answer := post()
	require.Equal(t, http.StatusOK, status, answer)
	require.JSONEq(t, `{"status":"accepted","signatureId":"sig-webhook"}`, answer)
	status, answer = post()
	require.Equal(t, http.StatusOK, status, answer)
	require.JSONEq(t, `{"status":"duplicate"}`, answer)
	var kept int
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM callback_deliveries WHERE delivery_id = 'msg_serve' AND accepted_at IS NOT NULL`).Scan(&kept))
	require.Equal(t, 1, kept)

	status, answer = func() (int, string) {
		s, b := call(t, http.MethodPost, base+"/v1/callbacks/advance?token="+callbackToken, "",
			map[string]string{"signatureId": "sig-query", "type": "COMPLETED"})
		return s, string(b)
	}()
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, answer, "X-Doppel-Callback-Token")

	status, metrics := call(t, http.MethodGet, "http://"+f.cfg.AdminAddr+"/metrics", "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, string(metrics), `doppel_http_callbacks_total{auth="standard_webhooks",outcome="accepted"} 1`)
	require.Contains(t, string(metrics), `doppel_http_callbacks_total{auth="standard_webhooks",outcome="duplicate"} 1`)
	require.Contains(t, string(metrics), `doppel_http_auth_failures_total{reason="token_in_query",route="/v1/callbacks/advance"} 1`)
}
