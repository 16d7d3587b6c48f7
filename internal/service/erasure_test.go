package service_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

const privacyKey = "privacy-key-for-the-service-test"

// mentionsOf lists the text, text[] and jsonb columns of every table that still contain s.
func (f *fixture) mentionsOf(t *testing.T, s string) []string {
	t.Helper()
	return testinfra.Mentions(t, f.pool, s)
}

// The whole path in the running service: a ring of four found through Kafka and the vendor
// simulator; an erasure of its bridge over the API (held: the override), finished by the runner
// the request woke; the person is in no column of any table, the others' rings are what is left,
// subject_erased is on the erasures topic; a replay of the erased person's event is skipped
// without a vendor call; a later verification whose search (the vendor still has the face) names
// the erased person links only the others.
func TestTheServiceErasesAPersonEndToEnd(t *testing.T) {
	t.Parallel()
	erasures := testinfra.Topics(t, 1, "doppel.erasures")[0]
	f, base := apiFixture(t, func(c *config.Config) {
		c.APIKeys += ";privacy:erase:" + hexSHA256(privacyKey)
		c.PseudonymKey = "0123456789abcdef0123456789abcdef"
		c.TopicErasures = erasures
	})
	// anna and cleo (face A) reach dora (face D) only through bert, who has both faces.
	register := func(user, face string) string { return testinfra.AddSession(t, f.sim, user, face, "INCOMPLETE") }
	sigs := []string{register("cust-anna", "A"), register("cust-bert", "A"), register("cust-cleo", "A"),
		register("cust-bert", "D"), register("cust-dora", "D")}
	for i, want := range []string{"no_duplicates", "duplicates_found", "duplicates_found", "no_duplicates", "duplicates_found"} {
		f.complete(t, sigs[i], "PASS")
		testinfra.Produce(t, f.cfg.TopicEvents, event(sigs[i], "COMPLETED", ""))
		f.waitForOutcome(t, sigs[i], want, 60*time.Second)
	}
	require.Equal(t, []string{"cust-anna~cust-bert", "cust-anna~cust-cleo", "cust-bert~cust-cleo", "cust-bert~cust-dora"}, f.links(t))

	status, body := call(t, http.MethodPost, base+"/v1/erasures", analystKey, map[string]any{"userId": "cust-bert", "reason": "r"})
	require.Equal(t, http.StatusForbidden, status, "read+review+replay cannot erase: %s", body)
	status, body = call(t, http.MethodPost, base+"/v1/erasures", privacyKey, map[string]any{"userId": "cust-bert", "reason": "request 7"})
	require.Equal(t, http.StatusConflict, status, "%s", body)
	status, body = call(t, http.MethodPost, base+"/v1/erasures", privacyKey,
		map[string]any{"userId": "cust-bert", "reason": "request 7", "override": "legal_hold"})
	require.Equal(t, http.StatusAccepted, status, "%s", body)
	var accepted struct{ ErasureID string }
	require.NoError(t, json.Unmarshal(body, &accepted))
	var got struct {
		Status             string
		VendorSignatureIDs []string
	}
	testinfra.Eventually(t, 30*time.Second, func() bool {
		_, body := call(t, http.MethodGet, base+"/v1/erasures/"+accepted.ErasureID, privacyKey, nil)
		require.NoError(t, json.Unmarshal(body, &got))
		return got.Status == "done"
	}, "the erasure is done")
	require.ElementsMatch(t, []string{sigs[1], sigs[3]}, got.VendorSignatureIDs)
	require.Empty(t, f.mentionsOf(t, "cust-bert"))
	require.Equal(t, []string{"cust-anna~cust-cleo"}, f.links(t), "dora lost her only link: a ring of one")

	msgs := testinfra.ReadAll(t, erasures, 1, 30*time.Second)
	require.Equal(t, "cust-bert", string(msgs[0].Key))

	// bert's event again: skipped, no vendor call, nothing stored.
	searched := f.sim.Stats().FaceSearchBySignature[sigs[1]]
	testinfra.Produce(t, f.cfg.TopicEvents, event(sigs[1], "COMPLETED", "cust-bert"))
	testinfra.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + f.cfg.AdminAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `doppel_event_outcomes_total{outcome="erased"} 1`)
	}, "the replayed event is counted as erased")
	// A later verification with face A: the vendor still names bert, Doppel links the others.
	late := register("cust-emil", "A")
	f.complete(t, late, "PASS")
	testinfra.Produce(t, f.cfg.TopicEvents, event(late, "COMPLETED", ""))
	f.waitForOutcome(t, late, "duplicates_found", 60*time.Second)
	require.Equal(t, []string{"cust-anna~cust-cleo", "cust-anna~cust-emil", "cust-cleo~cust-emil"}, f.links(t))
	require.Empty(t, f.mentionsOf(t, "cust-bert"))
	require.Equal(t, searched, f.sim.Stats().FaceSearchBySignature[sigs[1]], "no vendor call for an erased signatureId")
}
