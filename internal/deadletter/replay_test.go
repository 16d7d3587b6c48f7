package deadletter_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/deadletter"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
)

func letter(key, value, reason string) kafka.Message {
	return kafka.Message{Key: []byte(key), Value: []byte(value), Headers: []kafka.Header{
		{Key: "trace", Value: []byte("t-" + key)},
		{Key: consumer.HeaderReason, Value: []byte(reason)},
		{Key: consumer.HeaderAttempts, Value: []byte("3")},
	}}
}

func TestReplayRepublishesTheSelectedLettersAsTheyWere(t *testing.T) {
	t.Parallel()
	topics := testinfra.Topics(t, 2, "dlq", "events")
	dlq, events := topics[0], topics[1]
	testinfra.Produce(t, dlq,
		letter("s1", `{"signatureId":"s1","type":"COMPLETED"}`, consumer.ReasonRetriesExhausted),
		letter("s2", `{"signatureId":"s2","type":"COMPLETED"}`, "vendor_rejected"),
		letter("s3", `{"signatureId":"s3","type":"COMPLETED"}`, consumer.ReasonRetriesExhausted),
		letter("s4", `not json`, "invalid_json"),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dry, err := deadletter.Replay(ctx, deadletter.Options{Brokers: testinfra.Brokers(t), DLQTopic: dlq,
		TargetTopic: events, Reasons: []string{consumer.ReasonRetriesExhausted}, DryRun: true})
	require.NoError(t, err)
	require.Equal(t, 4, dry.Scanned)
	require.Equal(t, 2, dry.Matched)
	require.Zero(t, dry.Republished)

	rep, err := deadletter.Replay(ctx, deadletter.Options{Brokers: testinfra.Brokers(t), DLQTopic: dlq,
		TargetTopic: events, Reasons: []string{consumer.ReasonRetriesExhausted}})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Republished)
	require.Equal(t, map[string]int{consumer.ReasonRetriesExhausted: 2}, rep.ByReason)

	got := testinfra.ReadAll(t, events, 2, 20*time.Second)
	require.Len(t, got, 2)
	keys := map[string]kafka.Message{}
	for _, m := range got {
		keys[string(m.Key)] = m
	}
	require.Contains(t, keys, "s1")
	require.Contains(t, keys, "s3")
	m := keys["s1"]
	require.JSONEq(t, `{"signatureId":"s1","type":"COMPLETED"}`, string(m.Value))
	var names []string
	for _, h := range m.Headers {
		names = append(names, h.Key)
	}
	require.ElementsMatch(t, []string{"trace", deadletter.HeaderReplayedFrom}, names,
		"producer headers kept, dead-letter annotations dropped")
}

func TestReplayLeavesLettersWhoseValueWasCut(t *testing.T) {
	t.Parallel()
	topics := testinfra.Topics(t, 1, "dlq", "events")
	dlq, events := topics[0], topics[1]
	cut := letter("s2", `{"signatureId":"s2","type":"COMP`, "too_large")
	cut.Headers = append(cut.Headers, kafka.Header{Key: consumer.HeaderTruncated, Value: []byte("value")})
	testinfra.Produce(t, dlq, letter("s1", `{"signatureId":"s1","type":"COMPLETED"}`, "too_large"), cut)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	rep, err := deadletter.Replay(ctx, deadletter.Options{Brokers: testinfra.Brokers(t), DLQTopic: dlq, TargetTopic: events})
	require.NoError(t, err, "a cut letter last on its partition still ends the replay")
	require.Equal(t, 2, rep.Matched)
	require.Equal(t, 1, rep.Truncated)
	require.Equal(t, 1, rep.Republished)
	got := testinfra.ReadAll(t, events, 2, 3*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, "s1", string(got[0].Key))
}

func TestReplayOfAnEmptyDeadLetterTopicEndsAtOnce(t *testing.T) {
	t.Parallel()
	topics := testinfra.Topics(t, 1, "dlq", "events")
	rep, err := deadletter.Replay(context.Background(), deadletter.Options{Brokers: testinfra.Brokers(t),
		DLQTopic: topics[0], TargetTopic: topics[1]})
	require.NoError(t, err)
	require.Zero(t, rep.Scanned)
}

func TestReplaySendsAStartedEventBackToTheStartedTopic(t *testing.T) {
	t.Parallel()
	topics := testinfra.Topics(t, 1, "dlq", "events", "started")
	dlq, events, started := topics[0], topics[1], topics[2]
	fromStarted := letter("s9", `{"signatureId":"s9"}`, "invalid_field")
	fromStarted.Headers = append(fromStarted.Headers, kafka.Header{Key: consumer.HeaderSourceTopic, Value: []byte(started)})
	fromEvents := letter("s8", `{"signatureId":"s8","type":"COMPLETED"}`, "invalid_field")
	fromEvents.Headers = append(fromEvents.Headers, kafka.Header{Key: consumer.HeaderSourceTopic, Value: []byte(events)})
	testinfra.Produce(t, dlq, fromStarted, fromEvents)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	rep, err := deadletter.Replay(ctx, deadletter.Options{Brokers: testinfra.Brokers(t), DLQTopic: dlq,
		TargetTopic: events, SourceRoutes: map[string]string{started: started}})
	require.NoError(t, err)
	require.Equal(t, 2, rep.Republished)
	got := testinfra.ReadAll(t, started, 1, 20*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, "s9", string(got[0].Key))
	got = testinfra.ReadAll(t, events, 1, 20*time.Second)
	require.Len(t, got, 1)
	require.Equal(t, "s8", string(got[0].Key))
}
