package consumer_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/topic"
)

// topicLimit is the max.message.bytes of the test's topics: a topic-level override of the broker's
// message.max.bytes, so a message "at the broker's limit" is 16 KiB rather than 1 MiB.
const topicLimit = 16384

var errTooLarge = errors.New("too large")

// limitedTopics creates an events topic and a dead-letter topic, one partition each (so every
// message shares the partition), both limited to topicLimit bytes.
func limitedTopics(t *testing.T) (events, dlq string) {
	t.Helper()
	return limitedTopic(t, "events", topicLimit), limitedTopic(t, "dlq", topicLimit)
}

// limitedTopic creates a topic of one partition whose max.message.bytes is limit.
func limitedTopic(t *testing.T, prefix string, limit int) string {
	t.Helper()
	name := testinfra.UniqueName(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := topic.Ensure(ctx, testinfra.Brokers(t), topic.Spec{Name: name, Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"max.message.bytes": strconv.Itoa(limit)}})
	require.NoError(t, err)
	return name
}

func valid(keys ...string) []kafka.Message {
	msgs := make([]kafka.Message, len(keys))
	for i, k := range keys {
		msgs[i] = kafka.Message{Key: []byte(k), Value: []byte(`{}`)}
	}
	return msgs
}

// messageAtLimit returns a message whose record batch is exactly topicLimit bytes.
func messageAtLimit(t *testing.T) kafka.Message {
	t.Helper()
	msg := kafka.Message{Key: []byte("big-signature")}
	msg.Value = []byte(strings.Repeat("x", topicLimit-consumer.RecordBatchSize(msg)))
	for consumer.RecordBatchSize(msg) > topicLimit { // the value's length prefix grew
		msg.Value = msg.Value[1:]
	}
	require.Equal(t, topicLimit, consumer.RecordBatchSize(msg))
	return msg
}

func TestTheBatchSizeIsTheOneTheBrokerEnforces(t *testing.T) {
	t.Parallel()
	events, _ := limitedTopics(t)
	msg := messageAtLimit(t)
	testinfra.Produce(t, events, msg)

	over := kafka.Message{Key: msg.Key, Value: append([]byte("x"), msg.Value...)}
	w := &kafka.Writer{Addr: kafka.TCP(testinfra.Brokers(t)...), Topic: events, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := w.WriteMessages(ctx, over)
	var werr kafka.WriteErrors
	require.ErrorAs(t, err, &werr)
	require.ErrorIs(t, werr[0], kafka.MessageSizeTooLarge, "one byte over the limit is refused")
}

// TestAMessageAtTheBrokersLimitIsDeadLetteredTruncatedAndThePartitionMovesOn is issue 9's stall: the
// dead-letter copy of a message at the limit, with the dead-letter headers added, is over the limit.
// Before the fix the write was retried forever and the partition never committed again.
func TestAMessageAtTheBrokersLimitIsDeadLetteredTruncatedAndThePartitionMovesOn(t *testing.T) {
	t.Parallel()
	events, dlq := limitedTopics(t)
	big := messageAtLimit(t)
	testinfra.Produce(t, events, big) // alone: its batch is at the limit, so it cannot share one
	testinfra.Produce(t, events, valid("signature-0", "signature-1", "signature-2", "signature-3", "signature-4")...)

	r := runConsumer(t, events, dlq, nil)
	committedPast(t, r.group, events)
	require.ElementsMatch(t, []string{"signature-0", "signature-1", "signature-2", "signature-3", "signature-4"}, r.keys())

	letters := testinfra.ReadAll(t, dlq, 1, 20*time.Second)
	require.Len(t, letters, 1)
	letter := letters[0]
	require.Equal(t, big.Key, letter.Key)
	require.Equal(t, "too_large", header(letter, "doppel-dlq-reason"))
	require.Equal(t, "0", header(letter, "doppel-dlq-source-offset"))
	require.Less(t, len(letter.Value), len(big.Value), "the value is cut to fit")
	require.Greater(t, len(letter.Value), topicLimit/2, "but only as much as the headers need")
	require.Equal(t, big.Value[:len(letter.Value)], letter.Value, "what is kept is the original's beginning")
	require.Equal(t, strconv.Itoa(len(big.Value)), header(letter, "doppel-dlq-original-size"))
	sum := sha256.Sum256(big.Value)
	require.Equal(t, hex.EncodeToString(sum[:]), header(letter, "doppel-dlq-original-sha256"))
	require.Equal(t, "value", header(letter, "doppel-dlq-truncated"))
	require.LessOrEqual(t, consumer.RecordBatchSize(kafka.Message{Key: letter.Key, Value: letter.Value, Headers: letter.Headers}), topicLimit)
}

func TestADeadLetterTopicWhoseLimitShrankIsAskedAgainAndTheLetterFitsTheNewLimit(t *testing.T) {
	t.Parallel()
	events, dlq := limitedTopics(t)
	r := runConsumer(t, events, dlq, nil)
	testinfra.Produce(t, events, valid("first")...)
	committedPast(t, r.group, events) // so the consumer has read the dead-letter topic's limit

	const smaller = 8192
	client := &kafka.Client{Addr: kafka.TCP(testinfra.Brokers(t)...), Transport: &kafka.Transport{}}
	resp, err := client.IncrementalAlterConfigs(context.Background(), &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: dlq,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(smaller)}}}},
	})
	require.NoError(t, err)
	require.NoError(t, resp.Resources[0].Error)

	big := messageAtLimit(t)
	testinfra.Produce(t, events, big)
	testinfra.Produce(t, events, valid("after")...)
	committedPast(t, r.group, events)
	require.Equal(t, []string{"first", "after"}, r.keys())
	letters := testinfra.ReadAll(t, dlq, 1, 20*time.Second)
	require.Len(t, letters, 1)
	size := consumer.RecordBatchSize(kafka.Message{Key: letters[0].Key, Value: letters[0].Value, Headers: letters[0].Headers})
	require.LessOrEqual(t, size, smaller)
	require.Greater(t, len(letters[0].Value), smaller/2, "fitted to the new limit, not dropped")
	require.Equal(t, big.Value[:len(letters[0].Value)], letters[0].Value)
}

func TestALetterTheTopicRefusesEvenWithoutItsValueIsSkippedNotRetriedForever(t *testing.T) {
	t.Parallel()
	events := limitedTopic(t, "events", topicLimit)
	dlq := limitedTopic(t, "dlq", 300) // smaller than the dead-letter annotations alone
	r := runConsumer(t, events, dlq, nil)
	testinfra.Produce(t, events, messageAtLimit(t))
	testinfra.Produce(t, events, valid("after-1", "after-2")...)

	committedPast(t, r.group, events)
	require.ElementsMatch(t, []string{"after-1", "after-2"}, r.keys())
	dead, unwritable := r.observer.counts()
	require.Empty(t, dead)
	require.Equal(t, []string{"too_large"}, unwritable, "the skipped letter is reported, not lost silently")
	require.Empty(t, testinfra.ReadAll(t, dlq, 1, time.Second))
}

func TestAPartitionThatCannotProgressIsReportedStalledUntilItMovesAgain(t *testing.T) {
	t.Parallel()
	events, dlq := limitedTopics(t)
	r := runConsumer(t, events, dlq, func(c *consumer.Config) { c.StallAfter = 300 * time.Millisecond })
	r.hold.Store(true)
	testinfra.Produce(t, events, valid("held-1", "free-1")...)

	testinfra.Eventually(t, 20*time.Second, func() bool { return len(r.consumer.Stalled()) == 1 },
		"the held partition is reported stalled")
	s := r.consumer.Stalled()[0]
	require.Equal(t, 0, s.Partition)
	require.Equal(t, int64(0), s.Offset, "stuck at the held message")
	require.Contains(t, s.Reason, "test_hold")
	require.ErrorContains(t, r.consumer.CheckProgress(context.Background()), "partition 0 of "+events+" has made no progress")
	require.Equal(t, []string{"free-1"}, r.keys(), "other keys go on, but the offset cannot pass the held one")

	r.hold.Store(false)
	committedPast(t, r.group, events)
	testinfra.Eventually(t, 10*time.Second, func() bool { return len(r.consumer.Stalled()) == 0 }, "it resumes")
	require.NoError(t, r.consumer.CheckProgress(context.Background()))
}

func TestAMissingDeadLetterTopicStallsThePartitionVisiblyUntilItExists(t *testing.T) {
	t.Parallel()
	events := limitedTopic(t, "events", topicLimit)
	dlq := testinfra.UniqueName("dlq_missing") // the broker does not create topics on its own
	r := runConsumer(t, events, dlq, func(c *consumer.Config) { c.StallAfter = 300 * time.Millisecond })
	testinfra.Produce(t, events, messageAtLimit(t))

	testinfra.Eventually(t, 20*time.Second, func() bool {
		s := r.consumer.Stalled()
		return len(s) == 1 && strings.Contains(s[0].Reason, "dead-letter write failing")
	}, "a dead-letter topic that cannot be written is a visible stall, not a silent loss")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := topic.Ensure(ctx, testinfra.Brokers(t), topic.Spec{Name: dlq, Partitions: 1, ReplicationFactor: 1})
	require.NoError(t, err)
	committedPast(t, r.group, events)
	dead, _ := r.observer.counts()
	require.Equal(t, []string{"too_large"}, dead)
	require.Len(t, testinfra.ReadAll(t, dlq, 1, 20*time.Second), 1)
}

// running is a consumer run by runConsumer.
type running struct {
	group    string
	consumer *consumer.Consumer
	observer *recorder
	// hold, while true, makes the handler answer messages keyed "held-..." with a Wait error.
	hold atomic.Bool

	mu        sync.Mutex
	processed []string
}

func (r *running) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.processed...)
}

// runConsumer runs a consumer on events until the test ends: messages over 1 KiB are dead-lettered
// as too_large, the others recorded as processed. adjust, if set, changes the config first.
func runConsumer(t *testing.T, events, dlq string, adjust func(*consumer.Config)) *running {
	t.Helper()
	r := &running{group: testinfra.UniqueName("group"), observer: &recorder{}}
	cfg := consumer.Config{
		Brokers: testinfra.Brokers(t), GroupID: r.group, Topic: events, DLQTopic: dlq,
		Workers: 4, CommitInterval: 50 * time.Millisecond,
		Retry: consumer.RetryPolicy{InitialInterval: 20 * time.Millisecond, WaitMaxInterval: 50 * time.Millisecond},
		Classify: func(err error) consumer.Classification {
			var w waitError
			if errors.As(err, &w) {
				return consumer.Classification{Action: consumer.Wait, Reason: string(w)}
			}
			return consumer.Classification{Action: consumer.DeadLetter, Reason: "too_large"}
		},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Observer: r.observer,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := consumer.New(cfg, func(_ context.Context, msg consumer.Message) error {
		if len(msg.Value) > 1024 {
			return errTooLarge
		}
		if r.hold.Load() && strings.HasPrefix(string(msg.Key), "held-") {
			return waitError("test_hold")
		}
		r.mu.Lock()
		r.processed = append(r.processed, string(msg.Key))
		r.mu.Unlock()
		return nil
	})
	require.NoError(t, err)
	r.consumer = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("consumer did not stop")
		}
	})
	return r
}

// recorder is an Observer that remembers what the tests look at.
type recorder struct {
	mu           sync.Mutex
	deadLettered []string
	unwritable   []string
}

func (o *recorder) Finished(_ string, _ int, dead bool, reason string) {
	if dead {
		o.mu.Lock()
		o.deadLettered = append(o.deadLettered, reason)
		o.mu.Unlock()
	}
}

func (o *recorder) DeadLetterUnwritable(_ string, _ int, reason string) {
	o.mu.Lock()
	o.unwritable = append(o.unwritable, reason)
	o.mu.Unlock()
}

func (o *recorder) Retried(string, string)                     {}
func (o *recorder) InFlight(int)                               {}
func (o *recorder) PartitionProgress(int, time.Duration, bool) {}

func (o *recorder) counts() (deadLettered, unwritable []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.deadLettered...), append([]string(nil), o.unwritable...)
}

// committedPast waits until the group has committed every message of events.
func committedPast(t *testing.T, group, events string) {
	t.Helper()
	testinfra.Eventually(t, 30*time.Second, func() bool {
		lag, err := consumer.Lag(context.Background(), testinfra.Brokers(t), group, events)
		return err == nil && lag[0] == 0
	}, "the partition's offset is committed past every message")
}

// waitError is a handler error the test's Classify answers with Wait, its value as the reason.
type waitError string

func (e waitError) Error() string { return string(e) }

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
