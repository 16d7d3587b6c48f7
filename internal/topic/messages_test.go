package topic_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/topic"
)

func TestTopicMessagesCountsWhatEveryPartitionHolds(t *testing.T) {
	t.Parallel()
	name := testinfra.Topics(t, 3, "dlq-size")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := topic.Messages(ctx, testinfra.Brokers(t), name)
	require.NoError(t, err)
	require.Zero(t, n)

	msgs := make([]kafka.Message, 7)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte("letter")}
	}
	testinfra.Produce(t, name, msgs...)
	n, err = topic.Messages(ctx, testinfra.Brokers(t), name)
	require.NoError(t, err)
	require.EqualValues(t, 7, n)

	_, err = topic.Messages(ctx, testinfra.Brokers(t), name+"-missing")
	require.Error(t, err)
}
