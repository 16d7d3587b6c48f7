package httpapi_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/erasure"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// withErasure gives the server a store with the tombstone key and a key named privacy with the
// scope erase only.
func withErasure(f **postgres.Store) func(*httpapi.Config) {
	return func(cfg *httpapi.Config) {
		store := postgres.NewStore(cfg.Store.(*postgres.Store).Pool(), postgres.WithTombstones(pseudonym.NewKey([]byte("0123456789abcdef0123456789abcdef"))))
		*f = store
		cfg.Erasures, cfg.LegalHolds = store, store
		cfg.APIKeys = append(cfg.APIKeys, apikey.Key{Name: "privacy", Scopes: []string{apikey.ScopeErase},
			SHA256: sha256.Sum256([]byte(eraseKey))})
	}
}

// Only a key with the scope erase may erase, whatever else it has; the same userId again answers
// the same erasure; a held person is refused 409 legal_hold naming the ring, unless overridden;
// GET shows the erasure, and the legal-hold route why a person is held.
func TestErasureNeedsTheEraseScopeAndRespectsTheLegalHold(t *testing.T) {
	t.Parallel()
	var store *postgres.Store
	f := setup(t, withErasure(&store))
	f.seed("s1", "alice")
	f.seed("s2", "bob", "alice")
	f.seed("s3", "zoe")

	body := map[string]any{"userId": "zoe", "reason": "GDPR art. 17 request"}
	for _, key := range []string{readKey, reviewKey, reviewOnlyKey} {
		f.do(http.MethodPost, "/v1/erasures", key, body).apiError(t, http.StatusForbidden, "forbidden")
	}
	f.do(http.MethodPost, "/v1/erasures", "", body).apiError(t, http.StatusUnauthorized, "unauthorized")
	f.do(http.MethodPost, "/v1/erasures", eraseKey, map[string]any{"userId": "zoe"}).apiError(t, http.StatusBadRequest, "invalid_input")
	f.do(http.MethodPost, "/v1/erasures", eraseKey, map[string]any{"userId": "zoe", "reason": "x", "override": "all"}).
		apiError(t, http.StatusBadRequest, "invalid_input")

	res := f.do(http.MethodPost, "/v1/erasures", eraseKey, body)
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	var accepted struct{ ErasureID, Status string }
	res.json(t, &accepted)
	require.Equal(t, "pending", accepted.Status)
	var again struct{ ErasureID, Status string }
	f.do(http.MethodPost, "/v1/erasures", eraseKey, body).json(t, &again)
	require.Equal(t, accepted, again, "idempotent")

	f.do(http.MethodGet, "/v1/erasures/"+accepted.ErasureID, readKey, nil).apiError(t, http.StatusForbidden, "forbidden")
	f.do(http.MethodGet, "/v1/erasures/nope", eraseKey, nil).apiError(t, http.StatusNotFound, "not_found")

	// The erasure runs (in serve, the runner woken by the request).
	require.NoError(t, erasure.New(erasure.Config{Store: store, Publisher: f.events}).Finish(context.Background(), accepted.ErasureID))
	var got map[string]any
	f.do(http.MethodGet, "/v1/erasures/"+accepted.ErasureID, eraseKey, nil).json(t, &got)
	require.Equal(t, "done", got["status"])
	require.Equal(t, map[string]any{"idv_checks": 1.0, "alerts": 0.0, "check_overflow": 0.0, "duplicate_links": 0.0,
		"started_verifications": 0.0}, got["removed"])
	require.Equal(t, []any{"s3"}, got["vendorSignatureIds"])
	require.NotNil(t, got["doneAt"])
	f.do(http.MethodPost, "/v1/erasures", eraseKey, body).json(t, &again)
	require.Equal(t, erasureAnswer(accepted.ErasureID, "done"), again)
	require.Len(t, f.events.published(), 1)
	require.Equal(t, "zoe", f.events.published()[0][0])

	// Bob's ring has an open alert: he is held.
	var hold struct {
		Held    bool
		RingID  string
		Reasons []struct{ Kind, AlertID string }
	}
	f.do(http.MethodGet, "/v1/users/bob/legal-hold", readKey, nil).json(t, &hold)
	require.True(t, hold.Held)
	require.Equal(t, duplicate.RingID("alice"), hold.RingID)
	require.Equal(t, "open_alert", hold.Reasons[0].Kind)
	e := f.do(http.MethodPost, "/v1/erasures", eraseKey, map[string]any{"userId": "bob", "reason": "asked"}).
		apiError(t, http.StatusConflict, "legal_hold")
	require.Contains(t, e.Message, duplicate.RingID("alice"))
	res = f.do(http.MethodPost, "/v1/erasures", eraseKey, map[string]any{"userId": "bob", "reason": "court order 12", "override": "legal_hold"})
	require.Equal(t, http.StatusAccepted, res.status, "%s", res.body)
	res.json(t, &accepted)
	f.do(http.MethodGet, "/v1/erasures/"+accepted.ErasureID, eraseKey, nil).json(t, &got)
	require.Equal(t, "pending", got["status"])
	require.Equal(t, "ring "+duplicate.RingID("alice")+": 0 confirmed_fraud pairs, 1 open alerts", got["legalHoldOverride"])
	require.Equal(t, "court order 12", got["reason"])
}

func erasureAnswer(id, status string) struct{ ErasureID, Status string } {
	return struct{ ErasureID, Status string }{id, status}
}

// Without a tombstone key (DOPPEL_PSEUDONYM_KEY) erasure is not configured: 503.
func TestErasureWithoutItsKeyIsNotConfigured(t *testing.T) {
	t.Parallel()
	f := setup(t, func(cfg *httpapi.Config) {
		cfg.APIKeys = append(cfg.APIKeys, apikey.Key{Name: "privacy", Scopes: []string{apikey.ScopeErase},
			SHA256: sha256.Sum256([]byte(eraseKey))})
	})
	f.do(http.MethodPost, "/v1/erasures", eraseKey, map[string]any{"userId": "zoe", "reason": "r"}).
		apiError(t, http.StatusServiceUnavailable, "not_configured")
}
