package scale_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/scale"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// The generator's rows are the rows the pipeline writes for the same population: the generator
// saves large ordered batches (SaveChecks), the reference saves each check in a transaction of its
// own, in order, as a quiet pipeline does (Store.SaveCheck), then records the same reviews. Alert
// ids, review ids and review times (stamped by PostgreSQL) differ; everything else must not.
func TestTheGeneratorWritesWhatThePipelineWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	shape := scale.DefaultShape(2_000, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	policy := postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: 5})

	_, generated := testinfra.Database(t)
	p := scale.NewPopulation(shape)
	require.NotEmpty(t, p.FarmSizes)
	filled, err := scale.Fill(ctx, postgres.NewStore(generated, policy), p, 500, nil)
	require.NoError(t, err)
	require.Equal(t, shape.Checks, filled.Checks)

	_, reference := testinfra.Database(t)
	store := postgres.NewStore(reference, policy)
	require.NoError(t, scale.NewPopulation(shape).Checks(1, postgres.MaxBatchLinks, func(checks []duplicate.Check) error {
		_, err := store.SaveCheck(ctx, checks[0])
		return err
	}))
	for _, r := range scale.NewPopulation(shape).Reviews() {
		_, err := store.AddReview(ctx, r)
		require.NoError(t, err)
	}

	for name, q := range map[string]string{
		"checks": `SELECT signature_id, user_id, outcome, similar_user_ids, matched_user_ids, similar_count, matched_count,
		    checked_at, vendor_transaction_id, region FROM idv_checks ORDER BY signature_id`,
		"links": `SELECT user_id_low, user_id_high, first_seen_at, last_seen_at, seen_count, first_signature_id,
		    last_signature_id, regions FROM duplicate_links ORDER BY 1, 2`,
		"rings": `SELECT r.smallest_user_id, r.size, m.user_id FROM rings r JOIN ring_members m USING (ring_key) ORDER BY 3`,
		"alerts": `SELECT signature_id, user_id, matched_user_ids, new_matched_user_ids, matched_count, new_matched_count,
		    detected_at, ring_id, ring_size, severity FROM alerts ORDER BY signature_id`,
		"overflow": `SELECT signature_id, user_ids FROM check_overflow ORDER BY 1`,
		"reviews":  `SELECT user_id_low, user_id_high, decision, note, reviewed_by FROM link_reviews ORDER BY review_id`,
	} {
		want, got := rowsOf(t, reference, q), rowsOf(t, generated, q)
		require.NotEmpty(t, want, name)
		require.Equal(t, want, got, name)
	}
	// The shape is the issue's: rings, the farm's overflow, alerts of both severities.
	var rings, bigRing, overflows, high int
	require.NoError(t, generated.QueryRow(ctx, `SELECT count(*), max(size) FROM rings`).Scan(&rings, &bigRing))
	require.NoError(t, generated.QueryRow(ctx, `SELECT count(*) FROM check_overflow`).Scan(&overflows))
	require.NoError(t, generated.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE severity = 'high'`).Scan(&high))
	var unpublished int
	require.NoError(t, generated.QueryRow(ctx, `SELECT count(*) FROM alerts WHERE published_at IS NULL`).Scan(&unpublished))
	require.Zero(t, unpublished, "the relay has published a year's alerts")
	require.Greater(t, rings, 20)
	require.Equal(t, p.FarmSizes[len(p.FarmSizes)-1], bigRing)
	require.Positive(t, high)
	t.Logf("%d checks: %d rings (largest %d), %d overflowing checks, %d high alerts", shape.Checks, rings, bigRing, overflows, high)
}

func rowsOf(t *testing.T, pool *pgxpool.Pool, q string) [][]any {
	t.Helper()
	rows, err := pool.Query(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(t, err)
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}
