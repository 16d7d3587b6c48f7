package produce_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/harness/produce"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/topic"
)

func message(i int) kafka.Message {
	return kafka.Message{Key: []byte(fmt.Sprintf("k%05d", i)), Value: []byte(fmt.Sprintf("v%05d", i))}
}

func TestWhatIsWrittenIsReadBackOnceAndOnlyWhatIsNew(t *testing.T) {
	t.Parallel()
	brokers := testinfra.Brokers(t)
	name := testinfra.Topics(t, 3, "produce")[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := topic.NewWriter(brokers, name, topic.WriterConfig{BatchSize: 100, BatchTimeout: 3 * time.Millisecond})
	defer w.Close()

	_, err := produce.Backlog(ctx, w, 250, message)
	require.NoError(t, err)
	r := produce.NewReader(brokers, name)
	seen := map[string]int{}
	require.NoError(t, r.ReadNew(ctx, 30*time.Second, func(m kafka.Message) { seen[string(m.Key)]++ }))
	require.Len(t, seen, 250)

	more := []kafka.Message{message(250), message(251)}
	var acked []int
	failed, err := produce.Acknowledged(ctx, w, more, 10*time.Second, func(i int) { acked = append(acked, i) })
	require.NoError(t, err)
	require.Zero(t, failed)
	require.ElementsMatch(t, []int{0, 1}, acked)

	var again []string
	require.NoError(t, r.ReadNew(ctx, 30*time.Second, func(m kafka.Message) { again = append(again, string(m.Key)) }))
	require.ElementsMatch(t, []string{"k00250", "k00251"}, again, "only what arrived since the last read")

	bounds, err := produce.Offsets(ctx, brokers, name)
	require.NoError(t, err)
	var total int64
	for _, b := range bounds {
		total += b.End - b.First
	}
	require.EqualValues(t, 252, total)
	leader, err := produce.Leader(ctx, brokers, name, 0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, leader, 0)
}

func TestTopicsWithPrefixListsWhatAnEarlierRunLeftAndDeleteTopicsRemovesIt(t *testing.T) {
	t.Parallel()
	brokers := testinfra.Brokers(t)
	names := testinfra.Topics(t, 1, "produce-left", "produce-left")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	found, err := produce.TopicsWithPrefix(ctx, brokers, names[0], 10)
	require.NoError(t, err)
	require.Equal(t, []string{names[0]}, found)
	limited, err := produce.TopicsWithPrefix(ctx, brokers, "produce-left", 1)
	require.NoError(t, err)
	require.Len(t, limited, 1)
	require.NoError(t, produce.DeleteTopics(ctx, brokers, names...))
	require.NoError(t, produce.DeleteTopics(ctx, brokers), "nothing to delete")
	require.Eventually(t, func() bool {
		left, err := produce.TopicsWithPrefix(ctx, brokers, names[0], 10)
		return err == nil && len(left) == 0
	}, 30*time.Second, 200*time.Millisecond)
}
