package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testSecret = "very-secret-sim-key"

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var addrPattern = regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)

func TestRunServesAndShutsDown(t *testing.T) {
	t.Parallel()
	sessions := filepath.Join(t.TempDir(), "sessions.json")
	require.NoError(t, os.WriteFile(sessions, []byte(`[
		{"userId":"u1","face":"f","overallResult":"PASS","signatureId":"s1"},
		{"userId":"u2","face":"f","overallResult":"PASS","signatureId":"s2"}
	]`), 0o600))
	env := map[string]string{
		"ADVANCE_SIM_ADDR":          "127.0.0.1:1", // overridden by the flag below
		"ADVANCE_SIM_ACCESS_KEY":    "ak",
		"ADVANCE_SIM_SECRET_KEY":    testSecret,
		"ADVANCE_SIM_SESSIONS_FILE": sessions,
		"ADVANCE_SIM_NEW_SPELLING":  "true",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, envFrom(env), &stdout, &stderr) }()

	var addr string
	require.Eventually(t, func() bool {
		m := addrPattern.FindStringSubmatch(stdout.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, 5*time.Second, 10*time.Millisecond)
	base := "http://" + addr

	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The seeded sessions answer a face search with the new spelling.
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	sum := sha256.Sum256([]byte("ak" + testSecret + ts))
	tokenResp := post(t, base+"/openapi/auth/ticket/v1/generate-token", "",
		`{"accessKey":"ak","timestamp":`+ts+`,"signature":"`+hex.EncodeToString(sum[:])+`"}`)
	var tok struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(tokenResp), &tok))
	face := post(t, base+"/intl/openapi/identity-risk/idvs-h5/ekyc/v1/face-search", tok.Data.Token, `{"signatureId":"s2"}`)
	require.Contains(t, face, `"data":{"signatureId":"s2","similarFaceUserIds":["u1"]}`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	require.Contains(t, stdout.String(), "sessions=2")
	require.NotContains(t, stdout.String()+stderr.String(), testSecret)
}

func post(t *testing.T, url, tok, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("X-ACCESS-TOKEN", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(raw)
}

func TestRunRejectsBadSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"latency", map[string]string{"ADVANCE_SIM_LATENCY": "fast"}, nil, "ADVANCE_SIM_LATENCY"},
		{"negative latency", map[string]string{"ADVANCE_SIM_LATENCY": "-1s"}, nil, "ADVANCE_SIM_LATENCY"},
		{"error rate", map[string]string{"ADVANCE_SIM_ERROR_RATE": "lots"}, nil, "ADVANCE_SIM_ERROR_RATE"},
		{"error rate above 1", map[string]string{"ADVANCE_SIM_ERROR_RATE": "1.5"}, nil, "ADVANCE_SIM_ERROR_RATE"},
		{"qps", map[string]string{"ADVANCE_SIM_QPS": "-3"}, nil, "ADVANCE_SIM_QPS"},
		{"busy 429", map[string]string{"ADVANCE_SIM_BUSY_HTTP429": "maybe"}, nil, "ADVANCE_SIM_BUSY_HTTP429"},
		{"new spelling", map[string]string{"ADVANCE_SIM_NEW_SPELLING": "yes please"}, nil, "ADVANCE_SIM_NEW_SPELLING"},
		{"seed", map[string]string{"ADVANCE_SIM_SEED": "x"}, nil, "ADVANCE_SIM_SEED"},
		{"sessions file", map[string]string{"ADVANCE_SIM_SESSIONS_FILE": "/does/not/exist.json"}, nil, "ADVANCE_SIM_SESSIONS_FILE"},
		{"address", map[string]string{"ADVANCE_SIM_ADDR": "not-an-address"}, nil, "ADVANCE_SIM_ADDR"},
		{"flag", nil, []string{"-qps", "many"}, "-qps"},
		{"stray argument", nil, []string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"ADVANCE_SIM_SECRET_KEY": testSecret, "ADVANCE_SIM_ADDR": "127.0.0.1:0"}
			for k, v := range tt.env {
				env[k] = v
			}
			var stdout, stderr syncBuffer
			err := run(context.Background(), tt.args, envFrom(env), &stdout, &stderr)
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error()+stdout.String()+stderr.String(), testSecret)
		})
	}
}

func TestRunRejectsBadSessionsFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(path, []byte(`[{"userId":"u","overallResult":"MAYBE"}]`), 0o600))
	err := run(context.Background(), []string{"-sessions-file", path, "-addr", "127.0.0.1:0"}, envFrom(nil), io.Discard, io.Discard)
	require.ErrorContains(t, err, "ADVANCE_SIM_SESSIONS_FILE")
	require.ErrorContains(t, err, "overallResult")
}
