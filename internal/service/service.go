// Package service wires Doppel's parts into the running pipeline: PostgreSQL, the vendor client, the
// detector, the Kafka consumer, the outbox relay and the HTTP server. cmd/doppel calls Run; the
// integration tests call it too, so they exercise exactly what production runs.
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/readiness"
	"github.com/doppelhq/doppel/internal/reconcile"
	"github.com/doppelhq/doppel/internal/region"
	"github.com/doppelhq/doppel/internal/relay"
	"github.com/doppelhq/doppel/internal/topic"
)

// Run starts the pipeline and the HTTP server and blocks until ctx is cancelled or a part fails.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, int32(cfg.DatabaseMaxConns))
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.MigrateOnStart {
		if err := postgres.MigrateUp(cfg.DatabaseURL); err != nil {
			return err
		}
	}
	multiRegion := len(cfg.RegionNames()) > 1
	if cfg.CreateTopics {
		specs := []topic.Spec{
			{Name: cfg.TopicEvents, Partitions: cfg.TopicPartitions, ReplicationFactor: -1},
			{Name: cfg.TopicAlerts, Partitions: cfg.TopicPartitions, ReplicationFactor: -1},
			{Name: cfg.TopicDLQ, Partitions: 1, ReplicationFactor: -1},
			{Name: cfg.TopicStarted, Partitions: cfg.TopicPartitions, ReplicationFactor: -1},
		}
		if multiRegion {
			for _, name := range cfg.RegionNames() {
				specs = append(specs, topic.Spec{Name: ParkingTopic(cfg, name), Partitions: cfg.TopicPartitions, ReplicationFactor: -1})
			}
		}
		if err := topic.Ensure(ctx, cfg.KafkaBrokers, specs...); err != nil {
			return fmt.Errorf("ensure topics on %v: %w", cfg.KafkaBrokers, err)
		}
	}

	m := metrics.New()
	store := NewStore(pool, cfg)
	vendor, err := NewRegions(ctx, cfg, m, store, log)
	if err != nil {
		return err
	}
	// Checks from all workers share transactions (group commit): see postgres.Batcher. A batch
	// takes whatever is queued (one check when idle, up to DOPPEL_STORE_BATCH_SIZE under load). One
	// transaction at a time (DOPPEL_STORE_FLUSHERS=1) makes the batches larger and the WAL flushes
	// fewer; the benchmark measured about the same throughput with two, for 15-30% more
	// PostgreSQL CPU per event.
	batcher := postgres.NewBatcher(store, cfg.StoreBatchSize, cfg.StoreFlushers)
	detector := duplicate.NewDetector(vendor, batcher, nil)
	if cfg.EnrollFailed {
		detector.MarkFailedAttempts(store)
	}

	rel := relay.New(relay.Config{
		Brokers:     cfg.KafkaBrokers,
		Topic:       cfg.TopicAlerts,
		BatchSize:   cfg.RelayBatchSize,
		Interval:    cfg.RelayInterval,
		Logger:      log.With("component", "relay"),
		OnPublished: m.AlertsPublished,
	}, store)
	m.SetOutboxSource(store.OutboxBacklog)
	m.SetLagSource(func(ctx context.Context) (map[int]int64, error) {
		return consumer.Lag(ctx, cfg.KafkaBrokers, cfg.KafkaGroupID, cfg.TopicEvents)
	})

	p := &pipeline{cfg: cfg, detector: detector, regions: vendor, relay: rel, metrics: m, log: log.With("component", "pipeline")}
	parts := []named{{"relay", rel.Run}, {"budgets", func(ctx context.Context) error {
		return refreshBudgets(ctx, vendor, log.With("component", "budget"))
	}}}
	if multiRegion {
		p.parking = newParking(cfg, vendor, m, log.With("component", "parking"))
		defer p.parking.close()
		parts = append(parts, named{"parking watch", p.parking.watch})
		parked := &pipeline{cfg: cfg, detector: detector, regions: vendor, relay: rel, metrics: m, log: p.log, waitForRegion: true}
		for _, name := range cfg.RegionNames() {
			pc, err := consumer.New(parkedConsumerConfig(cfg, name, log, m), parked.handle)
			if err != nil {
				return err
			}
			parts = append(parts, named{"parked consumer " + name, pc.Run})
		}
	}
	cons, err := consumer.New(consumerConfig(cfg, cfg.KafkaGroupID, cfg.TopicEvents, cfg.Workers,
		log.With("component", "consumer"), m), p.handle)

	if err != nil {
		return err
	}

	recon, err := newReconciliation(cfg, store, batcher, defaultAccount(vendor), rel, m, log)
	if err != nil {
		return err
	}
	parts = append(parts, named{"consumer", cons.Run})

	// Vendor callbacks go to the events topic through a writer of their own, acknowledged by every
	// in-sync replica before the callback is answered 200.
	events := topic.NewPublisher(cfg.KafkaBrokers, cfg.TopicEvents, "callback")
	defer events.Close()
	keys := cfg.Keys()
	if len(keys) == 0 {
		log.Warn("no API keys configured: the query, review and replay API answers 401; set DOPPEL_API_KEYS")
	}
	if cfg.CallbackToken == "" && cfg.CallbackHMACSecret == "" {
		log.Warn("vendor callbacks are off: set DOPPEL_CALLBACK_TOKEN to accept them")
	}
	// Readiness is computed in the background: a probe reads the last answer and never opens a
	// connection of its own. Each part of the pipeline that can stop progress adds a named check.
	checks := append([]readiness.Check{
		{Name: "database", Check: func(ctx context.Context) error { return pool.Ping(ctx) }},
		{Name: "kafka", Check: func(ctx context.Context) error { return pingBroker(ctx, cfg.KafkaBrokers) }},
	}, regionReadiness(vendor)...)
	checks = append(checks, readiness.Check{Name: "consumer", Check: cons.CheckProgress})
	ready := readiness.New(readiness.Config{Interval: readinessInterval, Logger: log.With("component", "readiness")}, checks...)
	apiKeys := APIKeys(keys)
	api := httpapi.New(httpapi.Config{
		Logger:                log.With("component", "http"),
		Readiness:             ready,
		Store:                 store,
		Replayer:              duplicate.NewReplayer(vendor, store, nil),
		OnAlerts:              rel.Notify,
		Events:                events,
		CallbackToken:         cfg.CallbackToken,
		CallbackHMACSecret:    cfg.CallbackHMACSecret,
		CallbackTimeout:       cfg.CallbackTimeout,
		EventOptions:          duplicate.DecodeOptions{MaxBytes: cfg.MaxEventBytes, RejectUnknownTypes: cfg.RejectUnknownTypes},
		APIKeys:               apiKeys,
		ReplayMaxChecks:       cfg.ReplayMaxChecks,
		AuthFailuresPerMinute: cfg.AuthFailuresPerMinute,
		OnAuthFailure:         m.AuthFailure,
		OnRequest:             m.HTTPRequest,
		Regions:               vendor.Names(),
		Reconciliation: func(ctx context.Context) (reconcile.Counts, error) {
			return store.Counts(ctx, time.Now().Add(-reconcile.AlertWindow))
		},
		ReconcileAlertRatio: cfg.ReconcileAlertRatio,
	})
	reviewConsole, err := console.New(console.Config{
		Store:      store,
		APIKeys:    apiKeys,
		SignIn:     api.SignInGuard(),
		SessionTTL: cfg.ConsoleSessionTTL,
		Region:     consoleRegion(cfg),
		Logger:     log.With("component", "console"),
		DeadLetters: func(ctx context.Context) (int64, error) {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			return topic.Messages(ctx, cfg.KafkaBrokers, cfg.TopicDLQ)
		},
	})
	if err != nil {
		return err
	}
	api.MountConsole(reviewConsole)
	admin := httpapi.NewAdmin(httpapi.AdminConfig{Readiness: ready, Metrics: m.Handler(),
		Logger: log.With("component", "admin")})

	log.Info("doppel starting", "events_topic", cfg.TopicEvents, "started_topic", cfg.TopicStarted, "alerts_topic", cfg.TopicAlerts,
		"dlq_topic", cfg.TopicDLQ, "group_id", cfg.KafkaGroupID, "workers", cfg.Workers, "http_addr", cfg.HTTPAddr,
		"admin_addr", cfg.AdminAddr, "regions", strings.Join(vendor.Names(), ","), "default_region", vendor.Default().Name)
	parts = append(parts,
		named{"readiness", ready.Run},
		named{"started-consumer", recon.started.Run},
		named{"reconcile", recon.run},
		named{"http", func(ctx context.Context) error { return api.Serve(ctx, cfg.HTTPAddr, cfg.ShutdownTimeout/2) }},
		named{"admin", func(ctx context.Context) error { return admin.Serve(ctx, cfg.AdminAddr, cfg.ShutdownTimeout/2) }},
	)
	return runAll(ctx, log, parts...)
}

// consumerConfig is what both consumers (events and started) share: the dead-letter topic, retries,
// the classification of errors and the stall bound.
func consumerConfig(cfg config.Config, groupID, topic string, workers int, log *slog.Logger, m *metrics.Metrics) consumer.Config {
	return consumer.Config{
		Brokers:        cfg.KafkaBrokers,
		GroupID:        groupID,
		Topic:          topic,
		DLQTopic:       cfg.TopicDLQ,
		Workers:        workers,
		CommitInterval: cfg.CommitInterval,
		Retry: consumer.RetryPolicy{
			MaxAttempts:     cfg.RetryMaxAttempts,
			InitialInterval: cfg.RetryInitialInterval,
			MaxInterval:     cfg.RetryMaxInterval,
			MaxElapsed:      cfg.RetryMaxElapsed,
		},
		Classify:      Classify,
		RouteKey:      routeKey,
		ShutdownGrace: cfg.ShutdownTimeout / 2,
		StallAfter:    cfg.StallAfter,
		Logger:        log,
		Observer:      m,
	}
}

// readinessInterval is how often the readiness checks run: often enough for a load balancer to
// see a change within seconds, rarely enough that its pings cost nothing.
const readinessInterval = 2 * time.Second

// NewStore returns the PostgreSQL store with the configured alert policy.
func NewStore(pool *pgxpool.Pool, cfg config.Config) *postgres.Store {
	return postgres.NewStore(pool, postgres.WithAlertPolicy(duplicate.AlertPolicy{
		HighSeverityRingSize: cfg.RingHighSeveritySize}))
}

// APIKeys converts the configured keys for the HTTP API.
func APIKeys(keys []config.APIKey) []httpapi.APIKey {
	out := make([]httpapi.APIKey, len(keys))
	for i, k := range keys {
		out[i] = httpapi.APIKey{Name: k.Name, Scopes: k.Scopes, SHA256: k.SHA256}
	}
	return out
}

type named struct {
	name string
	run  func(context.Context) error
}

// runAll runs every part until ctx ends or one part returns; then it cancels the rest and waits.
func runAll(ctx context.Context, log *slog.Logger, parts ...named) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.run(ctx)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", p.name, err)
				log.Error("part stopped", "part", p.name, "error", err)
			}
			cancel() // one part ending ends the service: a half-running pipeline would mislead
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pipeline is the consumer's handler: decode, detect, nudge the relay.
type pipeline struct {
	cfg      config.Config
	detector *duplicate.Detector
	regions  *region.Registry
	// parking moves events of regions that cannot take them to their parking topics; nil with one
	// region (its events wait in place, as its trouble stops everything anyway) and in the parking
	// topics' own consumers.
	parking *parking
	// waitForRegion makes the handler wait, before any work, while its region cannot take calls:
	// set in the parking topics' consumers, whose events wait for nothing else.
	waitForRegion bool
	relay         *relay.Relay
	metrics       *metrics.Metrics
	log           *slog.Logger
}

func (p *pipeline) handle(ctx context.Context, msg kafka.Message) error {
	p.metrics.EventConsumed()
	src := sourceOf(msg)
	ev, reg, err := p.decode(msg)
	if err != nil {
		var de *duplicate.DecodeError
		if errors.As(err, &de) && de.SignatureID != "" {
			if rerr := p.detector.RecordFailure(ctx, de.SignatureID, ev.Region, de.Reason+": "+de.Detail, src); rerr != nil {
				return rerr
			}
			p.metrics.Outcome(string(duplicate.OutcomeFailed))
		}
		return err
	}
	if p.waitForRegion {
		if err := reg.WaitUsable(ctx); err != nil {
			return err
		}
	}
	if p.parking != nil {
		if !p.parking.enter(reg) {
			return p.parking.park(ctx, msg, reg, "region cannot take events now")
		}
		defer p.parking.leave(reg)
	}
	res, err := p.detector.Handle(ctx, ev, src)
	if err != nil && p.parking != nil && regionTrouble(err) {
		return p.parking.park(ctx, msg, reg, err.Error())
	}
	if err != nil {
		if res.Outcome == duplicate.OutcomeFailed { // a permanent failure, recorded against the check
			p.metrics.Outcome(string(duplicate.OutcomeFailed))
		}
		return err
	}
	log := p.log.With("signature_id", ev.SignatureID, "partition", msg.Partition, "offset", msg.Offset)
	if res.AlreadyStored {
		p.metrics.Outcome("already_stored")
		log.Debug("already stored, not searched again", "outcome", res.Outcome)
		return nil
	}
	p.metrics.Outcome(string(res.Outcome))
	log.Info("check stored", "outcome", res.Outcome, "vendor_transaction_id", res.VendorTransactionID,
		"new_links", len(res.Saved.NewLinks))
	if res.Saved.Alert != nil {
		p.relay.Notify()
	}
	return nil
}

// decode parses the event and resolves its region: the event's region field, else the Kafka header
// region, else the default region. An unconfigured region is a *duplicate.DecodeError with reason
// unknown_region (the returned event then carries the region as given, to record the failure).
func (p *pipeline) decode(msg kafka.Message) (duplicate.Event, *region.Region, error) {
	ev, err := duplicate.DecodeEvent(msg.Value, duplicate.DecodeOptions{
		MaxBytes: p.cfg.MaxEventBytes, RejectUnknownTypes: p.cfg.RejectUnknownTypes})
	if err != nil {
		// The failure is recorded in the default region: an unusable event's region is unknown.
		ev.Region = p.regions.Default().Name
		return ev, nil, err
	}
	reg, err := p.regions.Resolve(ev.Region, msg.Headers)
	if err != nil {
		var unknown *region.UnknownError
		errors.As(err, &unknown)
		ev.Region = strings.ToValidUTF8(clip.Bytes(unknown.Region, duplicate.MaxRegionLen), "")
		return ev, nil, &duplicate.DecodeError{Reason: duplicate.ReasonUnknownRegion, Field: "region", Detail: err.Error(), SignatureID: ev.SignatureID}
	}
	ev.Region = reg.Name
	return ev, reg, nil
}

// regionTrouble reports whether err says the region's vendor cannot take events now (down, busy,
// account unusable, budget spent), as opposed to a problem of the event or of our database.
func regionTrouble(err error) bool {
	switch duplicate.KindOf(err) {
	case duplicate.FailureTransient, duplicate.FailureRateLimited, duplicate.FailureAccount:
		return true
	}
	return false
}

// ClassifyParked maps a handler error of a parking topic's consumer: its events wait for their
// region, so every vendor failure waits, never spending a retry budget that ends in a dead letter.
func ClassifyParked(err error) consumer.Classification {
	d := Classify(err)
	if d.Action == consumer.Retry {
		d.Action = consumer.Wait
	}
	return d
}

// Classify maps a handler error to what the consumer does with the message, from the kind and
// reason the error carries (see duplicate.Failure): the one place a failure becomes an action.
func Classify(err error) consumer.Classification {
	d := consumer.Classification{Reason: duplicate.ReasonOf(err)}
	switch duplicate.KindOf(err) {
	case duplicate.FailurePermanent:
		d.Action = consumer.DeadLetter
	case duplicate.FailureTransient:
		d.Action = consumer.Retry
	default: // rate limited, account, store: not the message's fault
		d.Action = consumer.Wait
	}
	return d
}

// routeKey serialises work per signatureId, so one signatureId is never searched twice at once: the
// message key, which producers set to the signatureId, or the signatureId in the value if a producer
// left the key empty.
func routeKey(msg kafka.Message) []byte {
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

func pingBroker(ctx context.Context, brokers []string) error {
	var d net.Dialer
	var errs []error
	for _, b := range brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			return conn.Close()
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("no broker answers: %w", errors.Join(errs...))
}
