package main

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/topic"
)

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

// newEventWriter writes the soak's events: batches of up to 1,000, three tries inside kafka-go,
// after which produce.Acknowledged writes what the broker did not acknowledge again.
func newEventWriter(brokers []string, name string) *kafka.Writer {
	return topic.NewWriter(brokers, name, topic.WriterConfig{
		BatchSize: 1000, BatchBytes: 8 << 20, BatchTimeout: 5 * time.Millisecond, MaxAttempts: 3})
}
