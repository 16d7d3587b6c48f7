package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/facesearch"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/reconcile"
	"github.com/doppelhq/doppel/internal/region"
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

// newReconciliation builds reconciliation on the shared store and regions. Polling calls get-result
// on a view of every region with its own share of that region's rate (cfg.PollQPSOf) under the
// region's circuit breaker, pause and budget, so it never starves the main path, stops in a region
// whose vendor is unusable and goes on in the others. A verification it finds final goes to
// events, the events topic, where the main path searches it (see reconcile.Events).
func newReconciliation(cfg config.Config, store *postgres.Store, regions *region.Registry, events reconcile.Events,
	rel *relay.Relay, m *metrics.Metrics, log *slog.Logger) (*reconciliation, error) {
	polling, err := newPollRegions(cfg, regions)
	if err != nil {
		return nil, err
	}
	rm := m.Reconcile()
	owner, _ := os.Hostname()
	owner = fmt.Sprintf("%s/%d/%s", owner, os.Getpid(), uuid.NewString()[:8])
	r := &reconciliation{
		poller: reconcile.NewPoller(reconcile.Config{
			Owner:      owner,
			Interval:   cfg.ReconcileInterval,
			GiveUp:     cfg.ReconcileGiveUp,
			Retention:  cfg.ReconcileRetention,
			AlertRatio: cfg.ReconcileAlertRatio,
			Logger:     log.With("component", "reconcile"),
			OnPolled:   rm.Polled,
			OnCounts:   func(c reconcile.Counts) { rm.SetPending(c.Pending, c.RecoveredShare()) },
			OnSettled:  func(s reconcile.Status, n int) { rm.Settled(string(s), n) },
		}, store, polling, events, reconcileAlerts{store: store, relay: rel}, uuid.NewString),
	}
	if cfg.EnrollFailed {
		r.enroller = reconcile.NewEnroller(store, polling, log.With("component", "enroll"), rm.Enrolled)
	}
	// One insert per event: a few workers keep up.
	started, err := consumer.New(consumerConfig(cfg, cfg.KafkaGroupID+startedGroupSuffix, cfg.TopicStarted,
		min(cfg.Workers, 16), log.With("component", "started-consumer"), m, startedRoute), startedHandler(store, cfg))
	if err != nil {
		return nil, fmt.Errorf("started-topic consumer: %w", err)
	}
	r.started = started
	return r, nil
}

// pollRegions is every region as polling sees it: the region's account with polling's own share
// of its rate (sharing its client, circuit breaker and SERVICE_BUSY pause) and its budget. It is
// reconcile.Regions and reconcile.EnrollRegions.
type pollRegions struct {
	registry *region.Registry
}

func newPollRegions(cfg config.Config, regions *region.Registry) (pollRegions, error) {
	var views []*region.Region
	for _, rc := range cfg.Regions() {
		r, ok := regions.Lookup(rc.Name)
		if !ok {
			return pollRegions{}, fmt.Errorf("region %s is configured but has no vendor", rc.Name)
		}
		account, ok := r.Account().(*facesearch.Vendor)
		if !ok {
			return pollRegions{}, fmt.Errorf("region %s: polling needs a vendor account, got %T", rc.Name, r.Account())
		}
		views = append(views, region.New(rc.Name, account.WithShare(cfg.PollQPSOf(rc.QPS)), r.Budget()))
	}
	registry, err := region.NewRegistry(regions.Default().Name, views...)
	if err != nil {
		return pollRegions{}, err
	}
	return pollRegions{registry: registry}, nil
}

func (p pollRegions) lookup(name string) (*region.Region, error) {
	if name == "" {
		return p.registry.Default(), nil
	}
	if r, ok := p.registry.Lookup(name); ok {
		return r, nil
	}
	return nil, &region.UnknownError{Region: name}
}

func (p pollRegions) Resolve(name string) (string, reconcile.Vendor, error) {
	r, err := p.lookup(name)
	if err != nil {
		return "", nil, err
	}
	return r.Name, r, nil
}

func (p pollRegions) EnrollVendor(name string) (reconcile.EnrollVendor, error) {
	r, err := p.lookup(name)
	if err != nil {
		return nil, err
	}
	return r.Account().(*facesearch.Vendor), nil
}

func (p pollRegions) Paused() []string {
	var paused []string
	for _, name := range p.registry.Names() {
		if r, _ := p.registry.Lookup(name); !r.Usable() {
			paused = append(paused, name)
			if r == p.registry.Default() {
				paused = append(paused, "")
			}
		}
	}
	return paused
}

// startedHandler stores each started verification; a malformed event is dead-lettered with its
// reason (Classify), a database failure waits.
func startedHandler(store *postgres.Store, cfg config.Config) consumer.Handler {
	return func(ctx context.Context, msg consumer.Message) error {
		ev, err := duplicate.DecodeStarted(msg.Value, cfg.MaxEventBytes)
		if err != nil {
			return err
		}
		src := duplicate.Source{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}
		if err := store.RecordStarted(ctx, ev, cfg.ReconcileAfter, src); err != nil {
			return duplicate.StoreFailure("record started verification", err)
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

// startedRoute serialises started events per signatureId: the signatureId in the value, never the
// message key (any producer sets the key; a key that is not the signatureId would let two copies of
// one verification run at once), or the value itself when it holds none. The handler decodes the
// event itself: a started event is small and rare.
func startedRoute(msg kafka.Message) ([]byte, any) {
	var probe struct {
		SignatureID string `json:"signatureId"`
	}
	if json.Unmarshal(msg.Value, &probe) == nil && probe.SignatureID != "" {
		return []byte(strings.TrimSpace(probe.SignatureID)), nil
	}
	return msg.Value, nil
}
