package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// syncBuffer is a bytes.Buffer that serve's goroutines may write while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestServeLogsItsLifeOnceAndExportsItsBuild(t *testing.T) {
	t.Parallel()
	dbURL, _ := testinfra.Database(t)
	_, simURL := testinfra.Sim(t, advancesim.Config{})
	addr, adminAddr := testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	environ := map[string]string{"DOPPEL_ADMIN_ADDR": adminAddr,
		"DOPPEL_DATABASE_URL": dbURL, "DOPPEL_KAFKA_BROKERS": strings.Join(testinfra.Brokers(t), ","),
		"DOPPEL_ADVANCE_BASE_URL": simURL, "DOPPEL_ADVANCE_ACCESS_KEY": testinfra.SimAccessKey,
		"DOPPEL_ADVANCE_SECRET_KEY": testinfra.SimSecretKey, "DOPPEL_HTTP_ADDR": addr,
		"DOPPEL_TOPIC_EVENTS": testinfra.UniqueName("events"), "DOPPEL_TOPIC_ALERTS": testinfra.UniqueName("alerts"),
		"DOPPEL_TOPIC_DLQ": testinfra.UniqueName("dlq"), "DOPPEL_KAFKA_GROUP_ID": testinfra.UniqueName("group"),
		"DOPPEL_TOPIC_PARTITIONS": "1", "DOPPEL_LOG_FORMAT": "text", "DOPPEL_WORKRES": "3",
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, environ, strings.NewReader(""), io.Discard, &logs) }()

	getFrom := func(addr, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	get := func(path string) (int, string) { return getFrom(addr, path) }
	testinfra.Eventually(t, 60*time.Second, func() bool { code, _ := get("/readyz"); return code == http.StatusOK },
		"doppel serve becomes ready; logs:\n%s", &logs)
	for range 5 {
		code, _ := get("/readyz")
		require.Equal(t, http.StatusOK, code)
	}
	_, page := getFrom(adminAddr, "/metrics") // on the admin listener only
	require.Regexp(t, `doppel_build_info\{commit="[^"]+",goversion="go[^"]+",version="dev"\} 1`, page)
	require.Regexp(t, `doppel_http_requests_total\{code="200",method="GET",route="/readyz"\} [1-9]`, page)
	require.Contains(t, page, `doppel_dead_letters_total{reason="retries_exhausted"} 0`)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	out := logs.String()
	require.Contains(t, out, "variable=DOPPEL_WORKRES did_you_mean=DOPPEL_WORKERS", "the misspelt variable is reported at start-up")
	for _, check := range []string{"database", "kafka", "vendor"} {
		require.Equal(t, 1, strings.Count(out, "msg=ready component=readiness check="+check+"\n"),
			"%s: ready is logged once however often /readyz is probed:\n%s", check, out)
	}
	require.Equal(t, 1, strings.Count(out, `msg="shutdown begun"`), out)
	require.Equal(t, 1, strings.Count(out, `msg="shutdown done"`), out)
	require.Less(t, strings.Index(out, "shutdown begun"), strings.Index(out, "shutdown done"))
}
