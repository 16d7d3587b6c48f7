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
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/testinfra"
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
	events, dlq = testinfra.UniqueName("events"), testinfra.UniqueName("dlq")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	limit := map[string]string{"max.message.bytes": strconv.Itoa(topicLimit)}
	require.NoError(t, topic.Ensure(ctx, testinfra.Brokers(t),
		topic.Spec{Name: events, Partitions: 1, ReplicationFactor: 1, Configs: limit},
		topic.Spec{Name: dlq, Partitions: 1, ReplicationFactor: 1, Configs: limit}))
	return events, dlq
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
	var valid []kafka.Message
	for i := range 5 {
		valid = append(valid, kafka.Message{Key: []byte("signature-" + strconv.Itoa(i)), Value: []byte(`{}`)})
	}
	testinfra.Produce(t, events, valid...)

	var (
		mu        sync.Mutex
		processed []string
	)
	group := testinfra.UniqueName("group")
	c, err := consumer.New(consumer.Config{
		Brokers: testinfra.Brokers(t), GroupID: group, Topic: events, DLQTopic: dlq,
		Workers: 4, CommitInterval: 50 * time.Millisecond,
		Classify: func(error) consumer.Decision {
			return consumer.Decision{Action: consumer.DeadLetter, Reason: "too_large"}
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, func(_ context.Context, msg kafka.Message) error {
		if len(msg.Value) > 1024 {
			return errTooLarge
		}
		mu.Lock()
		processed = append(processed, string(msg.Key))
		mu.Unlock()
		return nil
	})
	require.NoError(t, err)
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

	testinfra.Eventually(t, 30*time.Second, func() bool {
		lag, err := consumer.Lag(context.Background(), testinfra.Brokers(t), group, events)
		return err == nil && lag[0] == 0
	}, "the partition's offset is committed past the big message and the valid ones")
	mu.Lock()
	require.ElementsMatch(t, []string{"signature-0", "signature-1", "signature-2", "signature-3", "signature-4"}, processed)
	mu.Unlock()

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

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
