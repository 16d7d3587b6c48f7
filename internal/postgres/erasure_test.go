package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// The reviews stay append-only: outside an erasure nothing may change or delete a review; inside
// one (doppel.erasure and doppel.erasure_subject set for the transaction) exactly the replacement
// of the erased id by its pseudonym, in the pair (kept in order) and the note, and nothing else.
func TestTheReviewsTriggerAllowsAnErasureThePseudonymAndNothingElse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.SaveCheck(b.ctx, check("s1", "bob", "alice"))
	require.NoError(t, err)
	_, err = b.store.AddReview(b.ctx, duplicate.Review{UserID: "alice", DuplicateUserID: "bob",
		Decision: duplicate.DecisionFalsePositive, Note: "bob is alice's brother", ReviewedBy: "analyst"})
	require.NoError(t, err)
	const p = "erased:0f"

	inTx := func(subject string, sql string, args ...any) error {
		return pgx.BeginFunc(context.Background(), b.pool, func(tx pgx.Tx) error {
			if subject != "" {
				if _, err := tx.Exec(b.ctx, `SELECT set_config('doppel.erasure', $1, true), set_config('doppel.erasure_subject', $2, true)`, p, subject); err != nil {
					return err
				}
			}
			_, err := tx.Exec(b.ctx, sql, args...)
			return err
		})
	}
	refused := "link_reviews is append-only"
	require.ErrorContains(t, inTx("", `UPDATE link_reviews SET note = 'x'`), refused)
	require.ErrorContains(t, inTx("", `DELETE FROM link_reviews`), refused)
	require.ErrorContains(t, inTx("bob", `DELETE FROM link_reviews`), refused, "an erasure deletes no review")
	require.ErrorContains(t, inTx("bob", `UPDATE link_reviews SET decision = 'confirmed_fraud'`), refused)
	require.ErrorContains(t, inTx("bob", `UPDATE link_reviews SET note = 'rewritten'`), refused)
	require.ErrorContains(t, inTx("bob", `UPDATE link_reviews SET user_id_low = 'mallory'`), refused)
	require.ErrorContains(t, inTx("bob", `UPDATE link_reviews SET user_id_high = $1, note = replace(note, 'bob', $1)`, "erased:other"), refused,
		"only the transaction's pseudonym")
	require.ErrorContains(t, inTx("alice", `UPDATE link_reviews SET user_id_high = $1, note = replace(note, 'bob', $1)`, p), refused,
		"only the transaction's subject")
	require.ErrorContains(t, inTx("bob", `UPDATE link_reviews SET user_id_high = $1`, p), refused, "the note too")
	// The erasure's own change: bob becomes the pseudonym (the pair stays in canonical order).
	require.NoError(t, inTx("bob", `UPDATE link_reviews SET user_id_high = $1, note = replace(note, 'bob', $1)`, p))
	var low, high, note, decision string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT user_id_low, user_id_high, note, decision FROM link_reviews`).Scan(&low, &high, &note, &decision))
	require.Equal(t, []string{"alice", p, p + " is alice's brother", "false_positive"}, []string{low, high, note, decision})
}
