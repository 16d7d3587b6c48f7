// Package topic is the one place Doppel talks to Kafka about topics and producing: it creates the
// topics when they are missing and waits until they can be used, reads their metadata, offsets and
// size limit, and builds every producer (NewWriter, NewPublisher).
package topic

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Spec describes a topic to create if missing.
type Spec struct {
	Name       string
	Partitions int
	// ReplicationFactor is the copies of each partition: AutoReplication (0) takes 3 on a cluster of
	// three brokers or more and 1 otherwise; -1 takes the broker's default.replication.factor.
	ReplicationFactor int
	// Configs are topic-level settings for a topic created here, such as max.message.bytes; an
	// existing topic keeps its own.
	Configs map[string]string
}

// AutoReplication as a Spec's ReplicationFactor replicates a topic as the cluster allows (see
// ReplicationFor).
const AutoReplication = 0

// MinInsyncReplicas is the min.insync.replicas Ensure gives a topic it creates with three copies or
// more. With acks=all (every producer of NewWriter), a write is then acknowledged only once two
// brokers hold it, so the loss of any one broker loses no acknowledged event or alert, and a
// partition with one copy left refuses writes rather than keep them on a single disk.
const MinInsyncReplicas = 2

// ReplicationFor returns the factor a topic gets on a cluster of brokers brokers when configured
// asks for AutoReplication (0): three copies where there are three brokers, else one; any other
// value is returned as it is.
func ReplicationFor(configured, brokers int) int {
	if configured != AutoReplication {
		return configured
	}
	if brokers >= 3 {
		return 3
	}
	return 1
}

// State is what Ensure found or made of one topic.
type State struct {
	Name string
	// Created is true when this call created the topic, false when it existed.
	Created bool
	// ReplicationFactor is the number of copies of its first partition.
	ReplicationFactor int
}

// Report is what Ensure saw: the cluster's size and each topic's state, in the order asked.
type Report struct {
	// Brokers is how many brokers the metadata listed when Ensure began (a broker that is down
	// at that moment is not counted).
	Brokers int
	Topics  []State
}

// SingleCopy returns the topics Ensure did not create that have one copy on a cluster of three
// brokers or more: losing the one broker that holds such a topic loses its messages, whatever
// Doppel's producers ask for, so the service warns about each at start.
func (r Report) SingleCopy() []State {
	if r.Brokers < 3 {
		return nil
	}
	var out []State
	for _, t := range r.Topics {
		if !t.Created && t.ReplicationFactor == 1 {
			out = append(out, t)
		}
	}
	return out
}

// Ensure creates every missing topic and waits until each has a leader for all its partitions. An
// existing topic is left as it is (its partition count, factor and settings are not changed). A
// topic created with three copies or more gets min.insync.replicas=MinInsyncReplicas unless its
// Spec sets it.
func Ensure(ctx context.Context, brokers []string, specs ...Spec) (Report, error) {
	client, closeIdle := NewClient(brokers, 15*time.Second)
	defer closeIdle()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return Report{}, fmt.Errorf("read the cluster's metadata: %w", err)
	}
	rep := Report{Brokers: len(meta.Brokers)}
	req := &kafka.CreateTopicsRequest{}
	for _, s := range specs {
		rf := ReplicationFor(s.ReplicationFactor, rep.Brokers)
		if rf > rep.Brokers {
			return rep, fmt.Errorf("topic %s: a replication factor of %d needs %d brokers, and the cluster lists %d",
				s.Name, rf, rf, rep.Brokers)
		}
		tc := kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: rf}
		for name, value := range s.Configs {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: name, ConfigValue: value})
		}
		if _, set := s.Configs["min.insync.replicas"]; rf >= 3 && !set {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: "min.insync.replicas",
				ConfigValue: strconv.Itoa(MinInsyncReplicas)})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return rep, fmt.Errorf("create topics: %w", err)
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
		err := resp.Errors[s.Name]
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return rep, fmt.Errorf("create topic %s: %w", s.Name, err)
		}
		rep.Topics = append(rep.Topics, State{Name: s.Name, Created: err == nil})
	}
	led, err := waitForLeaders(ctx, client, names)
	if err != nil {
		return rep, err
	}
	for i := range rep.Topics {
		for _, t := range led.Topics {
			if t.Name == rep.Topics[i].Name && len(t.Partitions) > 0 {
				rep.Topics[i].ReplicationFactor = len(t.Partitions[0].Replicas)
			}
		}
	}
	return rep, nil
}

// Describe reports the named existing topics as Ensure would, creating nothing; a topic that does
// not exist is left out.
func Describe(ctx context.Context, brokers []string, names ...string) (Report, error) {
	client, closeIdle := NewClient(brokers, 15*time.Second)
	defer closeIdle()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return Report{}, fmt.Errorf("read metadata of %v: %w", names, err)
	}
	rep := Report{Brokers: len(meta.Brokers)}
	for _, t := range meta.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			rep.Topics = append(rep.Topics, State{Name: t.Name, ReplicationFactor: len(t.Partitions[0].Replicas)})
		}
	}
	return rep, nil
}

// waitForLeaders waits, for 30 seconds at the most, until every partition of the named topics has
// a leader, and returns their metadata.
func waitForLeaders(ctx context.Context, client *kafka.Client, names []string) (*kafka.MetadataResponse, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err == nil && allLed(meta, len(names)) {
			return meta, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("partitions without a leader")
			}
			return nil, fmt.Errorf("wait for topics %v: %w", names, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
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
