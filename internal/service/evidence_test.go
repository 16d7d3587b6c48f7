package service_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// doppel serve wires the console's evidence to the region's vendor account: a ring's page shows
// the faces and documents get-result returns, counted by region and outcome.
func TestTheConsoleShowsTheVendorsEvidenceOfARing(t *testing.T) {
	t.Parallel()
	f, base := apiFixture(t)
	a := testinfra.AddSession(t, f.sim, "ev-alice", "F-ev", "PASS")
	b := testinfra.AddSession(t, f.sim, "ev-bob", "F-ev", "PASS")
	for _, sig := range []string{a, b} {
		status, body := call(t, http.MethodPost, base+"/v1/callbacks/advance?token="+callbackToken, "",
			map[string]string{"signatureId": sig, "type": "COMPLETED"})
		require.Equal(t, http.StatusOK, status, string(body))
	}
	f.waitForChecks(t, 2, 60*time.Second)

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	get := func(path string) (int, string, http.Header) {
		resp, err := browser.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	_, login, _ := get("/console/login")
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(login)
	require.NotNil(t, csrf)
	resp, err := browser.PostForm(base+"/console/login", url.Values{"csrf": {csrf[1]}, "apiKey": {analystKey}})
	require.NoError(t, err)
	resp.Body.Close()

	var page string
	testinfra.Eventually(t, 30*time.Second, func() bool {
		status, body, _ := get("/console/rings/" + duplicate.RingID("ev-alice"))
		page = body
		return status == http.StatusOK && strings.Count(body, `data-testid="doc-name"`) == 2
	}, "the ring's page shows both accounts' documents")
	face := regexp.MustCompile(`/console/evidence/faces/[0-9a-f]{32}`).FindString(page)
	require.NotEmpty(t, face)
	status, img, h := get(face)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "image/png", h.Get("Content-Type"))
	require.True(t, strings.HasPrefix(img, "\x89PNG"))
	require.Contains(t, page, "classic duplicate-account fraud", "two accounts, one face, two identities")

	// The view of their faces and documents is in the access log, under the key that signed in.
	testinfra.Eventually(t, 10*time.Second, func() bool {
		var n int
		err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM access_log
WHERE what = 'console: faces and documents' AND actor = 'analyst' AND user_ids @> ARRAY['ev-alice', 'ev-bob']`).Scan(&n)
		return err == nil && n > 0
	}, "the evidence view is in the access log")

	_, metrics := call(t, http.MethodGet, "http://"+f.cfg.AdminAddr+"/metrics", "", nil)
	require.Contains(t, string(metrics), `doppel_evidence_fetches_total{outcome="ok",region="default"} 2`)
}
