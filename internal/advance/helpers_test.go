package advance

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/fakeclock"
)

const (
	testAccessKey = "test-access-key-AK123"
	testSecretKey = "test-secret-key-SK456"
)

// newFakeClock returns the clock shared by the client and the fake vendor.
func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
}

// handlerFunc answers the n-th call (from 1) of one endpoint.
type handlerFunc func(w http.ResponseWriter, r *http.Request, n int64)

// fakeVendor is a stub of the vendor whose answers each test scripts.
type fakeVendor struct {
	srv   *httptest.Server
	clock *fakeclock.Clock

	tokenCalls, faceCalls, resultCalls atomic.Int64

	mu                     sync.Mutex
	token, face, getResult handlerFunc
}

// testBundle is what setup returns.
type testBundle struct {
	vendor *fakeVendor
	clock  *fakeclock.Clock
	client *Client
}

// setup starts a fake vendor that issues tokens "tok-1", "tok-2", ... valid for an hour and
// answers face search with an empty list, and a client pointed at it. mutate adjusts the config.
func setup(t *testing.T, mutate func(*Config)) *testBundle {
	t.Helper()
	clock := newFakeClock()
	v := &fakeVendor{clock: clock}
	v.token = func(w http.ResponseWriter, _ *http.Request, n int64) {
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{
			"token":       "tok-" + strconv.FormatInt(n, 10),
			"expiredTime": clock.Now().Add(time.Hour).UnixMilli(),
		})
	}
	v.face = func(w http.ResponseWriter, r *http.Request, _ int64) {
		writeEnvelope(w, http.StatusOK, "SUCCESS", "OK", map[string]any{"signatureId": "sig-1", "simliarFaceUserIds": []string{}})
	}
	v.getResult = func(w http.ResponseWriter, _ *http.Request, _ int64) {
		writeEnvelope(w, http.StatusOK, "SIGNATURE_NOT_EXIST", "not found", nil)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /openapi/auth/ticket/v1/generate-token", func(w http.ResponseWriter, r *http.Request) {
		n := v.tokenCalls.Add(1)
		v.mu.Lock()
		h := v.token
		v.mu.Unlock()
		h(w, r, n)
	})
	mux.HandleFunc("POST /intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search", func(w http.ResponseWriter, r *http.Request) {
		n := v.faceCalls.Add(1)
		v.mu.Lock()
		h := v.face
		v.mu.Unlock()
		h(w, r, n)
	})
	mux.HandleFunc("POST /intl/openapi/identity-risk/idvs-h5/ekyc/v1/get-result", func(w http.ResponseWriter, r *http.Request) {
		n := v.resultCalls.Add(1)
		v.mu.Lock()
		h := v.getResult
		v.mu.Unlock()
		h(w, r, n)
	})
	v.srv = httptest.NewServer(mux)
	t.Cleanup(v.srv.Close)

	cfg := Config{
		BaseURL:   v.srv.URL,
		AccessKey: testAccessKey,
		SecretKey: testSecretKey,
		Timeout:   2 * time.Second,
		Now:       clock.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg)
	require.NoError(t, err)
	return &testBundle{vendor: v, clock: clock, client: c}
}

// set replaces one of the vendor's handlers.
func (v *fakeVendor) set(target *handlerFunc, h handlerFunc) {
	v.mu.Lock()
	defer v.mu.Unlock()
	*target = h
}

// writeEnvelope answers with a vendor envelope in the vendor's key order.
func writeEnvelope(w http.ResponseWriter, status int, code, message string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"code":` + strconv.Quote(code) + `,"message":` + strconv.Quote(message) +
		`,"data":` + string(raw) + `,"extra":null,"transactionId":"0123456789abcdef","pricingStrategy":"FREE"}`))
}

// hang stands for a vendor that does not answer: it returns when the client goes away, or after
// 5 s. The body is read first because the server notices a closed connection only after that.
func hang(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
	}
}

// requireError asserts err is an *Error and returns it.
func requireError(t *testing.T, err error) *Error {
	t.Helper()
	require.Error(t, err)
	var e *Error
	require.ErrorAs(t, err, &e)
	return e
}
