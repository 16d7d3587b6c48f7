package produce

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Reader reads a topic's partitions from where it last stopped up to their current end, without a
// consumer group (no join delay, no committed offsets of its own), so it can be called again to
// read what arrived since.
type Reader struct {
	brokers []string
	topic   string
	next    map[int]int64 // partition -> next offset to read
}

// NewReader returns a Reader of topic name that has read nothing yet.
func NewReader(brokers []string, name string) *Reader {
	return &Reader{brokers: brokers, topic: name, next: map[int]int64{}}
}

// ReadNew calls fn for every message written since the last call, within timeout.
func (r *Reader) ReadNew(ctx context.Context, timeout time.Duration, fn func(kafka.Message)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bounds, err := Offsets(ctx, r.brokers, r.topic)
	if err != nil {
		return err
	}
	for p, b := range bounds {
		from, ok := r.next[p]
		if !ok || from < b.First {
			from = b.First
		}
		if from >= b.End {
			continue
		}
		if err := r.readPartition(ctx, p, from, b.End, fn); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) readPartition(ctx context.Context, partition int, from, end int64, fn func(kafka.Message)) error {
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
