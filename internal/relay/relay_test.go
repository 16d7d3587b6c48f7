package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/relay"
	"github.com/doppelhq/doppel/internal/topic"
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
	store, alertsTopic := outbox(t)
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

// outbox returns a store on a database of the test's own and an alert topic of its own.
func outbox(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	_, pool := testinfra.Database(t)
	return postgres.NewStore(pool), testinfra.Topics(t, 1, "doppel.alerts")[0]
}

// saveAlert stores a check of alice that links bob and returns its alert.
func saveAlert(t *testing.T, store *postgres.Store, sig string) duplicate.Alert {
	t.Helper()
	saved, err := store.SaveCheck(context.Background(), duplicate.Check{SignatureID: sig, UserID: "alice-" + sig,
		EventType: duplicate.EventTypeCompleted, Outcome: duplicate.OutcomeDuplicatesFound,
		SimilarUserIDs: []string{"bob"}, MatchedUserIDs: []string{"bob"}, VendorTransactionID: "tx-" + sig,
		CheckedAt: time.Now()})
	require.NoError(t, err)
	require.NotNil(t, saved.Alert)
	return *saved.Alert
}

func runRelay(t *testing.T, r *relay.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		require.NoError(t, <-done)
	}
}

// A handed-over alert goes out at once, is marked published, and no poll publishes it again; an
// alert nobody handed over waits until it has settled (another instance may be publishing it).
func TestHandedOverAlertsGoOutAtOnceAndPollsLeaveYoungAlertsAlone(t *testing.T) {
	t.Parallel()
	store, alertsTopic := outbox(t)
	ctx := context.Background()

	handed := saveAlert(t, store, "s1")
	notHanded := saveAlert(t, store, "s2")
	var published atomic.Int64
	// Polls every 20 ms, but only for alerts older than a minute: only a handoff can publish now.
	r := relay.New(relay.Config{Brokers: testinfra.Brokers(t), Topic: alertsTopic, Interval: 20 * time.Millisecond,
		SettleFor: time.Minute, OnPublished: func(n int) { published.Add(int64(n)) }}, store)
	stop := runRelay(t, r)
	r.Handoff(handed)
	msgs := testinfra.ReadAll(t, alertsTopic, 1, 20*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, handed.AlertID, string(header(msgs[0], "alert-id")))
	testinfra.Eventually(t, 10*time.Second, func() bool {
		n, _, err := store.OutboxBacklog(ctx)
		return err == nil && n == 1
	}, "the handed-over alert is marked published")
	r.Notify() // a poll now still leaves the young alert alone
	time.Sleep(300 * time.Millisecond)
	stop()
	require.EqualValues(t, 1, published.Load())
	backlog, _, err := store.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, backlog, "the alert nobody handed over has not settled yet")

	// Once settled, a poll publishes it, and only it.
	publishSettled(t, store, alertsTopic)
	msgs = testinfra.ReadAll(t, alertsTopic, 3, 3*time.Second)
	require.Len(t, msgs, 2, "each alert once")
	require.Equal(t, notHanded.AlertID, string(header(msgs[1], "alert-id")))
}

// publishSettled runs a relay whose polls take every unpublished alert, until the outbox is empty.
func publishSettled(t *testing.T, store *postgres.Store, alertsTopic string) {
	t.Helper()
	r := relay.New(relay.Config{Brokers: testinfra.Brokers(t), Topic: alertsTopic, Interval: 20 * time.Millisecond,
		SettleFor: time.Millisecond}, store)
	stop := runRelay(t, r)
	testinfra.Eventually(t, 20*time.Second, func() bool {
		n, _, err := store.OutboxBacklog(context.Background())
		return err == nil && n == 0
	}, "a poll publishes what the outbox holds")
	stop()
}

func header(m kafka.Message, key string) []byte {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// A handed-over alert the broker does not acknowledge is not lost: it stays unmarked in the outbox
// and a poll publishes it once it has settled, with its alertId.
func TestAHandedOverAlertTheBrokerRefusedGoesOutWithTheNextPoll(t *testing.T) {
	t.Parallel()
	store, alertsTopic := outbox(t)
	ctx := context.Background()
	alert := saveAlert(t, store, "s1")

	down := relay.New(relay.Config{Brokers: []string{closedAddr(t)}, Topic: alertsTopic, Interval: 50 * time.Millisecond,
		SettleFor: time.Hour}, store)
	stop := runRelay(t, down)
	down.Handoff(alert)
	time.Sleep(1500 * time.Millisecond)
	stop()
	backlog, _, err := store.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, backlog, "not marked: the broker never acknowledged it")

	publishSettled(t, store, alertsTopic)
	msgs := testinfra.ReadAll(t, alertsTopic, 2, 3*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, alert.AlertID, string(header(msgs[0], "alert-id")))
}

// outboxOf is outbox with an alert topic of partitions partitions.
func outboxOf(t *testing.T, partitions int) (*postgres.Store, string) {
	t.Helper()
	_, pool := testinfra.Database(t)
	return postgres.NewStore(pool), testinfra.Topics(t, partitions, "doppel.alerts")[0]
}

// publishAsACrashedRelay puts alerts on the topic as a relay does and leaves their rows unmarked:
// what a process leaves behind when it dies between the broker's acknowledgement and the mark.
func publishAsACrashedRelay(t *testing.T, alertsTopic string, alerts ...duplicate.Alert) {
	t.Helper()
	msgs := make([]kafka.Message, len(alerts))
	for i, a := range alerts {
		m, err := relay.Message(a)
		require.NoError(t, err)
		msgs[i] = m
	}
	w := topic.NewWriter(testinfra.Brokers(t), alertsTopic, topic.WriterConfig{BatchTimeout: time.Millisecond})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, w.WriteMessages(ctx, msgs...))
}

// timesOnTopic reads the whole alert topic (waiting up to wait for more than want messages) and
// counts the messages of each alertId.
func timesOnTopic(t *testing.T, alertsTopic string, want int, wait time.Duration) map[string]int {
	t.Helper()
	times := map[string]int{}
	for _, m := range testinfra.ReadAll(t, alertsTopic, want+1, wait) {
		times[string(header(m, "alert-id"))]++
	}
	return times
}

// The crash window of issue 21: an alert reached the topic, then the process died before marking
// its row. The next relay reads the topic back before publishing what the outbox holds unmarked:
// that alert is marked without going out again, and only the one that never went out is published.
func TestAnAlertPublishedButNotMarkedBeforeACrashIsNotPublishedAgain(t *testing.T) {
	t.Parallel()
	store, alertsTopic := outboxOf(t, 3)
	ctx := context.Background()
	var crashed []duplicate.Alert
	for i := range 5 { // on several partitions: each is read back
		crashed = append(crashed, saveAlert(t, store, fmt.Sprintf("crashed-%d", i)))
	}
	neverSent := saveAlert(t, store, "never-sent")
	publishAsACrashedRelay(t, alertsTopic, crashed...)
	backlog, _, err := store.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 6, backlog, "the crashed process marked nothing")

	publishSettled(t, store, alertsTopic)

	times := timesOnTopic(t, alertsTopic, 6, 3*time.Second)
	for _, a := range crashed {
		require.Equal(t, 1, times[a.AlertID], "alert %s was on the topic before the restart: not published again", a.AlertID)
	}
	require.Equal(t, 1, times[neverSent.AlertID], "the alert that never went out is published")
	require.Len(t, times, 6)
}

// The read-back is for polls that find work: alerts handed over and marked never make the relay
// read the topic.
func TestHandedOverAlertsNeverMakeTheRelayReadTheTopicBack(t *testing.T) {
	t.Parallel()
	store, alertsTopic := outboxOf(t, 3)
	var readBacks atomic.Int64
	r := relay.New(relay.Config{Brokers: testinfra.Brokers(t), Topic: alertsTopic, Interval: 20 * time.Millisecond,
		SettleFor: 200 * time.Millisecond, OnReadBack: func(int) { readBacks.Add(1) }}, store)
	stop := runRelay(t, r)
	for i := range 20 {
		r.Handoff(saveAlert(t, store, fmt.Sprintf("s%d", i)))
	}
	testinfra.Eventually(t, 20*time.Second, func() bool {
		n, _, err := store.OutboxBacklog(context.Background())
		return err == nil && n == 0
	}, "every handed-over alert is marked")
	time.Sleep(400 * time.Millisecond) // polls go on past SettleFor, and find nothing to claim
	stop()
	require.Zero(t, readBacks.Load())
	require.Len(t, timesOnTopic(t, alertsTopic, 20, 3*time.Second), 20)
}

// Another instance dies after publishing while this relay runs, and after this relay has read the
// topic once: the next read starts where the last one ended and still finds the alert. Its batch
// of one leaves alerts found on the topic unclaimed: they are marked all the same.
func TestAlertsPublishedByAnInstanceThatDiedWhileTheRelayRunsAreNotPublishedAgain(t *testing.T) {
	t.Parallel()
	store, alertsTopic := outboxOf(t, 3)
	ctx := context.Background()
	var read atomic.Int64
	r := relay.New(relay.Config{Brokers: testinfra.Brokers(t), Topic: alertsTopic, Interval: 20 * time.Millisecond,
		SettleFor: 100 * time.Millisecond, BatchSize: 1, OnReadBack: func(n int) { read.Add(int64(n)) }}, store)

	first := []duplicate.Alert{saveAlert(t, store, "a1"), saveAlert(t, store, "a2"), saveAlert(t, store, "a3")}
	publishAsACrashedRelay(t, alertsTopic, first...)
	stop := runRelay(t, r)
	testinfra.Eventually(t, 20*time.Second, func() bool {
		n, _, err := store.OutboxBacklog(ctx)
		return err == nil && n == 0
	}, "the alerts on the topic are marked")
	readBefore := read.Load()
	require.EqualValues(t, 3, readBefore, "one read of the three messages: the alerts it did not claim were marked with it")

	later := []duplicate.Alert{saveAlert(t, store, "b1"), saveAlert(t, store, "b2")}
	publishAsACrashedRelay(t, alertsTopic, later[0])
	testinfra.Eventually(t, 20*time.Second, func() bool {
		n, _, err := store.OutboxBacklog(ctx)
		return err == nil && n == 0
	}, "the later alerts are marked")
	stop()
	require.LessOrEqual(t, read.Load()-readBefore, int64(2), "the second read starts where the first ended")

	times := timesOnTopic(t, alertsTopic, 5, 3*time.Second)
	for _, a := range append(first, later...) {
		require.Equal(t, 1, times[a.AlertID], "alert %s", a.AlertID)
	}
	require.Len(t, times, 5)
}
