package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/pause"
	"github.com/doppelhq/doppel/internal/topic"
)

func kafkaClient(brokers []string) (*kafka.Client, func()) {
	return topic.NewClient(brokers, 15*time.Second)
}

func createTopics(ctx context.Context, brokers []string, events, alerts, dlq string, partitions int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The dead-letter topic has one partition, and every topic as many copies as doppel would give it
	// (three on a cluster of three brokers, with min.insync.replicas=2).
	_, err := topic.Ensure(ctx, brokers,
		topic.Spec{Name: events, Partitions: partitions, ReplicationFactor: topic.AutoReplication},
		topic.Spec{Name: alerts, Partitions: partitions, ReplicationFactor: topic.AutoReplication},
		topic.Spec{Name: dlq, Partitions: 1, ReplicationFactor: topic.AutoReplication})
	return err
}

// partitionLeader returns the id of the node leading partition of name.
func partitionLeader(ctx context.Context, brokers []string, name string, partition int) (int, error) {
	client, closeIdle := kafkaClient(brokers)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", name, err)
	}
	for _, t := range meta.Topics {
		for _, p := range t.Partitions {
			if t.Name == name && p.ID == partition && p.Leader.ID >= 0 {
				return p.Leader.ID, nil
			}
		}
	}
	return 0, fmt.Errorf("partition %d of %s has no leader", partition, name)
}

// offsets returns the first and end offsets of every partition of a topic.
func offsets(ctx context.Context, brokers []string, name string) (map[int][2]int64, error) {
	client, closeIdle := kafkaClient(brokers)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	bounds, err := topic.Offsets(ctx, client, name)
	if err != nil {
		return nil, err
	}
	out := make(map[int][2]int64, len(bounds))
	for p, b := range bounds {
		out[p] = [2]int64{b.FirstOffset, b.LastOffset}
	}
	return out, nil
}

// topicReader reads a topic's partitions from where it last stopped up to their current end, without
// a consumer group, so it can be called again to read what arrived since.
type topicReader struct {
	brokers []string
	topic   string
	next    map[int]int64 // partition -> next offset to read
}

func newTopicReader(brokers []string, name string) *topicReader {
	return &topicReader{brokers: brokers, topic: name, next: map[int]int64{}}
}

// readNew calls fn for every message written since the last call, within timeout.
func (r *topicReader) readNew(ctx context.Context, timeout time.Duration, fn func(kafka.Message)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bounds, err := offsets(ctx, r.brokers, r.topic)
	if err != nil {
		return err
	}
	for p, b := range bounds {
		from, ok := r.next[p]
		if !ok || from < b[0] {
			from = b[0]
		}
		if from >= b[1] {
			continue
		}
		if err := r.readPartition(ctx, p, from, b[1], fn); err != nil {
			return err
		}
	}
	return nil
}

func (r *topicReader) readPartition(ctx context.Context, partition int, from, end int64, fn func(kafka.Message)) error {
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: r.brokers, Topic: r.topic, Partition: partition,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond})
	defer rd.Close()
	if err := rd.SetOffset(from); err != nil {
		return err
	}
	for r.next[partition] = from; r.next[partition] < end; {
		m, err := rd.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d at offset %d (end %d): %w", r.topic, partition, r.next[partition], end, err)
		}
		fn(m)
		r.next[partition] = m.Offset + 1
	}
	return nil
}

// producer writes the soak's events and counts only what the broker acknowledged; what it did not
// is written again (after the broker is back), so no event of the ledger is a guess.
type producer struct {
	w *kafka.Writer
}

func newProducer(brokers []string, name string) *producer {
	return &producer{w: topic.NewWriter(brokers, name, topic.WriterConfig{
		BatchSize: 1000, BatchBytes: 8 << 20, BatchTimeout: 5 * time.Millisecond, MaxAttempts: 3})}
}

func (p *producer) close() error { return p.w.Close() }

// write writes the messages until each is acknowledged or ctx ends or maxWait passes. It calls acked
// with the index of every acknowledged message and returns how many attempts failed.
func (p *producer) write(ctx context.Context, msgs []kafka.Message, maxWait time.Duration, acked func(i int)) (failedAttempts int, err error) {
	pending := make([]int, len(msgs))
	for i := range msgs {
		pending[i] = i
	}
	deadline := time.Now().Add(maxWait)
	wait := 200 * time.Millisecond
	for attempt := 0; len(pending) > 0; attempt++ {
		batch := make([]kafka.Message, len(pending))
		for j, i := range pending {
			batch[j] = msgs[i]
		}
		werr := p.w.WriteMessages(ctx, batch...)
		if werr == nil {
			for _, i := range pending {
				acked(i)
			}
			return failedAttempts, nil
		}
		failedAttempts++
		var perMsg kafka.WriteErrors
		var still []int
		if errors.As(werr, &perMsg) && len(perMsg) == len(pending) {
			for j, i := range pending {
				if perMsg[j] == nil {
					acked(i)
				} else {
					still = append(still, i)
				}
			}
		} else {
			still = pending // nothing known to be written: write all again
		}
		pending = still
		if ctx.Err() != nil {
			return failedAttempts, ctx.Err()
		}
		if time.Now().After(deadline) {
			return failedAttempts, fmt.Errorf("%d messages not acknowledged within %s: %w", len(pending), maxWait, werr)
		}
		if !pause.For(ctx, wait) {
			return failedAttempts, ctx.Err()
		}
		wait = min(2*wait, 3*time.Second)
	}
	return failedAttempts, nil
}
