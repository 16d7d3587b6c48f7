package httpapi

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEveryRequestIsReportedByRouteAndStatus(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string]int{}
	srv := New(Config{OnRequest: func(route, method string, status int, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got[method+" "+route+" "+http.StatusText(status)]++
	}})
	for _, path := range []string{"/healthz", "/healthz", "/v1/users/u1/duplicates", "/no/such/path", "/wp-login.php"} {
		srv.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{
		"GET /healthz OK": 2,
		"GET /v1/users/:userId/duplicates Unauthorized": 1, // the status the error handler sent
		"GET  Not Found": 2, // unmatched paths share one route label
	}, got)
}
