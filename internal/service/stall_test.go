package service_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/harness/advancesim"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/topic"
)

// TestAnEventAtTheBrokersLimitIsDeadLetteredCutAndTheEventsAfterItAreStored is issue 9's stall
// through the whole service: the events and dead-letter topics accept 16 KiB (a topic-level
// max.message.bytes, standing for the broker's message.max.bytes), an event of exactly that size is
// over DOPPEL_MAX_EVENT_BYTES, and its dead letter with the added headers would be over the limit.
func TestAnEventAtTheBrokersLimitIsDeadLetteredCutAndTheEventsAfterItAreStored(t *testing.T) {
	t.Parallel()
	const limit = 16384
	f := setup(t, advancesim.Config{})
	f.cfg.TopicEvents, f.cfg.TopicDLQ = testinfra.UniqueName("idv.completed"), testinfra.UniqueName("idv.completed.dlq")
	f.cfg.TopicPartitions = 1 // one partition: the big event blocks every later one if it stalls
	f.cfg.MaxEventBytes = 1024
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	configs := map[string]string{"max.message.bytes": strconv.Itoa(limit)}
	_, err := topic.Ensure(ctx, f.cfg.KafkaBrokers,
		topic.Spec{Name: f.cfg.TopicEvents, Partitions: 1, ReplicationFactor: 1, Configs: configs},
		topic.Spec{Name: f.cfg.TopicDLQ, Partitions: 1, ReplicationFactor: 1, Configs: configs})
	require.NoError(t, err)

	big := kafka.Message{Key: []byte("big-signature")}
	for pad := limit; consumer.RecordBatchSize(big) != limit; pad-- {
		big.Value = []byte(`{"signatureId":"big-signature","type":"COMPLETED","pad":"` + strings.Repeat("x", pad) + `"}`)
	}
	require.Equal(t, limit, consumer.RecordBatchSize(big), "the event is exactly at the topic's limit")
	testinfra.Produce(t, f.cfg.TopicEvents, big)
	sigs, msgs := ring(t, f, 2, "after-big")
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)

	stop := f.start(t)
	defer stop()
	f.waitForChecks(t, len(sigs), 30*time.Second)
	require.Equal(t, []string{"after-big-user-0~after-big-user-1"}, f.links(t))
	testinfra.Eventually(t, 30*time.Second, func() bool {
		lag, err := consumer.Lag(context.Background(), f.cfg.KafkaBrokers, f.cfg.KafkaGroupID, f.cfg.TopicEvents)
		return err == nil && lag[0] == 0
	}, "the offset is committed past the big event and the ones after it")

	letters := testinfra.ReadAll(t, f.cfg.TopicDLQ, 1, 20*time.Second)
	require.Len(t, letters, 1)
	l := letters[0]
	require.Equal(t, "too_large", header(l, consumer.HeaderReason))
	require.Equal(t, "value", header(l, consumer.HeaderTruncated))
	require.Equal(t, big.Value[:len(l.Value)], l.Value)
	require.Equal(t, strconv.Itoa(len(big.Value)), header(l, consumer.HeaderOriginalSize))
	sum := sha256.Sum256(big.Value)
	require.Equal(t, hex.EncodeToString(sum[:]), header(l, consumer.HeaderOriginalSHA256))
}

func TestAStalledPartitionMakesTheAdminReadyzNotReadyWithTheReasonAndLeavesThePublicOneReady(t *testing.T) {
	t.Parallel()
	f := setup(t, advancesim.Config{})
	f.cfg.BreakerOpenFor = 200 * time.Millisecond
	f.cfg.StallAfter = 500 * time.Millisecond
	f.cfg.HTTPAddr, f.cfg.AdminAddr = testinfra.FreeAddr(t), testinfra.FreeAddr(t)
	require.NoError(t, f.sim.SetFaults(advancesim.Faults{ForceCode: "INSUFFICIENT_BALANCE"}))
	sigs, msgs := ring(t, f, 3, "stalled")
	stop := f.start(t)
	defer stop()
	testinfra.Produce(t, f.cfg.TopicEvents, msgs...)

	testinfra.Eventually(t, 20*time.Second, func() bool {
		status, body := readyz(t, f.cfg.AdminAddr) // the reasons are on the admin listener
		checks, _ := body["checks"].(map[string]any)
		reason, _ := checks["consumer"].(string)
		return status == http.StatusServiceUnavailable && strings.Contains(reason, "has made no progress") &&
			strings.Contains(reason, "vendor_")
	}, "readyz names the stalled partition and why it waits")
	// A stall is the pipeline's trouble, not the API's: the public /readyz stays ready, so a load
	// balancer keeps the API and the callback endpoint of every instance that picks the partition up.
	status, body := readyz(t, f.cfg.HTTPAddr)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]any{"status": "ready"}, body)

	require.NoError(t, f.sim.SetFaults(advancesim.Faults{}))
	f.waitForChecks(t, len(sigs), 60*time.Second)
	testinfra.Eventually(t, 20*time.Second, func() bool {
		status, body := readyz(t, f.cfg.AdminAddr)
		checks, _ := body["checks"].(map[string]any)
		return status == http.StatusOK && checks["consumer"] == "ok"
	}, "ready again once the partitions commit")
}
