package consumer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// produceCounts writes counts[p] messages to each partition p of topicName. testinfra.Produce
// partitions by key with murmur2, so keys are picked by asking the same balancer where each goes.
func produceCounts(t *testing.T, topicName string, counts []int) {
	t.Helper()
	partitions := make([]int, len(counts))
	for i := range partitions {
		partitions[i] = i
	}
	left := append([]int(nil), counts...)
	total := 0
	for _, n := range counts {
		total += n
	}
	var msgs []kafka.Message
	for i := 0; len(msgs) < total; i++ {
		msg := kafka.Message{Key: fmt.Appendf(nil, "signature-%d", i), Value: []byte("{}")}
		p := kafka.Murmur2Balancer{}.Balance(msg, partitions...)
		if left[p] > 0 {
			left[p]--
			msgs = append(msgs, msg)
		}
	}
	testinfra.Produce(t, topicName, msgs...)
}

// commitThrough consumes all total messages of topicName in group groupID and commits, for each
// partition in through, the message at that offset (so the committed offset becomes offset+1).
func commitThrough(t *testing.T, topicName, groupID string, total int, through map[int]int64) {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: testinfra.Brokers(t), GroupID: groupID, Topic: topicName,
		StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
		HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
	})
	defer func() { require.NoError(t, r.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var toCommit []kafka.Message
	for range total {
		msg, err := r.FetchMessage(ctx)
		require.NoError(t, err)
		if off, ok := through[msg.Partition]; ok && msg.Offset == off {
			toCommit = append(toCommit, msg)
		}
	}
	require.Len(t, toCommit, len(through), "every offset to commit was fetched")
	require.NoError(t, r.CommitMessages(ctx, toCommit...))
}

func TestLagIsEndMinusCommittedPerPartition(t *testing.T) {
	t.Parallel()
	topicName := testinfra.Topics(t, 4, "lag")[0]
	counts := []int{5, 4, 3, 0}
	produceCounts(t, topicName, counts)
	brokers := testinfra.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("group that never committed lags by everything", func(t *testing.T) {
		lag, err := consumer.Lag(ctx, brokers, testinfra.UniqueName("lag_idle"), topicName)
		require.NoError(t, err)
		require.Equal(t, map[int]int64{0: 5, 1: 4, 2: 3, 3: 0}, lag)
	})

	t.Run("group with commits lags by what follows them", func(t *testing.T) {
		group := testinfra.UniqueName("lag_busy")
		// Partition 0: committed through offset 1 (next is 2), 3 left. Partition 1: nothing
		// committed, all 4 left. Partition 2: all committed. Partition 3: empty.
		commitThrough(t, topicName, group, 12, map[int]int64{0: 1, 2: 2})

		lag, err := consumer.Lag(ctx, brokers, group, topicName)
		require.NoError(t, err)
		require.Equal(t, map[int]int64{0: 3, 1: 4, 2: 0, 3: 0}, lag)

		// New messages raise the lag of their partition only.
		produceCounts(t, topicName, []int{0, 0, 2, 0})
		lag, err = consumer.Lag(ctx, brokers, group, topicName)
		require.NoError(t, err)
		require.Equal(t, map[int]int64{0: 3, 1: 4, 2: 2, 3: 0}, lag)
	})
}

func TestLagOfAMissingTopicFails(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := consumer.Lag(ctx, testinfra.Brokers(t), "doppel", testinfra.UniqueName("no_such_topic"))
	require.ErrorIs(t, err, kafka.UnknownTopicOrPartition)
}
