package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicMessages returns how many messages topic holds now (each partition's end offset minus its
// start offset, summed), for counts such as the dead letters waiting on the dead-letter topic.
func TopicMessages(ctx context.Context, brokers []string, topic string) (int64, error) {
	if len(brokers) == 0 || topic == "" {
		return 0, errors.New("topic size: brokers and topic are required")
	}
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: transport}
	partitions, err := topicPartitions(ctx, client, topic)
	if err != nil {
		return 0, err
	}
	bounds, err := offsetBounds(ctx, client, topic, partitions)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, b := range bounds {
		n += max(b.LastOffset-b.FirstOffset, 0)
	}
	return n, nil
}
