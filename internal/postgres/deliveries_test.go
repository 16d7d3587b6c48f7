package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOneClaimOfADeliveryIDWinsAcrossConcurrentCallers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	expires := time.Now().Add(6 * time.Minute)
	var wg sync.WaitGroup
	claims := make(chan string, 16)
	for range 16 {
		wg.Go(func() {
			claim, accepted, err := b.store.ClaimDelivery(b.ctx, "webhook-id", "msg_1", time.Minute, expires)
			require.NoError(t, err)
			require.False(t, accepted, "nothing was accepted yet")
			claims <- claim
		})
	}
	wg.Wait()
	close(claims)
	var won []string
	for c := range claims {
		if c != "" {
			won = append(won, c)
		}
	}
	require.Len(t, won, 1)

	// Accepted: a duplicate from now on, for every caller.
	held, err := b.store.AcceptDelivery(b.ctx, "webhook-id", "msg_1", won[0])
	require.NoError(t, err)
	require.True(t, held)
	claim, accepted, err := b.store.ClaimDelivery(b.ctx, "webhook-id", "msg_1", time.Minute, expires)
	require.NoError(t, err)
	require.Empty(t, claim)
	require.True(t, accepted)
	// The two schemes are kept apart.
	claim, _, err = b.store.ClaimDelivery(b.ctx, "x-doppel-signature", "msg_1", time.Minute, expires)
	require.NoError(t, err)
	require.NotEmpty(t, claim)
}

func TestAReleasedOrLapsedClaimCanBeTakenAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	expires := time.Now().Add(6 * time.Minute)
	claim, _, err := b.store.ClaimDelivery(b.ctx, "webhook-id", "msg_r", time.Minute, expires)
	require.NoError(t, err)
	require.NoError(t, b.store.ReleaseDelivery(b.ctx, "webhook-id", "msg_r", claim))
	again, _, err := b.store.ClaimDelivery(b.ctx, "webhook-id", "msg_r", time.Minute, expires)
	require.NoError(t, err)
	require.NotEmpty(t, again, "a released id is free")

	// A claim whose holder died (its lease is over) is taken over; the old holder's acceptance then
	// counts for nothing, and its release does not free the new claim.
	_, err = b.pool.Exec(b.ctx, `UPDATE callback_deliveries SET claimed_until = now() - interval '1 second' WHERE delivery_id = 'msg_r'`)
	require.NoError(t, err)
	taken, accepted, err := b.store.ClaimDelivery(b.ctx, "webhook-id", "msg_r", time.Minute, expires)
	require.NoError(t, err)
	require.False(t, accepted)
	require.NotEmpty(t, taken)
	require.NotEqual(t, again, taken)
	held, err := b.store.AcceptDelivery(b.ctx, "webhook-id", "msg_r", again)
	require.NoError(t, err)
	require.False(t, held)
	require.NoError(t, b.store.ReleaseDelivery(b.ctx, "webhook-id", "msg_r", again))
	claim, accepted, err = b.store.ClaimDelivery(b.ctx, "webhook-id", "msg_r", time.Minute, expires)
	require.NoError(t, err)
	require.Empty(t, claim)
	require.False(t, accepted, "still in flight under the new claim")
}

func TestExpiredDeliveriesAreDeletedInBoundedBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 5 {
		_, _, err := b.store.ClaimDelivery(b.ctx, "webhook-id", fmt.Sprintf("old_%d", i), time.Minute, time.Now())
		require.NoError(t, err)
	}
	live, _, err := b.store.ClaimDelivery(b.ctx, "webhook-id", "live", time.Minute, time.Now().Add(6*time.Minute))
	require.NoError(t, err)
	held, err := b.store.AcceptDelivery(b.ctx, "webhook-id", "live", live)
	require.NoError(t, err)
	require.True(t, held)
	// A claim still in flight is not deleted even past its window: its publish is not over.
	_, _, err = b.store.ClaimDelivery(b.ctx, "webhook-id", "in_flight", time.Hour, time.Now())
	require.NoError(t, err)
	_, err = b.pool.Exec(b.ctx, `UPDATE callback_deliveries SET expires_at = now() - interval '1 second',
claimed_until = CASE WHEN delivery_id = 'in_flight' THEN claimed_until ELSE now() - interval '1 second' END
WHERE delivery_id <> 'live'`)
	require.NoError(t, err)

	n, err := b.store.DeleteExpiredDeliveries(b.ctx, 2)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "at most the bound")
	n, err = b.store.DeleteExpiredDeliveries(b.ctx, 10)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	var left []string
	rows, err := b.pool.Query(b.ctx, `SELECT delivery_id FROM callback_deliveries ORDER BY delivery_id`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		left = append(left, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"in_flight", "live"}, left)

	// An accepted id past its window may be delivered again (the window is what the timestamp
	// check allows), before the sweep has come.
	_, err = b.pool.Exec(b.ctx, `UPDATE callback_deliveries SET expires_at = now() - interval '1 second' WHERE delivery_id = 'live'`)
	require.NoError(t, err)
	claim, accepted, err := b.store.ClaimDelivery(b.ctx, "webhook-id", "live", time.Minute, time.Now().Add(6*time.Minute))
	require.NoError(t, err)
	require.False(t, accepted)
	require.NotEmpty(t, claim)
}
