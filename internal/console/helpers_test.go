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

	"github.com/doppelhq/doppel/internal/apikey"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
)

// Keys of every test console.
const (
	analystKey = "console-analyst-key-0123456789"
	viewerKey  = "console-viewer-key-0123456789"
	botKey     = "console-bot-key-0123456789"
	privacyKey = "console-privacy-key-0123456789"
)

type fixture struct {
	t     testing.TB
	store *postgres.Store
	pool  *pgxpool.Pool
	srv   *httptest.Server
	seq   int
}

// setup serves the API with the console, as doppel serve does, on a database of its own.
func setup(t testing.TB, edit ...func(*console.Config)) *fixture {
	t.Helper()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 4}))
	keys := []apikey.Key{
		{Name: "analyst", Scopes: []string{apikey.ScopeRead, apikey.ScopeReview}, SHA256: sha256.Sum256([]byte(analystKey))},
		{Name: "viewer", Scopes: []string{apikey.ScopeRead}, SHA256: sha256.Sum256([]byte(viewerKey))},
		{Name: "bot", Scopes: []string{apikey.ScopeReview}, SHA256: sha256.Sum256([]byte(botKey))},
		{Name: "privacy", Scopes: []string{apikey.ScopeRead, apikey.ScopeErase}, SHA256: sha256.Sum256([]byte(privacyKey))},
	}
	// Erasures go through a store with the tombstones' key, as doppel serve's does.
	erasures := postgres.NewStore(pool, postgres.WithTombstones(pseudonym.NewKey([]byte("console-test-pseudonym-key-0123456789abcdef"))))
	cfg := console.Config{Store: store, APIKeys: keys, Region: "sg", Erasures: erasures,
		DeadLetters: func(context.Context) (int64, error) { return 3, nil }}
	for _, e := range edit {
		e(&cfg)
	}
	api := httpapi.New(httpapi.Config{Store: store, APIKeys: keys, AuthFailuresPerMinute: 20})
	cfg.SignIn = api.SignInGuard(console.SignInPath)
	c, err := console.New(cfg)
	require.NoError(t, err)
	api.MountConsole(console.Path, c)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, store: store, pool: pool, srv: srv}
}

// seed stores a check of user linking it to matched, as the pipeline would.
func (f *fixture) seed(user string, matched ...string) duplicate.Saved {
	f.t.Helper()
	return f.seedIn("", user, matched...)
}

// seedIn is seed with the check searched in region ("": the default region).
func (f *fixture) seedIn(region, user string, matched ...string) duplicate.Saved {
	f.t.Helper()
	f.seq++
	sig := fmt.Sprintf("sig-%04d-%s", f.seq, user)
	outcome := duplicate.OutcomeNoDuplicates
	if len(matched) > 0 {
		outcome = duplicate.OutcomeDuplicatesFound
	}
	saved, err := f.store.SaveCheck(context.Background(), duplicate.Check{SignatureID: sig, UserID: user,
		EventType: duplicate.EventTypeCompleted, Outcome: outcome, SimilarUserIDs: matched, MatchedUserIDs: matched,
		VendorTransactionID: "tx-" + sig, Source: duplicate.Source{Topic: "idv.completed"}, CheckedAt: time.Now(), Region: region})
	require.NoError(f.t, err)
	return saved
}

// seedRings stores a ring of four (cust-a1..a4, four links, three alerts; cust-a4 verified in
// region th, the others in the default region) and a ring of two (cust-b1, cust-b2, one alert).
func (f *fixture) seedRings() (ringA, ringB string) {
	f.seed("cust-a1")
	f.seed("cust-a2", "cust-a1")
	f.seed("cust-a3", "cust-a1", "cust-a2")
	f.seedIn("th", "cust-a4", "cust-a3")
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

// seedFarm stores a face farm: accounts farm-0000.. each matched by the next three, one ring, with
// the checks that linked them. It writes the rows directly: a thousand checks through the pipeline
// would take longer than the test it serves.
func (f *fixture) seedFarm(accounts int) string {
	f.t.Helper()
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, `
INSERT INTO idv_checks (signature_id, user_id, event_type, outcome, similar_user_ids, matched_user_ids, vendor_transaction_id, checked_at)
SELECT 'farm-sig-' || i, 'farm-' || lpad(i::text, 4, '0'), 'COMPLETED',
    CASE WHEN i = 0 THEN 'no_duplicates' ELSE 'duplicates_found' END, m.ids, m.ids, 'tx-farm-' || i,
    now() - (($1 - i) || ' minutes')::interval
FROM generate_series(0, $1 - 1) AS i
CROSS JOIN LATERAL (SELECT coalesce(array_agg('farm-' || lpad(j::text, 4, '0') ORDER BY j), '{}') AS ids
                    FROM generate_series(greatest(i - 3, 0), i - 1) AS j) m`, accounts)
	require.NoError(f.t, err)
	_, err = f.pool.Exec(ctx, `
INSERT INTO duplicate_links (user_id_low, user_id_high, first_seen_at, last_seen_at, first_signature_id, last_signature_id)
SELECT 'farm-' || lpad(j::text, 4, '0'), 'farm-' || lpad(i::text, 4, '0'), c.checked_at, c.checked_at, c.signature_id, c.signature_id
FROM generate_series(1, $1 - 1) AS i
CROSS JOIN generate_series(greatest(i - 3, 0), i - 1) AS j
JOIN idv_checks c ON c.signature_id = 'farm-sig-' || i`, accounts)
	require.NoError(f.t, err)
	// The ring index, as the pipeline keeps it: one ring keyed by its smallest member.
	_, err = f.pool.Exec(ctx, `
INSERT INTO rings (ring_key, smallest_user_id, size) VALUES ('farm-0000', 'farm-0000', $1);
`, accounts)
	require.NoError(f.t, err)
	_, err = f.pool.Exec(ctx, `
INSERT INTO ring_members (user_id, ring_key)
SELECT 'farm-' || lpad(i::text, 4, '0'), 'farm-0000' FROM generate_series(0, $1 - 1) AS i`, accounts)
	require.NoError(f.t, err)
	_, err = f.pool.Exec(ctx, `SELECT doppel_refresh_ring_summaries(ARRAY['farm-0000'])`) // its summary, as the store keeps it
	require.NoError(f.t, err)
	return duplicate.RingID("farm-0000")
}

func sha256Of(s string) [32]byte { return sha256.Sum256([]byte(s)) }
