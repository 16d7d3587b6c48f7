package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Lag returns, for every partition of topic, how many messages the consumer group groupID has not
// committed yet: the partition's end offset minus the group's committed offset. A partition the
// group never committed counts whole (end minus start offset), since the consumer starts there.
//
// It asks the brokers rather than a Reader because kafka-go's Reader.Lag is -1 in a consumer
// group, and because the answer then holds for the whole group, not for the partitions one
// process happens to be assigned.
func Lag(ctx context.Context, brokers []string, groupID, topic string) (map[int]int64, error) {
	if len(brokers) == 0 || groupID == "" || topic == "" {
		return nil, errors.New("consumer lag: brokers, group id and topic are required")
	}
	// A transport of its own, closed on return: kafka-go's shared default transport caches
	// metadata and keeps connections open, and a metrics scrape should leave neither behind nor
	// see partitions cached from before the topic changed.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	return LagOf(ctx, client, groupID, topic)
}

// LagOf is Lag through a client the caller keeps, for a caller that measures often (the parking
// of a vendor region) and should not open connections each time.
func LagOf(ctx context.Context, client *kafka.Client, groupID, topic string) (map[int]int64, error) {
	partitions, err := topicPartitions(ctx, client, topic)
	if err != nil {
		return nil, err
	}
	committed, err := committedOffsets(ctx, client, groupID, topic, partitions)
	if err != nil {
		return nil, err
	}
	bounds, err := offsetBounds(ctx, client, topic, partitions)
	if err != nil {
		return nil, err
	}

	lag := make(map[int]int64, len(partitions))
	for _, p := range partitions {
		b, ok := bounds[p]
		if !ok {
			return nil, fmt.Errorf("consumer lag of %s: no offsets for partition %d", topic, p)
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

func topicPartitions(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("consumer lag: read metadata of %s: %w", topic, err)
	}
	for _, t := range meta.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("consumer lag: topic %s: %w", topic, t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		return ids, nil
	}
	return nil, fmt.Errorf("consumer lag: topic %s: %w", topic, kafka.UnknownTopicOrPartition)
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

// offsetBounds returns each partition's first and last offsets; the last offset is the one the
// next message will get (the high watermark), so last minus first is the number of messages.
func offsetBounds(ctx context.Context, client *kafka.Client, topic string, partitions []int) (map[int]kafka.PartitionOffsets, error) {
	reqs := make([]kafka.OffsetRequest, 0, 2*len(partitions))
	for _, p := range partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("consumer lag: list offsets of %s: %w", topic, err)
	}
	bounds := make(map[int]kafka.PartitionOffsets, len(partitions))
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("consumer lag: offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		bounds[p.Partition] = p
	}
	return bounds, nil
}

func coordinatorNotReady(err error) bool {
	return errors.Is(err, kafka.NotCoordinatorForGroup) || errors.Is(err, kafka.GroupCoordinatorNotAvailable) ||
		errors.Is(err, kafka.GroupLoadInProgress)
}
