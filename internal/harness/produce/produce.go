// Package produce writes a harness run's events to Kafka and reads topics back: a backlog written
// as fast as the broker takes it (doppel-bench), a write that counts only what the broker
// acknowledged and retries the rest (doppel-soak, through broker restarts), and a reader of a
// topic's partitions from where it last stopped up to their end, without a consumer group, so that
// what doppel wrote can be counted and compared. The writers' batching is the caller's: it is part
// of what a command measures.
package produce

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/pause"
	"github.com/doppelhq/doppel/internal/topic"
)

// backlogChunk is how many messages Backlog hands the writer at once: enough to fill its batches,
// few enough that a large backlog is not built in memory all at once.
const backlogChunk = 10000

// Backlog writes n messages, message(i) for i from 0, to w's topic, in chunks, and returns how long
// it took (building the messages included).
func Backlog(ctx context.Context, w *kafka.Writer, n int, message func(i int) kafka.Message) (time.Duration, error) {
	start := time.Now()
	for i := 0; i < n; i += backlogChunk {
		msgs := make([]kafka.Message, 0, backlogChunk)
		for j := i; j < min(i+backlogChunk, n); j++ {
			msgs = append(msgs, message(j))
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return 0, fmt.Errorf("produce backlog to %s: %w", w.Topic, err)
		}
	}
	return time.Since(start), nil
}

// Acknowledged writes msgs until each is acknowledged or ctx ends or maxWait passes. It calls acked
// with the index of every acknowledged message and returns how many attempts failed. What the
// broker did not acknowledge is written again after a pause (doubling up to 3 s), so that a count
// of acknowledged messages is never a guess, even across a broker restart.
func Acknowledged(ctx context.Context, w *kafka.Writer, msgs []kafka.Message, maxWait time.Duration, acked func(i int)) (failedAttempts int, err error) {
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
		werr := w.WriteMessages(ctx, batch...)
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

// client is the metadata client of the functions below.
func client(brokers []string) (*kafka.Client, func()) {
	return topic.NewClient(brokers, 15*time.Second)
}

// Bounds is the first offset of a partition and its end (the offset the next message gets).
type Bounds struct {
	First, End int64
}

// Offsets returns the bounds of every partition of a topic, by partition.
func Offsets(ctx context.Context, brokers []string, name string) (map[int]Bounds, error) {
	c, closeIdle := client(brokers)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	bounds, err := topic.Offsets(ctx, c, name)
	if err != nil {
		return nil, err
	}
	out := make(map[int]Bounds, len(bounds))
	for p, b := range bounds {
		out[p] = Bounds{First: b.FirstOffset, End: b.LastOffset}
	}
	return out, nil
}

// Leader returns the id of the node leading a partition of a topic.
func Leader(ctx context.Context, brokers []string, name string, partition int) (int, error) {
	c, closeIdle := client(brokers)
	defer closeIdle()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
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

// TopicsWithPrefix lists up to limit topics whose names begin with prefix: what earlier runs left.
func TopicsWithPrefix(ctx context.Context, brokers []string, prefix string, limit int) ([]string, error) {
	c, closeIdle := client(brokers)
	defer closeIdle()
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range meta.Topics {
		if strings.HasPrefix(t.Name, prefix) && len(out) < limit {
			out = append(out, t.Name)
		}
	}
	return out, nil
}

// DeleteTopics deletes topics (none: nothing to do).
func DeleteTopics(ctx context.Context, brokers []string, names ...string) error {
	if len(names) == 0 {
		return nil
	}
	c, closeIdle := client(brokers)
	defer closeIdle()
	_, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	return err
}
