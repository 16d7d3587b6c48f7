package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

// hostileValues are what a careless or hostile producer puts in a field or header: each breaks the
// identifier rule (duplicate.Invisible, the length bound, UTF-8).
var hostileValues = []struct{ name, value string }{
	{"NUL", "a\x00b"},
	{"C0 escape", "a\x1b[31mb"},
	{"C1 control", "a\u0085b"},
	{"bidi override", "admin\u202egnp.exe"},
	{"zero-width space", "ad\u200bmin"},
	{"10,000 characters", strings.Repeat("x", 10_000)},
	{"invalid UTF-8", "a\xffb"},
}

// hostileMessage returns an event whose field (or, for "header region", Kafka header) holds value,
// with the reason the decoder must give it. The body is built by hand so that invalid UTF-8 reaches
// the broker as the bytes a producer sent.
func hostileMessage(sig, field, value string) (kafka.Message, string) {
	fields := map[string]string{"signatureId": sig, "type": "COMPLETED", "userId": "u-" + sig}
	reason := duplicate.ReasonInvalidField
	var headers []kafka.Header
	switch field {
	case "header region":
		headers = []kafka.Header{{Key: "region", Value: []byte(value)}}
		reason = duplicate.ReasonInvalidHeader
	case "signatureId":
		fields[field] = value
		reason = duplicate.ReasonInvalidSignatureID
	default:
		fields[field] = value
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for k, v := range fields {
		if !first {
			b.WriteString(",")
		}
		first = false
		key, _ := json.Marshal(k)
		b.Write(key)
		b.WriteString(":")
		b.WriteString(jsonString(v))
	}
	b.WriteString("}")
	if field != "header region" && strings.Contains(value, "\xff") {
		reason = duplicate.ReasonInvalidUTF8
	}
	return kafka.Message{Key: []byte(sig), Value: []byte(b.String()), Headers: headers}, reason
}

// jsonString quotes s as JSON would, except that invalid UTF-8 bytes are written as they are
// (encoding/json would replace them by U+FFFD, which is not what a hostile producer sends).
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// No message can stop a partition: each hostile value of each field and header, followed by five
// good events on the same partition, is dead-lettered with a reason and the field it names, and
// the good events behind it are stored and their offsets committed. Before, a NUL in the region
// header made the failure record itself unstorable, which read as "database down": the partition
// waited for ever.
func TestNoHostileValueInAnyFieldOrHeaderStopsItsPartition(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	f.cfg.TopicEvents = testinfra.Topics(t, 1, "idv.completed.poison")[0]
	f.cfg.TopicPartitions = 1
	stop := f.start(t)
	defer stop()

	fields := []string{"signatureId", "type", "userId", "eventId", "region", "header region"}
	type want struct{ reason, field string }
	wants := map[string]want{} // by the dead letter's offset in the events topic
	var msgs []kafka.Message
	var good []string
	n := 0
	for _, field := range fields {
		for _, hv := range hostileValues {
			n++
			sig := fmt.Sprintf("bad-%d", n)
			m, reason := hostileMessage(sig, field, hv.value)
			wants[fmt.Sprint(len(msgs))] = want{reason, field}
			msgs = append(msgs, m)
			for i := range 5 {
				g := fmt.Sprintf("good-%d-%d", n, i)
				good = append(good, g)
				msgs = append(msgs, event(g, "SUBMIT_COMPLETED", "u-"+g))
			}
		}
	}
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)

	letters := testinfra.ReadAll(t, f.cfg.TopicDLQ, len(wants), 120*time.Second)
	require.Len(t, letters, len(wants))
	for _, l := range letters {
		w, ok := wants[header(l, consumer.HeaderSourceOffset)]
		require.True(t, ok, "a dead letter for offset %s, which held a good event", header(l, consumer.HeaderSourceOffset))
		require.Equal(t, w.reason, header(l, consumer.HeaderReason), "%s: %s", w.field, header(l, consumer.HeaderError))
		if w.reason != duplicate.ReasonInvalidUTF8 {
			require.Contains(t, header(l, consumer.HeaderError), w.field, "the error names the field")
		}
	}
	outcomes := map[string]string{}
	testinfra.Eventually(t, 60*time.Second, func() bool {
		outcomes = f.outcomes(t)
		for _, g := range good {
			if outcomes[g] != string(duplicate.OutcomeSkipped) {
				return false
			}
		}
		return true
	}, "every good event stored")
	// Committed: the group's offset reaches the end of the partition.
	testinfra.Eventually(t, 60*time.Second, func() bool {
		return committedOffset(t, f.cfg.KafkaBrokers, f.cfg.KafkaGroupID, f.cfg.TopicEvents) == int64(len(msgs))
	}, "every offset committed")
	// No failure record holds a hostile byte: PostgreSQL could not have stored a NUL anyway.
	var stored int
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM idv_checks WHERE signature_id LIKE 'bad-%' AND outcome = 'failed'`).Scan(&stored))
	require.Positive(t, stored, "the failures with a usable signatureId are recorded against it")
}

// committedOffset is the consumer group's committed offset of partition 0 of topicName (-1: none).
func committedOffset(t *testing.T, brokers []string, group, topicName string) int64 {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: group, Topics: map[string][]int{topicName: {0}}})
	require.NoError(t, err)
	for _, p := range resp.Topics[topicName] {
		return p.CommittedOffset
	}
	return -1
}
