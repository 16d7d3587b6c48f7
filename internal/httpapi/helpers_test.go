package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/postgres"
)

// API keys of every test server.
const (
	readKey       = "read-key-0123456789"
	reviewKey     = "review-key-0123456789"
	reviewOnlyKey = "review-only-key-0123456789"
	callbackToken = "callback-token-0123456789"
	hmacSecret    = "hmac-secret-0123456789"
)

func apiKeys() []apikey.Key {
	return []apikey.Key{
		{Name: "dashboard", Scopes: []string{apikey.ScopeRead}, SHA256: sha256.Sum256([]byte(readKey))},
		{Name: "analyst", Scopes: []string{apikey.ScopeRead, apikey.ScopeReview, apikey.ScopeReplay}, SHA256: sha256.Sum256([]byte(reviewKey))},
		{Name: "bot", Scopes: []string{apikey.ScopeReview}, SHA256: sha256.Sum256([]byte(reviewOnlyKey))},
	}
}

// fakeVendor answers face searches from a map and counts them, like the vendor's bill.
type fakeVendor struct {
	mu       sync.Mutex
	similar  map[string][]string
	searches map[string]int
}

func (v *fakeVendor) FaceSearch(_ context.Context, sig string) (duplicate.SearchResult, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.searches[sig]++
	return duplicate.SearchResult{SimilarUserIDs: v.similar[sig], TransactionID: "tx-replay-" + sig}, nil
}

func (v *fakeVendor) Verification(context.Context, string) (duplicate.Verification, error) {
	return duplicate.Verification{}, nil
}

func (v *fakeVendor) set(sig string, similar ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.similar[sig] = similar
}

func (v *fakeVendor) count(sig string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.searches[sig]
}

// recordingPublisher keeps what the callback endpoint published, or fails when err is set.
type recordingPublisher struct {
	mu   sync.Mutex
	msgs [][2]string
	err  error
}

func (p *recordingPublisher) Publish(_ context.Context, key, value []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, [2]string{string(key), string(value)})
	return nil
}

func (p *recordingPublisher) published() [][2]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][2]string(nil), p.msgs...)
}

type fixture struct {
	t       *testing.T
	handler http.Handler
	server  *httpapi.Server
	store   *postgres.Store
	pool    *pgxpool.Pool
	vendor  *fakeVendor
	events  *recordingPublisher
	alerted chan struct{}
}

func setup(t *testing.T, edit ...func(*httpapi.Config)) *fixture {
	t.Helper()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 3}))
	f := &fixture{t: t, store: store, pool: pool, events: &recordingPublisher{},
		vendor:  &fakeVendor{similar: map[string][]string{}, searches: map[string]int{}},
		alerted: make(chan struct{}, 100)}
	cfg := httpapi.Config{
		Store:              store,
		Replayer:           duplicate.NewReplayer(duplicate.OneAccount{Vendor: f.vendor}, store, nil),
		OnAlerts:           func() { f.alerted <- struct{}{} },
		Events:             f.events,
		CallbackToken:      callbackToken,
		CallbackHMACSecret: hmacSecret,
		EventOptions:       duplicate.DecodeOptions{MaxBytes: 1024},
		APIKeys:            apiKeys(),
	}
	for _, e := range edit {
		e(&cfg)
	}
	f.server = httpapi.New(cfg)
	f.handler = f.server.Handler()
	return f
}

// seed stores a check of user linking it to matched.
func (f *fixture) seed(sig, user string, matched ...string) duplicate.Saved {
	f.t.Helper()
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	saved, err := f.store.SaveCheck(context.Background(), duplicate.Check{SignatureID: sig, UserID: user,
		EventType: duplicate.EventTypeCompleted, Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched,
		VendorTransactionID: "tx-" + sig, Source: duplicate.Source{Topic: "idv.completed", Partition: 2, Offset: 40},
		CheckedAt: time.Now()})
	require.NoError(f.t, err)
	return saved
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

// apiError decodes the one error shape and checks it.
func (r response) apiError(t *testing.T, status int, code string) httpapi.Error {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, "application/json", mediaType(r.header))
	var e httpapi.Error
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&e), "body: %s", r.body)
	require.Equal(t, code, e.Error, "body: %s", r.body)
	require.NotEmpty(t, e.Message)
	return e
}

func mediaType(h http.Header) string {
	ct := h.Get("Content-Type")
	for i, c := range ct {
		if c == ';' {
			return ct[:i]
		}
	}
	return ct
}

func (f *fixture) do(method, target, key string, body any) response {
	f.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(f.t, err)
		r = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, target, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
