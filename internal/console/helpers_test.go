package console_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/testinfra"
)

// Keys of every test console.
const (
	analystKey = "console-analyst-key-0123456789"
	viewerKey  = "console-viewer-key-0123456789"
	botKey     = "console-bot-key-0123456789"
)

type fixture struct {
	t     *testing.T
	store *postgres.Store
	pool  *pgxpool.Pool
	srv   *httptest.Server
	seq   int
}

// setup serves the API with the console, as doppel serve does, on a database of its own.
func setup(t *testing.T, edit ...func(*console.Config)) *fixture {
	t.Helper()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 4}))
	keys := []httpapi.APIKey{
		{Name: "analyst", Scopes: []string{httpapi.ScopeRead, httpapi.ScopeReview}, SHA256: sha256.Sum256([]byte(analystKey))},
		{Name: "viewer", Scopes: []string{httpapi.ScopeRead}, SHA256: sha256.Sum256([]byte(viewerKey))},
		{Name: "bot", Scopes: []string{httpapi.ScopeReview}, SHA256: sha256.Sum256([]byte(botKey))},
	}
	cfg := console.Config{Store: store, APIKeys: keys, Region: "sg",
		DeadLetters: func(context.Context) (int64, error) { return 3, nil }}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := console.New(cfg)
	require.NoError(t, err)
	api := httpapi.New(httpapi.Config{Store: store, APIKeys: keys, Console: c})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, store: store, pool: pool, srv: srv}
}

// seed stores a check of user linking it to matched, as the pipeline would.
func (f *fixture) seed(user string, matched ...string) duplicate.Saved {
	f.t.Helper()
	f.seq++
	sig := fmt.Sprintf("sig-%04d-%s", f.seq, user)
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	saved, err := f.store.SaveCheck(context.Background(), duplicate.Check{SignatureID: sig, UserID: user,
		EventType: duplicate.EventTypeCompleted, Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched,
		VendorTransactionID: "tx-" + sig, Source: duplicate.Source{Topic: "idv.completed"}, CheckedAt: time.Now()})
	require.NoError(f.t, err)
	return saved
}

// seedRings stores a ring of four (cust-a1..a4, four links, three alerts) and a ring of two
// (cust-b1, cust-b2, one alert).
func (f *fixture) seedRings() (ringA, ringB string) {
	f.seed("cust-a1")
	f.seed("cust-a2", "cust-a1")
	f.seed("cust-a3", "cust-a1", "cust-a2")
	f.seed("cust-a4", "cust-a3")
	f.seed("cust-b1")
	f.seed("cust-b2", "cust-b1")
	return duplicate.RingID("cust-a1"), duplicate.RingID("cust-b1")
}

func (f *fixture) reviewCount() int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM link_reviews`).Scan(&n))
	return n
}
