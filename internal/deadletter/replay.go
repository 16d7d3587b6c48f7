// Package deadletter re-publishes dead letters to the input topic once what made them fail is
// fixed (`doppel dlq replay`). The pipeline is idempotent, so replaying a letter twice, or one
// whose signatureId has since been stored, is harmless.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/topic"
)

// HeaderReplayedFrom marks a replayed message with where its dead letter was.
const HeaderReplayedFrom = "doppel-replayed-from"

// Options selects which dead letters to replay and where to.
type Options struct {
	Brokers     []string
	DLQTopic    string
	TargetTopic string
	// SourceRoutes sends letters that came from one of its keys (doppel-dlq-source-topic) back to
	// the value instead of TargetTopic: a dead-lettered started event goes back to the started topic.
	SourceRoutes map[string]string
	// Reasons keeps only letters with one of these reasons; empty keeps all.
	Reasons []string
	// Since keeps only letters dead-lettered at or after this time; zero keeps all.
	Since time.Time
	// DryRun counts what would be replayed without publishing.
	DryRun bool
	// Progress, if set, is called after each letter read with the running report.
	Progress func(Report)
	// OnMatch, if set, is called for each selected letter, before it is republished (or not, in a
	// dry run): what `doppel dlq replay --dry-run` lists.
	OnMatch func(Letter)
}

// Letter describes one selected dead letter.
type Letter struct {
	Time      time.Time // when it was dead-lettered
	Reason    string
	Key       string
	Partition int
	Offset    int64
	Truncated bool // its value was cut to fit the dead-letter topic: listed, never republished
}

// Report counts what a replay did.
type Report struct {
	Scanned     int            `json:"scanned"`
	Matched     int            `json:"matched"`
	Republished int            `json:"republished"`
	ByReason    map[string]int `json:"byReason"`
	// Truncated counts selected letters left where they are because their value was cut to fit
	// the dead-letter topic (doppel-dlq-truncated): republishing a part would not be the event.
	Truncated int `json:"truncated"`
}

// Replay reads the dead-letter topic from its beginning up to its end at the time of the call (so
// it terminates), and re-publishes the selected letters to the target topic with their original
// key, value and producer headers, without the dead-letter annotations.
func Replay(ctx context.Context, opts Options) (Report, error) {
	rep := Report{ByReason: map[string]int{}}
	if len(opts.Brokers) == 0 || opts.DLQTopic == "" || opts.TargetTopic == "" {
		return rep, errors.New("replay: brokers, dead-letter topic and target topic are required")
	}
	client, closeIdle := topic.NewClient(opts.Brokers, 15*time.Second)
	defer closeIdle()
	bounds, err := topic.Offsets(ctx, client, opts.DLQTopic)
	if err != nil {
		return rep, fmt.Errorf("dead-letter topic: %w", err)
	}
	// No writer-wide topic: each letter names its own (see SourceRoutes).
	writer := topic.NewWriter(opts.Brokers, "", topic.WriterConfig{BatchTimeout: 5 * time.Millisecond})
	defer writer.Close()

	for partition, b := range bounds {
		if b.FirstOffset >= b.LastOffset {
			continue
		}
		if err := replayPartition(ctx, opts, writer, partition, b, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func replayPartition(ctx context.Context, opts Options, w *kafka.Writer, partition int, b kafka.PartitionOffsets, rep *Report) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: opts.Brokers, Topic: opts.DLQTopic, Partition: partition,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(b.FirstOffset); err != nil {
		return err
	}
	var batch []kafka.Message
	flush := func() error {
		if len(batch) == 0 || opts.DryRun {
			batch = batch[:0]
			return nil
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("republish dead letters: %w", err)
		}
		rep.Republished += len(batch)
		batch = batch[:0]
		return nil
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s[%d]: %w", opts.DLQTopic, partition, err)
		}
		rep.Scanned++
		if reason, ok := selected(m, opts); ok {
			rep.Matched++
			rep.ByReason[reason]++
			if opts.OnMatch != nil {
				opts.OnMatch(Letter{Time: m.Time, Reason: reason, Key: string(m.Key), Partition: m.Partition, Offset: m.Offset,
					Truncated: header(m, consumer.HeaderTruncated) != ""})
			}
			if header(m, consumer.HeaderTruncated) != "" {
				rep.Truncated++
			} else {
				batch = append(batch, republished(m, opts.target(m)))
			}
			if len(batch) >= 500 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if opts.Progress != nil {
			opts.Progress(*rep)
		}
		if m.Offset >= b.LastOffset-1 {
			return flush()
		}
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func selected(m kafka.Message, opts Options) (string, bool) {
	reason := header(m, consumer.HeaderReason)
	if len(opts.Reasons) > 0 && !slices.Contains(opts.Reasons, reason) {
		return reason, false
	}
	if !opts.Since.IsZero() && m.Time.Before(opts.Since) {
		return reason, false
	}
	return reason, true
}

// target returns the topic a letter is republished to.
func (o Options) target(m kafka.Message) string {
	if t, ok := o.SourceRoutes[header(m, consumer.HeaderSourceTopic)]; ok && t != "" {
		return t
	}
	return o.TargetTopic
}

func republished(m kafka.Message, topic string) kafka.Message {
	headers := make([]kafka.Header, 0, len(m.Headers)+1)
	for _, h := range m.Headers {
		if !strings.HasPrefix(h.Key, "doppel-dlq-") && h.Key != HeaderReplayedFrom {
			headers = append(headers, h)
		}
	}
	headers = append(headers, kafka.Header{Key: HeaderReplayedFrom,
		Value: []byte(m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10))})
	return kafka.Message{Topic: topic, Key: m.Key, Value: m.Value, Headers: headers}
}
