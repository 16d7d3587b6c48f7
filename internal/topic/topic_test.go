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

func TestEnsureCreatesMissingTopicsAndLeavesExistingOnes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testinfra.Brokers(t)
	name := testinfra.UniqueName("topic_test")

	rep, err := topic.Ensure(ctx, brokers, topic.Spec{Name: name, Partitions: 4, ReplicationFactor: topic.AutoReplication})
	require.NoError(t, err)
	// One copy on the shared single test broker, three on a three-node infra.sh.
	rf := topic.ReplicationFor(topic.AutoReplication, len(brokers))
	require.Equal(t, len(brokers), rep.Brokers)
	require.Equal(t, []topic.State{{Name: name, Created: true, ReplicationFactor: rf}}, rep.Topics)
	// Again, asking for another partition count: the topic exists, so nothing changes and no error.
	rep, err = topic.Ensure(ctx, brokers, topic.Spec{Name: name, Partitions: 2, ReplicationFactor: -1})
	require.NoError(t, err)
	require.Equal(t, []topic.State{{Name: name, Created: false, ReplicationFactor: rf}}, rep.Topics)
	require.Empty(t, rep.SingleCopy(), "nothing to warn about: a single copy on one broker, or three on three")

	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	require.NoError(t, err)
	defer conn.Close()
	parts, err := conn.ReadPartitions(name)
	require.NoError(t, err)
	require.Len(t, parts, 4)
	for _, p := range parts {
		require.GreaterOrEqual(t, p.Leader.ID, 0, "every partition has a leader when Ensure returns")
	}
}

func TestMaxMessageBytesReadsTheTopicsOverrideOrTheBrokersDefault(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testinfra.Brokers(t)
	small, plain := testinfra.UniqueName("topic_small"), testinfra.UniqueName("topic_plain")
	_, err := topic.Ensure(ctx, brokers,
		topic.Spec{Name: small, Partitions: 1, ReplicationFactor: -1, Configs: map[string]string{"max.message.bytes": "12345"}},
		topic.Spec{Name: plain, Partitions: 1, ReplicationFactor: -1})
	require.NoError(t, err)

	n, err := topic.MaxMessageBytes(ctx, brokers, small)
	require.NoError(t, err)
	require.Equal(t, 12345, n)
	n, err = topic.MaxMessageBytes(ctx, brokers, plain)
	require.NoError(t, err)
	require.Equal(t, 1048588, n, "without an override, the broker's message.max.bytes (Kafka's default here)")
}

func TestRetentionReadsTheTopicsRetentionMs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testinfra.Brokers(t)
	day, forever, plain := testinfra.UniqueName("topic_day"), testinfra.UniqueName("topic_forever"), testinfra.UniqueName("topic_plain")
	_, err := topic.Ensure(ctx, brokers,
		topic.Spec{Name: day, Partitions: 1, ReplicationFactor: -1, Configs: map[string]string{"retention.ms": "86400000"}},
		topic.Spec{Name: forever, Partitions: 1, ReplicationFactor: -1, Configs: map[string]string{"retention.ms": "-1"}},
		topic.Spec{Name: plain, Partitions: 1, ReplicationFactor: -1})
	require.NoError(t, err)
	for name, want := range map[string]time.Duration{day: 24 * time.Hour, forever: -1, plain: 7 * 24 * time.Hour} {
		got, err := topic.Retention(ctx, brokers, name)
		require.NoError(t, err)
		require.Equal(t, want, got, name)
	}
}

func TestOffsetsOfATopicAndOfOneThatDoesNotExist(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := testinfra.Topics(t, 3, "offsets")[0]
	testinfra.Produce(t, name, kafka.Message{Key: []byte("a"), Value: []byte("1")}, kafka.Message{Key: []byte("b"), Value: []byte("2")})

	client, closeIdle := topic.NewClient(testinfra.Brokers(t), 15*time.Second)
	defer closeIdle()
	bounds, err := topic.Offsets(ctx, client, name)
	require.NoError(t, err)
	require.Len(t, bounds, 3)
	var n int64
	for _, b := range bounds {
		n += b.LastOffset - b.FirstOffset
	}
	require.EqualValues(t, 2, n)

	// No topic in the answer is an error, not an index out of range.
	_, err = topic.Offsets(ctx, client, testinfra.UniqueName("never_created"))
	require.Error(t, err)
}

// The offset-for-time lookup finds the first message stamped at or after a time, and leaves out a
// partition whose messages are all older.
func TestOffsetsAtFindsTheFirstMessageStampedAtOrAfterATime(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := testinfra.Topics(t, 1, "offsets-at")[0]
	now := time.Now().Truncate(time.Millisecond)
	testinfra.Produce(t, name,
		kafka.Message{Value: []byte("0"), Time: now.Add(-10 * time.Minute)},
		kafka.Message{Value: []byte("1"), Time: now.Add(-5 * time.Minute)},
		kafka.Message{Value: []byte("2"), Time: now})

	client, closeIdle := topic.NewClient(testinfra.Brokers(t), 15*time.Second)
	defer closeIdle()
	at, err := topic.OffsetsAt(ctx, client, name, []int{0}, now.Add(-7*time.Minute))
	require.NoError(t, err)
	require.Equal(t, map[int]int64{0: 1}, at)
	at, err = topic.OffsetsAt(ctx, client, name, []int{0}, now.Add(-5*time.Minute))
	require.NoError(t, err)
	require.Equal(t, map[int]int64{0: 1}, at, "a message stamped at the time itself")
	at, err = topic.OffsetsAt(ctx, client, name, []int{0}, now.Add(time.Minute))
	require.NoError(t, err)
	require.Empty(t, at, "no message that recent")
}

func TestReplicationForTakesThreeCopiesOnThreeBrokersUnlessAFactorIsSet(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ configured, brokers, want int }{
		{topic.AutoReplication, 1, 1}, {topic.AutoReplication, 2, 1}, {topic.AutoReplication, 3, 3},
		{topic.AutoReplication, 5, 3}, {1, 3, 1}, {2, 3, 2}, {-1, 3, -1},
	} {
		require.Equal(t, c.want, topic.ReplicationFor(c.configured, c.brokers), "factor %d on %d brokers", c.configured, c.brokers)
	}
}

func TestSingleCopyNamesOnlyTopicsDoppelDidNotCreateOnAClusterOfThree(t *testing.T) {
	t.Parallel()
	rep := topic.Report{Brokers: 3, Topics: []topic.State{
		{Name: "theirs", ReplicationFactor: 1},
		{Name: "ours", Created: true, ReplicationFactor: 1},
		{Name: "replicated", ReplicationFactor: 3},
	}}
	require.Equal(t, []topic.State{{Name: "theirs", ReplicationFactor: 1}}, rep.SingleCopy())
	rep.Brokers = 2
	require.Empty(t, rep.SingleCopy(), "below three brokers a single copy is not warned about")
}

func TestEnsureRefusesAFactorAboveTheBrokerCount(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := len(testinfra.Brokers(t))
	_, err := topic.Ensure(ctx, testinfra.Brokers(t), topic.Spec{Name: testinfra.UniqueName("topic_rf"), Partitions: 1, ReplicationFactor: n + 1})
	require.ErrorContains(t, err, fmt.Sprintf("a replication factor of %d needs %d brokers, and the cluster lists %d", n+1, n+1, n))
}

func TestDescribeReportsExistingTopicsAndLeavesOutMissingOnes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := testinfra.Topics(t, 2, "topic_described")[0]
	rep, err := topic.Describe(ctx, testinfra.Brokers(t), name, testinfra.UniqueName("never_created"))
	require.NoError(t, err)
	require.Equal(t, len(testinfra.Brokers(t)), rep.Brokers)
	require.Equal(t, []topic.State{{Name: name, ReplicationFactor: 1}}, rep.Topics, "testinfra.Topics makes one copy")
}
