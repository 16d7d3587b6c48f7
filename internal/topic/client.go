package topic

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// NewClient returns a Kafka client with a transport of its own, and the function that closes the
// transport's idle connections. kafka-go's shared default transport caches metadata and keeps
// connections open: a cached "no such topic" from before a creation would fail writers for seconds,
// and a metrics scrape should leave no connection behind.
func NewClient(brokers []string, timeout time.Duration) (*kafka.Client, func()) {
	t := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: timeout, Transport: t}, t.CloseIdleConnections
}

// WriterConfig holds what differs between Doppel's producers; the zero value of a field takes
// kafka-go's default, except WriteTimeout (10 s).
type WriterConfig struct {
	BatchSize       int
	BatchBytes      int64
	BatchTimeout    time.Duration
	WriteTimeout    time.Duration
	MaxAttempts     int
	WriteBackoffMax time.Duration
}

// NewWriter returns the producer every part of Doppel writes with: keys hashed as Java producers
// hash them (murmur2, so a key lands on the same partition whoever wrote it), each batch
// acknowledged by every in-sync replica, and a transport of its own (see NewClient).
func NewWriter(brokers []string, topic string, cfg WriterConfig) *kafka.Writer {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	return &kafka.Writer{
		Addr:            kafka.TCP(brokers...),
		Topic:           topic,
		Balancer:        &kafka.Murmur2Balancer{},
		RequiredAcks:    kafka.RequireAll,
		BatchSize:       cfg.BatchSize,
		BatchBytes:      cfg.BatchBytes,
		BatchTimeout:    cfg.BatchTimeout,
		WriteTimeout:    cfg.WriteTimeout,
		MaxAttempts:     cfg.MaxAttempts,
		WriteBackoffMax: cfg.WriteBackoffMax,
		Transport:       &kafka.Transport{},
	}
}

// HeaderSource names who wrote a message that did not come from the usual producer ("callback").
const HeaderSource = "doppel-source"

// Publisher writes messages to one topic, keyed, and returns once every in-sync replica
// acknowledged them.
type Publisher struct {
	w       *kafka.Writer
	headers []kafka.Header
}

// NewPublisher returns a publisher to topic on brokers whose messages carry source in HeaderSource.
// It retries a failed write a few times, briefly: its caller is waiting to answer someone.
func NewPublisher(brokers []string, topic, source string) *Publisher {
	return &Publisher{headers: []kafka.Header{{Key: HeaderSource, Value: []byte(source)}}, w: NewWriter(brokers, topic, WriterConfig{
		BatchTimeout:    2 * time.Millisecond, // kafka-go's 1 s default would hold every message
		MaxAttempts:     3,
		WriteBackoffMax: 500 * time.Millisecond,
	})}
}

// Publish writes one message and waits for the acknowledgement or ctx's end.
func (p *Publisher) Publish(ctx context.Context, key, value []byte) error {
	return p.w.WriteMessages(ctx, kafka.Message{Key: key, Value: value, Headers: p.headers})
}

// Close flushes and closes the writer.
func (p *Publisher) Close() error { return p.w.Close() }

// Partitions returns the ids of topic's partitions. A topic the broker does not report, or reports
// with an error, is an error.
func Partitions(ctx context.Context, client *kafka.Client, topic string) ([]int, error) {
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("read metadata of %s: %w", topic, err)
	}
	for _, t := range meta.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", topic, t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		return ids, nil
	}
	return nil, fmt.Errorf("topic %s: %w", topic, kafka.UnknownTopicOrPartition)
}

// Bounds returns each partition's first and last offsets; the last offset is the one the next
// message will get (the high watermark), so last minus first is the number of messages.
//
// A leader that is still being elected (a new topic, a restarted broker) answers with a retriable
// error: Bounds asks again until ctx ends rather than report a passing state as a failure (a
// dead-letter replay of a topic created a moment before failed on NOT_LEADER_FOR_PARTITION). A
// topic that does not exist is an answer, not a passing state.
func Bounds(ctx context.Context, client *kafka.Client, topic string, partitions []int) (map[int]kafka.PartitionOffsets, error) {
	return untilSettled(ctx, func() (map[int]kafka.PartitionOffsets, error) { return bounds(ctx, client, topic, partitions) })
}

// untilSettled calls f until it answers with something other than a retriable Kafka error, or ctx
// ends (see Bounds).
func untilSettled[T any](ctx context.Context, f func() (T, error)) (T, error) {
	for {
		v, err := f()
		var kerr kafka.Error
		if err == nil || !errors.As(err, &kerr) || !kerr.Temporary() || errors.Is(err, kafka.UnknownTopicOrPartition) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func bounds(ctx context.Context, client *kafka.Client, topic string, partitions []int) (map[int]kafka.PartitionOffsets, error) {
	reqs := make([]kafka.OffsetRequest, 0, 2*len(partitions))
	for _, p := range partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	bounds := make(map[int]kafka.PartitionOffsets, len(partitions))
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		bounds[p.Partition] = p
	}
	return bounds, nil
}

// OffsetsAt returns, for each of partitions, the offset of the first message whose timestamp is at
// or after at (kafka-go's offset-for-time lookup, ListOffsets with a timestamp). A partition with
// no message that recent is left out: its end offset is where such a message would go. It asks
// again on a retriable error, as Bounds does.
func OffsetsAt(ctx context.Context, client *kafka.Client, topic string, partitions []int, at time.Time) (map[int]int64, error) {
	return untilSettled(ctx, func() (map[int]int64, error) {
		reqs := make([]kafka.OffsetRequest, len(partitions))
		for i, p := range partitions {
			reqs[i] = kafka.TimeOffsetOf(p, at)
		}
		resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return nil, fmt.Errorf("list offsets of %s at %s: %w", topic, at.Format(time.RFC3339Nano), err)
		}
		offsets := make(map[int]int64, len(partitions))
		for _, p := range resp.Topics[topic] {
			if p.Error != nil {
				return nil, fmt.Errorf("offset of %s/%d at %s: %w", topic, p.Partition, at.Format(time.RFC3339Nano), p.Error)
			}
			// kafka-go files an answer under Offsets only when the broker found a message; "none"
			// comes back as offset -1 with timestamp -1, which it files as LastOffset.
			for offset := range p.Offsets {
				if offset >= 0 {
					offsets[p.Partition] = offset
				}
			}
		}
		return offsets, nil
	})
}

// Offsets returns the first and last offsets of every partition of topic: Partitions, then Bounds.
func Offsets(ctx context.Context, client *kafka.Client, topic string) (map[int]kafka.PartitionOffsets, error) {
	return untilSettled(ctx, func() (map[int]kafka.PartitionOffsets, error) {
		partitions, err := Partitions(ctx, client, topic)
		if err != nil {
			return nil, err
		}
		return bounds(ctx, client, topic, partitions)
	})
}

// Messages returns how many messages topic holds now (each partition's end offset minus its start
// offset, summed), for counts such as the dead letters waiting on the dead-letter topic.
func Messages(ctx context.Context, brokers []string, topic string) (int64, error) {
	if len(brokers) == 0 || topic == "" {
		return 0, errors.New("topic size: brokers and topic are required")
	}
	client, closeIdle := NewClient(brokers, 10*time.Second)
	defer closeIdle()
	bounds, err := Offsets(ctx, client, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, b := range bounds {
		n += max(b.LastOffset-b.FirstOffset, 0)
	}
	return n, nil
}
