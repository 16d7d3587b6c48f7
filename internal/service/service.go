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
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/facesearch"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/readiness"
	"github.com/doppelhq/doppel/internal/reconcile"
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
	if cfg.CreateTopics {
		if err := topic.Ensure(ctx, cfg.KafkaBrokers,
			topic.Spec{Name: cfg.TopicEvents, Partitions: cfg.TopicPartitions, ReplicationFactor: -1},
			topic.Spec{Name: cfg.TopicAlerts, Partitions: cfg.TopicPartitions, ReplicationFactor: -1},
			topic.Spec{Name: cfg.TopicDLQ, Partitions: 1, ReplicationFactor: -1},
			topic.Spec{Name: cfg.TopicStarted, Partitions: cfg.TopicPartitions, ReplicationFactor: -1},
		); err != nil {
			return fmt.Errorf("ensure topics on %v: %w", cfg.KafkaBrokers, err)
		}
	}

	m := metrics.New()
	vendor, err := NewVendor(cfg, m)
	if err != nil {
		return err
	}
	store := NewStore(pool, cfg)
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

	p := &pipeline{cfg: cfg, detector: detector, relay: rel, metrics: m, log: log.With("component", "pipeline")}
	cons, err := consumer.New(consumerConfig(cfg, cfg.KafkaGroupID, cfg.TopicEvents, cfg.Workers,
		log.With("component", "consumer"), m), p.handle)
	if err != nil {
		return err
	}

	recon, err := newReconciliation(cfg, store, batcher, vendor, rel, m, log)
	if err != nil {
		return err
	}

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
	ready := readiness.New(readiness.Config{Interval: readinessInterval, Logger: log.With("component", "readiness")},
		readiness.Check{Name: "database", Check: func(ctx context.Context) error { return pool.Ping(ctx) }},
		readiness.Check{Name: "kafka", Check: func(ctx context.Context) error { return pingBroker(ctx, cfg.KafkaBrokers) }},
		readiness.Check{Name: "vendor", Check: func(context.Context) error { return vendor.Ready() }},
		readiness.Check{Name: "consumer", Check: cons.CheckProgress},
	)
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
		Region:     advance.Region(cfg.AdvanceBaseURL),
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
		"admin_addr", cfg.AdminAddr)
	return runAll(ctx, log,
		named{"consumer", cons.Run},
		named{"relay", rel.Run},
		named{"readiness", ready.Run},
		named{"started-consumer", recon.started.Run},
		named{"reconcile", recon.run},
		named{"http", func(ctx context.Context) error { return api.Serve(ctx, cfg.HTTPAddr, cfg.ShutdownTimeout/2) }},
		named{"admin", func(ctx context.Context) error { return admin.Serve(ctx, cfg.AdminAddr, cfg.ShutdownTimeout/2) }},
	)
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

// NewVendor returns the vendor client behind the rate limit and circuit breaker that every caller
// shares. m may be nil (no metrics), as for `doppel replay`.
func NewVendor(cfg config.Config, m *metrics.Metrics) (*facesearch.Vendor, error) {
	ac := advance.Config{
		BaseURL:   cfg.AdvanceBaseURL,
		AccessKey: cfg.AdvanceAccessKey,
		SecretKey: cfg.AdvanceSecretKey,
		Timeout:   cfg.AdvanceTimeout,
	}
	fc := facesearch.Config{
		// Polling takes its share of the vendor rate (see newReconciliation); the rest is here.
		QPS:             cfg.MainQPS(),
		BreakerFailures: cfg.BreakerFailures,
		BreakerOpenFor:  cfg.BreakerOpenFor,
	}
	if m != nil {
		ac.OnCall = m.VendorCall
		fc.OnStateChange, fc.OnPause = m.SetBreakerState, m.SetVendorPaused
	}
	client, err := advance.New(ac)
	if err != nil {
		return nil, fmt.Errorf("vendor client: %w", err)
	}
	return facesearch.New(client, fc), nil
}

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
	relay    *relay.Relay
	metrics  *metrics.Metrics
	log      *slog.Logger
}

func (p *pipeline) handle(ctx context.Context, msg kafka.Message) error {
	p.metrics.EventConsumed()
	src := duplicate.Source{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}
	ev, err := duplicate.DecodeEvent(msg.Value, duplicate.DecodeOptions{
		MaxBytes: p.cfg.MaxEventBytes, RejectUnknownTypes: p.cfg.RejectUnknownTypes})
	if err != nil {
		var de *duplicate.DecodeError
		if errors.As(err, &de) && de.SignatureID != "" {
			if rerr := p.detector.RecordFailure(ctx, de.SignatureID, de.Reason+": "+de.Detail, src); rerr != nil {
				return rerr
			}
			p.metrics.Outcome(string(duplicate.OutcomeFailed))
		}
		return err
	}
	res, err := p.detector.Handle(ctx, ev, src)
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
