package relay_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/relay"
)

// closedAddr returns a loopback address nothing listens on: a broker that is down.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestAnAlertThatCannotBePublishedStaysInTheOutboxAndGoesOutLaterWithItsID(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	store := postgres.NewStore(pool)
	alertsTopic := testinfra.Topics(t, 1, "doppel.alerts")[0]
	ctx := context.Background()

	saved, err := store.SaveCheck(ctx, duplicate.Check{SignatureID: "s1", UserID: "alice",
		EventType: duplicate.EventTypeCompleted, Outcome: duplicate.OutcomeDuplicatesFound,
		SimilarUserIDs: []string{"bob"}, MatchedUserIDs: []string{"bob"}, VendorTransactionID: "tx1",
		CheckedAt: time.Now()})
	require.NoError(t, err)
	require.NotNil(t, saved.Alert)

	// The broker is down: the relay keeps trying and marks nothing.
	down := relay.New(relay.Config{Brokers: []string{closedAddr(t)}, Topic: alertsTopic, Interval: 50 * time.Millisecond}, store)
	downCtx, stopDown := context.WithTimeout(ctx, 1500*time.Millisecond)
	_ = down.Run(downCtx)
	stopDown()
	backlog, _, err := store.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, backlog, "an alert the broker never acknowledged stays in the outbox")

	// The broker is back: the same alert goes out, with the alertId stored with the check.
	var published int
	up := relay.New(relay.Config{Brokers: testinfra.Brokers(t), Topic: alertsTopic, Interval: 50 * time.Millisecond,
		OnPublished: func(n int) { published += n }}, store)
	upCtx, stopUp := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- up.Run(upCtx) }()
	testinfra.Eventually(t, 20*time.Second, func() bool {
		n, _, err := store.OutboxBacklog(ctx)
		return err == nil && n == 0
	}, "the outbox drains once the broker is back")
	stopUp()
	require.NoError(t, <-done)
	require.Equal(t, 1, published)

	msgs := testinfra.ReadAll(t, alertsTopic, 1, 20*time.Second)
	require.Len(t, msgs, 1)
	var a duplicate.Alert
	require.NoError(t, json.Unmarshal(msgs[0].Value, &a))
	require.Equal(t, saved.Alert.AlertID, a.AlertID)
	require.Equal(t, "alice", string(msgs[0].Key))
	require.Equal(t, []string{"bob"}, a.NewMatchedUserIDs)
}
