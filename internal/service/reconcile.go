package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/facesearch"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/reconcile"
	"github.com/doppelhq/doppel/internal/relay"
)

// startedGroupSuffix is appended to DOPPEL_KAFKA_GROUP_ID for the consumer group of the started
// topic: a group of its own, so a rebalance of one topic never stalls the other.
const startedGroupSuffix = ".started"

// reconciliation is the started-topic consumer, the poller and the enroller of one instance.
type reconciliation struct {
	started  *consumer.Consumer
	poller   *reconcile.Poller
	enroller *reconcile.Enroller
}

// newReconciliation builds reconciliation on the shared store and vendor. Polling gets a detector
// of its own on a vendor view with its own share of the rate (cfg.PollQPS) under the shared circuit
// breaker, so it never starves the main path and stops when the vendor is unusable.
func newReconciliation(cfg config.Config, store *postgres.Store, batcher duplicate.Store, vendor *facesearch.Vendor,
	rel *relay.Relay, m *metrics.Metrics, log *slog.Logger) (*reconciliation, error) {
	pollVendor := vendor.WithRate(cfg.PollQPS())
	detector := duplicate.NewDetector(pollVendor, batcher, nil)
	if cfg.EnrollFailed {
		detector.MarkFailedAttempts(store)
	}
	rm := m.Reconcile()
	owner, _ := os.Hostname()
	owner = fmt.Sprintf("%s/%d/%s", owner, os.Getpid(), uuid.NewString()[:8])
	r := &reconciliation{
		poller: reconcile.NewPoller(reconcile.Config{
			Owner:      owner,
			Interval:   cfg.ReconcileInterval,
			GiveUp:     cfg.ReconcileGiveUp,
			AlertRatio: cfg.ReconcileAlertRatio,
			Logger:     log.With("component", "reconcile"),
			OnPolled:   rm.Polled,
			OnCounts:   func(c reconcile.Counts) { rm.SetPending(c.Pending, c.RecoveredShare()) },
			OnSettled:  func(s reconcile.Status, n int) { rm.Settled(string(s), n) },
			OnAlerts:   rel.Notify,
		}, store, pollVendor, detector, reconcileAlerts{store: store, relay: rel}, uuid.NewString),
	}
	if cfg.EnrollFailed {
		r.enroller = reconcile.NewEnroller(store, pollVendor, log.With("component", "enroll"), rm.Enrolled)
	}
	// One insert per event: a few workers keep up.
	started, err := consumer.New(consumerConfig(cfg, cfg.KafkaGroupID+startedGroupSuffix, cfg.TopicStarted,
		min(cfg.Workers, 16), log.With("component", "started-consumer"), m, startedRouteKey), startedHandler(store, cfg))
	if err != nil {
		return nil, fmt.Errorf("started-topic consumer: %w", err)
	}
	r.started = started
	return r, nil
}

// startedHandler stores each started verification; a malformed event is dead-lettered with its
// reason (Classify), a database failure waits.
func startedHandler(store *postgres.Store, cfg config.Config) consumer.Handler {
	return func(ctx context.Context, msg kafka.Message) error {
		ev, err := duplicate.DecodeStarted(msg.Value, cfg.MaxEventBytes)
		if err != nil {
			return err
		}
		src := duplicate.Source{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}
		if err := store.RecordStarted(ctx, ev, cfg.ReconcileAfter, src); err != nil {
			return fmt.Errorf("%w: %w", duplicate.ErrStore, err)
		}
		return nil
	}
}

// run runs the poller (and enroller) rounds until ctx ends; the started consumer runs as a part
// of its own.
func (r *reconciliation) run(ctx context.Context) error {
	if r.enroller == nil {
		return r.poller.Run(ctx)
	}
	return r.poller.RunWith(ctx, r.enroller.Round)
}

// reconcileAlerts raises callbacks_missing alerts in the store's outbox and publishes them through
// the relay's writer.
type reconcileAlerts struct {
	store *postgres.Store
	relay *relay.Relay
}

func (a reconcileAlerts) RaiseCallbacksMissing(ctx context.Context, al *reconcile.CallbacksMissing) (bool, error) {
	return a.store.RaiseCallbacksMissing(ctx, al)
}

func (a reconcileAlerts) PublishPending(ctx context.Context) error {
	err := a.store.PublishReconcileAlerts(ctx, a.relay.PublishOne)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// startedRouteKey serialises started events per signatureId: the message key, which producers set
// to the signatureId, or the signatureId in the value if a producer left the key empty.
func startedRouteKey(msg kafka.Message) []byte {
	if len(msg.Key) > 0 {
		return msg.Key
	}
	var probe struct {
		SignatureID string `json:"signatureId"`
	}
	if json.Unmarshal(msg.Value, &probe) == nil && probe.SignatureID != "" {
		return []byte(probe.SignatureID)
	}
	return msg.Value
}
