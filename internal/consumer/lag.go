package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/topic"
)

// Lag returns, for every partition of topic, how many messages the consumer group groupID has not
// committed yet: the partition's end offset minus the group's committed offset. A partition the
// group never committed counts whole (end minus start offset), since the consumer starts there.
//
// It asks the brokers rather than a Reader because kafka-go's Reader.Lag is -1 in a consumer
// group, and because the answer then holds for the whole group, not for the partitions one
// process happens to be assigned.
func Lag(ctx context.Context, brokers []string, groupID, topicName string) (map[int]int64, error) {
	if len(brokers) == 0 || groupID == "" || topicName == "" {
		return nil, errors.New("consumer lag: brokers, group id and topic are required")
	}
	client, closeIdle := topic.NewClient(brokers, 10*time.Second)
	defer closeIdle()
	return LagOf(ctx, client, groupID, topicName)
}

// LagOf is Lag through a client the caller keeps, for a caller that measures often (the parking
// of a vendor region) and should not open connections each time.
func LagOf(ctx context.Context, client *kafka.Client, groupID, topicName string) (map[int]int64, error) {
	partitions, err := topic.Partitions(ctx, client, topicName)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	committed, err := committedOffsets(ctx, client, groupID, topicName, partitions)
	if err != nil {
		return nil, err
	}
	bounds, err := topic.Bounds(ctx, client, topicName, partitions)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}

	lag := make(map[int]int64, len(partitions))
	for _, p := range partitions {
		b, ok := bounds[p]
		if !ok {
			return nil, fmt.Errorf("consumer lag of %s: no offsets for partition %d", topicName, p)
		}
		from, ok := committed[p]
		// Below the start offset (never committed, or retention deleted what the commit pointed
		// at) the consumer resets to the start, so that is where its backlog begins; above the
		// end (a truncated log) it has nothing left to read.
		if !ok || from < b.FirstOffset {
			from = b.FirstOffset
		}
		lag[p] = max(b.LastOffset-from, 0)
	}
	return lag, nil
}

// committedOffsets returns the group's committed offset per partition; partitions without one
// are left out.
func committedOffsets(ctx context.Context, client *kafka.Client, groupID, topic string, partitions []int) (map[int]int64, error) {
	var resp *kafka.OffsetFetchResponse
	var err error
	// On a new cluster the first group request makes the broker create its offsets topic; until
	// that is done it answers that no coordinator is ready, which is worth a few short retries.
	for attempt := 0; ; attempt++ {
		resp, err = client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
			GroupID: groupID,
			Topics:  map[string][]int{topic: partitions},
		})
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err == nil || attempt >= 20 || !coordinatorNotReady(err) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("consumer lag: fetch offsets of group %s: %w", groupID, err)
	}
	committed := make(map[int]int64, len(partitions))
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("consumer lag: offset of group %s on %s/%d: %w", groupID, topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 { // -1: nothing committed on this partition
			committed[p.Partition] = p.CommittedOffset
		}
	}
	return committed, nil
}

func coordinatorNotReady(err error) bool {
	return errors.Is(err, kafka.NotCoordinatorForGroup) || errors.Is(err, kafka.GroupCoordinatorNotAvailable) ||
		errors.Is(err, kafka.GroupLoadInProgress)
}
