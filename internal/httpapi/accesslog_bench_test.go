package httpapi_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/postgres"
)

// BenchmarkAReadRouteWithAndWithoutTheAccessLog times GET /v1/users/{userId}/cluster (a ring of
// five) over a real listener and PostgreSQL, one request at a time and 8 at once, without and with
// the access log's batching writer (its batches go to the same database). Compare the ns/op of
// each pair: docs/access-log.md has a run's figures.
func BenchmarkAReadRouteWithAndWithoutTheAccessLog(b *testing.B) {
	_, pool := testinfra.Database(b)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	members := []string{"bench-a", "bench-b", "bench-c", "bench-d", "bench-e"}
	for i, user := range members {
		_, err := store.SaveCheck(ctx, duplicate.Check{SignatureID: fmt.Sprintf("bench-sig-%d", i), UserID: user,
			EventType: duplicate.EventTypeCompleted, Outcome: duplicate.OutcomeDuplicatesFound, SimilarUserIDs: members[:i],
			MatchedUserIDs: members[:i], CheckedAt: time.Now(), Source: duplicate.Source{Topic: "idv.completed"}})
		if err != nil {
			b.Fatal(err)
		}
	}
	keys := []apikey.Key{{Name: "bench", Scopes: []string{apikey.ScopeRead}, SHA256: sha256.Sum256([]byte(readKey))}}
	serve := func(b *testing.B, log httpapi.AccessLog) string {
		srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: store, APIKeys: keys, AccessLog: log}).Handler())
		b.Cleanup(srv.Close)
		return srv.URL + "/v1/users/bench-c/cluster"
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	get := func(b *testing.B, target string) {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer "+readKey)
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	for _, withLog := range []bool{false, true} {
		name := "without_access_log"
		var log httpapi.AccessLog
		if withLog {
			name = "with_access_log"
			w := accesslog.NewWriter(store, accesslog.Config{})
			b.Cleanup(func() { _ = w.Close(context.Background()) })
			log = w
		}
		target := serve(b, log)
		b.Run(name+"/serial", func(b *testing.B) {
			for b.Loop() {
				get(b, target)
			}
		})
		b.Run(name+"/parallel_8", func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get(b, target)
				}
			})
		})
	}
}
