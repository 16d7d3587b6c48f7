package topic

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// MaxMessageBytes returns the largest record batch the broker accepts on topic: the topic's
// effective max.message.bytes, which is the broker's message.max.bytes unless the topic overrides
// it. Asking for the topic's setting rather than the broker's answers both in one request.
func MaxMessageBytes(ctx context.Context, brokers []string, name string) (int, error) {
	client, closeIdle := NewClient(brokers, 10*time.Second)
	defer closeIdle()
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: name, ConfigNames: []string{"max.message.bytes"},
		}},
	})
	if err != nil {
		return 0, fmt.Errorf("describe config of topic %s: %w", name, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return 0, fmt.Errorf("describe config of topic %s: %w", name, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName != "max.message.bytes" {
				continue
			}
			n, err := strconv.Atoi(e.ConfigValue)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("topic %s: max.message.bytes is %q, not a positive number", name, e.ConfigValue)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("topic %s: the broker did not report max.message.bytes", name)
}

// Retention returns how long the broker keeps topic's messages: its effective retention.ms, -1 for
// for ever.
func Retention(ctx context.Context, brokers []string, name string) (time.Duration, error) {
	client, closeIdle := NewClient(brokers, 10*time.Second)
	defer closeIdle()
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: name, ConfigNames: []string{"retention.ms"},
		}},
	})
	if err != nil {
		return 0, fmt.Errorf("describe config of topic %s: %w", name, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return 0, fmt.Errorf("describe config of topic %s: %w", name, r.Error)
		}
		for _, e := range r.ConfigEntries {
			if e.ConfigName != "retention.ms" {
				continue
			}
			ms, err := strconv.ParseInt(e.ConfigValue, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("topic %s: retention.ms is %q, not a number", name, e.ConfigValue)
			}
			if ms < 0 {
				return -1, nil
			}
			return time.Duration(ms) * time.Millisecond, nil
		}
	}
	return 0, fmt.Errorf("topic %s: the broker did not report retention.ms", name)
}
