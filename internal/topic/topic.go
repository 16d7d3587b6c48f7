// Package topic creates Doppel's Kafka topics when they are missing and waits until they can be used.
package topic

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Spec describes a topic to create if missing.
type Spec struct {
	Name       string
	Partitions int
	// ReplicationFactor; -1 takes the broker's default.replication.factor.
	ReplicationFactor int
	// Configs are topic-level settings for a topic created here, such as max.message.bytes; an
	// existing topic keeps its own.
	Configs map[string]string
}

// Ensure creates every missing topic and waits until each has a leader for all its partitions. An
// existing topic is left as it is (its partition count is not changed).
func Ensure(ctx context.Context, brokers []string, specs ...Spec) error {
	// A transport of its own: kafka-go's shared default transport caches metadata, and a cached
	// "no such topic" from before the creation would make the service's writers fail for seconds.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 15 * time.Second, Transport: transport}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: s.ReplicationFactor}
		for name, value := range s.Configs {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: name, ConfigValue: value})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	return waitForLeaders(ctx, client, names)
}

func waitForLeaders(ctx context.Context, client *kafka.Client, names []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && allLed(meta) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("partitions without a leader")
			}
			return fmt.Errorf("wait for topics %v: %w", names, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLed(meta *kafka.MetadataResponse) bool {
	for _, t := range meta.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.ID < 0 {
				return false
			}
		}
	}
	return true
}
