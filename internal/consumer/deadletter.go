package consumer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/pause"
	"github.com/doppelhq/doppel/internal/topic"
)

// Dead-letter headers. The value and key are the original message's; these say why and from where.
const (
	HeaderReason         = "doppel-dlq-reason"
	HeaderError          = "doppel-dlq-error"
	HeaderAttempts       = "doppel-dlq-attempts"
	HeaderSourceTopic    = "doppel-dlq-source-topic"
	HeaderSourcePart     = "doppel-dlq-source-partition"
	HeaderSourceOffset   = "doppel-dlq-source-offset"
	HeaderFirstFailureAt = "doppel-dlq-first-failure-at"
	// HeaderOriginalSize and HeaderOriginalSHA256 give the length and the hex SHA-256 of the
	// original value, on every letter, so a reader can tell a cut value from a whole one and match
	// a letter to the producer's record.
	HeaderOriginalSize   = "doppel-dlq-original-size"
	HeaderOriginalSHA256 = "doppel-dlq-original-sha256"
	// HeaderTruncated lists what was cut to fit the topic's size limit ("value", "headers",
	// "key", comma-separated); it is absent when the letter is whole.
	HeaderTruncated = "doppel-dlq-truncated"
)

const dlqHeaderPrefix = "doppel-dlq-"

// DefaultMaxMessageBytes is Kafka's default message.max.bytes, assumed for the dead-letter topic
// when its own limit cannot be read (for instance when DescribeConfigs is not allowed).
const DefaultMaxMessageBytes = 1048588

// deadLetterWriter writes dead letters that fit the dead-letter topic's size limit.
type deadLetterWriter struct {
	w       *kafka.Writer
	brokers []string
	topic   string
	log     *slog.Logger
	limit   atomic.Int64 // the topic's max.message.bytes as last read
}

func newDeadLetterWriter(brokers []string, topicName string, log *slog.Logger) *deadLetterWriter {
	dw := &deadLetterWriter{
		brokers: brokers,
		topic:   topicName,
		log:     log,
		w: topic.NewWriter(brokers, topicName, topic.WriterConfig{
			BatchTimeout: 5 * time.Millisecond, // kafka-go's 1 s default would stall each dead letter
			// One letter per record batch: the broker's limit is per batch, so two letters fitted
			// to it separately could not share one.
			BatchSize: 1,
			// The fitting below is the size check; kafka-go's own (1 MiB, by its own count) would
			// refuse letters the topic accepts.
			BatchBytes: math.MaxInt32,
		}),
	}
	dw.limit.Store(DefaultMaxMessageBytes)
	return dw
}

// refreshLimit reads the topic's max.message.bytes; on failure the last known limit stays.
func (dw *deadLetterWriter) refreshLimit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := topic.MaxMessageBytes(ctx, dw.brokers, dw.topic)
	if err != nil {
		dw.log.Warn("cannot read the dead-letter topic's size limit; dead letters too large for it are written without their value",
			"topic", dw.topic, "assumed_max_message_bytes", dw.limit.Load(), "error", err)
		return
	}
	if old := dw.limit.Swap(int64(n)); old != int64(n) {
		dw.log.Info("dead-letter topic size limit", "topic", dw.topic, "max_message_bytes", n)
	}
}

// letter is a dead letter before it is fitted to the size limit.
type letter struct {
	key, value []byte
	headers    []kafka.Header // the producer's, which are kept when there is room
	notes      []kafka.Header // the dead-letter annotations, always kept
	cut        []string
}

func newLetter(msg kafka.Message, notes ...kafka.Header) letter {
	l := letter{key: msg.Key, value: msg.Value}
	for _, h := range msg.Headers {
		// Earlier dead-letter annotations (a replayed letter) would otherwise appear twice.
		if !strings.HasPrefix(h.Key, dlqHeaderPrefix) {
			l.headers = append(l.headers, h)
		}
	}
	sum := sha256.Sum256(msg.Value)
	l.notes = append(notes,
		kafka.Header{Key: HeaderOriginalSize, Value: []byte(strconv.Itoa(len(msg.Value)))},
		kafka.Header{Key: HeaderOriginalSHA256, Value: []byte(hex.EncodeToString(sum[:]))},
	)
	return l
}

// withoutValue is the letter with its value dropped, the last resort for a letter the broker
// refused.
func (l letter) withoutValue() letter {
	l.value = nil
	return l.marked("value")
}

// marked records that part was cut.
func (l letter) marked(part string) letter {
	if !slices.Contains(l.cut, part) {
		l.cut = append(slices.Clip(l.cut), part)
	}
	return l
}

func (l letter) message() kafka.Message {
	headers := make([]kafka.Header, 0, len(l.headers)+len(l.notes)+1)
	headers = append(append(headers, l.headers...), l.notes...)
	if len(l.cut) > 0 {
		headers = append(headers, kafka.Header{Key: HeaderTruncated, Value: []byte(strings.Join(l.cut, ","))})
	}
	return kafka.Message{Key: l.key, Value: l.value, Headers: headers}
}

// fit returns the letter as a message of at most limit bytes in its record batch. It cuts, in
// order, the end of the value (what makes a letter large), then the producer's headers, then the
// end of the key; the dead-letter annotations are always kept, so the letter still says why and
// from where, and the original size and hash identify what was cut.
func (l letter) fit(limit int) kafka.Message {
	if m := l.message(); RecordBatchSize(m) <= limit {
		return m
	}
	l = l.marked("value")
	if v, ok := longestPrefix(l.value, limit, func(b []byte) kafka.Message { c := l; c.value = b; return c.message() }); ok {
		l.value = v
		return l.message()
	}
	l.value = nil
	if len(l.headers) > 0 {
		l.headers = nil
		l = l.marked("headers")
		if m := l.message(); RecordBatchSize(m) <= limit {
			return m
		}
	}
	l = l.marked("key")
	if k, ok := longestPrefix(l.key, limit, func(b []byte) kafka.Message { c := l; c.key = b; return c.message() }); ok {
		l.key = k
	}
	// It fits now, or the annotations alone are over the limit: the broker then refuses the
	// letter and write handles that.
	return l.message()
}

// longestPrefix returns the longest prefix of b with which build(prefix) fits limit; ok is false
// when even an empty prefix does not fit.
func longestPrefix(b []byte, limit int, build func([]byte) kafka.Message) (prefix []byte, ok bool) {
	empty := RecordBatchSize(build(b[:0]))
	if empty > limit {
		return nil, false
	}
	n := min(len(b), limit-empty)
	for n > 0 {
		over := RecordBatchSize(build(b[:n])) - limit
		if over <= 0 {
			break
		}
		n -= over // only the length prefix is not linear in n: this settles in a step or two
	}
	return b[:max(n, 0)], true
}

// writeOutcome is what became of a dead letter.
type writeOutcome int

const (
	written     writeOutcome = iota // on the dead-letter topic, whole or cut
	unwritable                      // refused by the broker even without its value: logged, skipped
	interrupted                     // the context ended first: not finished
)

// write writes l, retrying what may succeed later (the broker down, a leader moving, missing
// permissions: not the letter's fault, so the partition waits, visibly, see the stall monitor). A
// letter the broker refuses for itself (too large, invalid) is never written again as it was:
// the limit is read again and the letter fitted to it if it shrank, else written without its
// value; if that is refused too, it is logged with everything needed to find the original and
// skipped.
func (dw *deadLetterWriter) write(ctx context.Context, l letter, src kafka.Message, onBlocked func(error)) writeOutcome {
	limit := int(dw.limit.Load())
	msg := l.fit(limit)
	valueDropped := false
	wait := 200 * time.Millisecond
	for {
		err := dw.w.WriteMessages(ctx, msg)
		if err == nil {
			return written
		}
		if ctx.Err() != nil {
			return interrupted
		}
		err = firstWriteError(err)
		if !refusedForItself(err) {
			onBlocked(err)
			if !pause.For(ctx, wait) {
				return interrupted
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		log := dw.log.With("partition", src.Partition, "offset", src.Offset, "original_size", len(src.Value),
			"dead_letter_size", RecordBatchSize(msg), "max_message_bytes", limit, "error", err)
		if valueDropped {
			log.Error("the dead-letter topic refuses this letter even without its value: it is skipped; the original stays at its source offset until retention deletes it",
				"source_topic", src.Topic, "original_sha256", header(msg, HeaderOriginalSHA256))
			return unwritable
		}
		used := limit
		dw.refreshLimit(ctx)
		limit = int(dw.limit.Load())
		if limit < used && RecordBatchSize(msg) > limit {
			log.Warn("the dead-letter topic's size limit shrank; fitting the letter to it", "new_max_message_bytes", limit)
			msg = l.fit(limit)
			continue
		}
		log.Warn("the dead-letter topic refused the letter; writing it again without its value")
		valueDropped = true
		msg = l.withoutValue().fit(limit)
	}
}

func (dw *deadLetterWriter) close() error { return dw.w.Close() }

// refusedForItself reports whether the broker refused a record for what it is, so that writing
// the same record again can never succeed.
func refusedForItself(err error) bool {
	for _, e := range []error{kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidRecord,
		kafka.InvalidTimestamp, kafka.UnsupportedForMessageFormat} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// firstWriteError unwraps kafka-go's per-message WriteErrors for a write of one message.
func firstWriteError(err error) error {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				return e
			}
		}
	}
	return err
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
