// Package topic is the one place Doppel talks to Kafka about topics and producing: it creates the
// topics when they are missing and waits until they can be used, reads their metadata, offsets and
// size limit, and builds every producer (NewWriter, NewPublisher).
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
	client, closeIdle := NewClient(brokers, 15*time.Second)
	defer closeIdle()
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

// waitForLeaders waits, for 30 seconds at the most, until every partition of the named topics has
// a leader.
func waitForLeaders(ctx context.Context, client *kafka.Client, names []string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && allLed(meta, len(names)) {
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

func allLed(meta *kafka.MetadataResponse, want int) bool {
	if len(meta.Topics) != want {
		return false
	}
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
