// Package service wires Doppel's parts into the running service: PostgreSQL, the vendor regions, the
// detector, the Kafka consumers with their handler (package pipeline), the outbox relay,
// reconciliation and the HTTP server. cmd/doppel calls Run, and builds the parts of its other
// commands here too (OpenStore, NewRegions, DeadLetterReplay); the integration tests call Run, so
// they exercise exactly what production runs.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/deadletter"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/httpapi"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/pipeline"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/pseudonym"
	"github.com/doppelhq/doppel/internal/readiness"
	"github.com/doppelhq/doppel/internal/reconcile"
	"github.com/doppelhq/doppel/internal/relay"
	"github.com/doppelhq/doppel/internal/retention"
	"github.com/doppelhq/doppel/internal/topic"
)

// ensureTopics creates Doppel's topics when DOPPEL_CREATE_TOPICS is on, with
// DOPPEL_TOPIC_REPLICATION_FACTOR copies, and warns about each topic it did not create that has a
// single copy on a cluster of three brokers or more: there, acks=all and min.insync.replicas protect
// nothing, and the loss of one broker loses the topic's messages.
func ensureTopics(ctx context.Context, cfg config.Config, multiRegion bool, log *slog.Logger) error {
	specs := []topic.Spec{
		{Name: cfg.TopicEvents, Partitions: cfg.TopicPartitions},
		{Name: cfg.TopicAlerts, Partitions: cfg.TopicPartitions},
		{Name: cfg.TopicDLQ, Partitions: 1},
		{Name: cfg.TopicStarted, Partitions: cfg.TopicPartitions},
		{Name: cfg.TopicErasures, Partitions: cfg.TopicPartitions},
	}
	if multiRegion {
		for _, name := range cfg.RegionNames() {
			specs = append(specs, topic.Spec{Name: pipeline.ParkingTopic(cfg.TopicEvents, name), Partitions: cfg.TopicPartitions})
		}
	}
	for i := range specs {
		specs[i].ReplicationFactor = cfg.TopicReplicationFactor
	}
	var rep topic.Report
	if cfg.CreateTopics {
		var err error
		if rep, err = topic.Ensure(ctx, cfg.KafkaBrokers, specs...); err != nil {
			return fmt.Errorf("ensure topics on %v (replication: DOPPEL_TOPIC_REPLICATION_FACTOR=%d): %w",
				cfg.KafkaBrokers, cfg.TopicReplicationFactor, err)
		}
	} else {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		var err error
		// Only to warn: a topic that is missing or unreadable here fails later, where it is used.
		if rep, err = topic.Describe(ctx, cfg.KafkaBrokers, names...); err != nil {
			log.Warn("could not read the topics' replication", "error", err)
			return nil
		}
	}
	for _, t := range rep.SingleCopy() {
		log.Warn("topic has a single copy on a cluster of several brokers: losing the broker that holds it loses its messages; "+
			"recreate it with three copies and min.insync.replicas=2", "topic", t.Name, "replication_factor", t.ReplicationFactor,
			"brokers", rep.Brokers)
	}
	return nil
}

// Run starts the pipeline and the HTTP server and blocks until ctx is cancelled or a part fails.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	pool, store, err := OpenStore(ctx, cfg, cfg.DatabaseMaxConns, postgres.ReadPlans)
	if err != nil {
		return err
	}
	defer pool.Close()
	// The group commit and the relay have connections of their own, whose plans are index plans
	// (postgres.KeyLookUpPlans): one save and one look-up round trip per flusher, and the relay's
	// claim and mark. The API's, the console's and reconciliation's queries keep the main pool.
	hotPool, hotStore, err := OpenStore(ctx, cfg, 2*cfg.StoreFlushers+2, postgres.KeyLookUpPlans)
	if err != nil {
		return err
	}
	defer hotPool.Close()
	if cfg.MigrateOnStart {
		if err := postgres.MigrateUp(cfg.DatabaseURL); err != nil {
			return err
		}
	}
	multiRegion := len(cfg.RegionNames()) > 1
	if err := ensureTopics(ctx, cfg, multiRegion, log); err != nil {
		return err
	}

	m := metrics.New(metricSeries())
	hotStore.CountErasedMatches(m.ErasedMatches)
	store.CountErasedMatches(m.ErasedMatches)
	// The event bounds, the same for the events topic and the API's event endpoint.
	eventOptions := duplicate.DecodeOptions{MaxBytes: cfg.MaxEventBytes, RejectUnknownTypes: cfg.RejectUnknownTypes}
	vendor, err := NewRegions(ctx, cfg, m, store, log)
	if err != nil {
		return err
	}
	// Checks from all workers share transactions (group commit): see postgres.Batcher. A batch
	// takes whatever is queued (one check when idle, up to DOPPEL_STORE_BATCH_SIZE under load). One
	// transaction at a time (DOPPEL_STORE_FLUSHERS=1) makes the batches larger and the WAL flushes
	// fewer; the benchmark measured about the same throughput with two, for 15-30% more
	// PostgreSQL CPU per event.
	batcher := postgres.NewBatcher(hotStore, cfg.StoreBatchSize, cfg.StoreFlushers, cfg.StoreLinger)
	batcher.Observe(m)
	detector := duplicate.NewDetector(batcher, nil)
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
	}, hotStore)
	m.SetOutboxSource(store.OutboxBacklog)
	m.SetLagSource(func(ctx context.Context) (map[int]int64, error) {
		return consumer.Lag(ctx, cfg.KafkaBrokers, cfg.KafkaGroupID, cfg.TopicEvents)
	})

	handlerConfig := pipeline.Config{EventOptions: eventOptions, Detector: detector, Regions: vendor, OnAlert: rel.Handoff,
		Metrics: m, Logger: log.With("component", "pipeline")}
	parts := []named{{"relay", rel.Run}, {"budgets", func(ctx context.Context) error {
		return refreshBudgets(ctx, vendor, log.With("component", "budget"))
	}}}
	if multiRegion {
		parkedConfig := handlerConfig
		parkedConfig.FromParking = true
		parked := pipeline.New(parkedConfig)
		handlerConfig.Parking = pipeline.NewParking(pipeline.ParkingConfig{Brokers: cfg.KafkaBrokers, EventsTopic: cfg.TopicEvents,
			GroupID: cfg.KafkaGroupID, Workers: cfg.Workers}, vendor,
			func(name string) pipeline.RegionMetrics { return m.Region(name) }, log.With("component", "parking"))
		defer handlerConfig.Parking.Close()
		// Bounded like one backlog request: a broker that does not answer leaves parking on.
		measureCtx, cancelMeasure := context.WithTimeout(ctx, 10*time.Second)
		handlerConfig.Parking.Measure(measureCtx)
		cancelMeasure()
		parts = append(parts, named{"parking watch", handlerConfig.Parking.Watch})
		for _, name := range cfg.RegionNames() {
			pc, err := consumer.New(parkedConsumerConfig(cfg, name, log, m, parked.Route), parked.Handle)
			if err != nil {
				return err
			}
			parts = append(parts, named{"parked consumer " + name, pc.Run})
		}
	}
	eventHandler := pipeline.New(handlerConfig)
	cons, err := consumer.New(consumerConfig(cfg, cfg.KafkaGroupID, cfg.TopicEvents, cfg.Workers,
		log.With("component", "consumer"), m, eventHandler.Route), eventHandler.Handle)

	if err != nil {
		return err
	}

	// Verifications found by polling go to the events topic with a source of their own.
	polled := topic.NewPublisher(cfg.KafkaBrokers, cfg.TopicEvents, "polling")
	defer polled.Close()
	recon, err := newReconciliation(cfg, store, vendor, polled, rel, m, log)
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
	if cfg.CallbackToken == "" && cfg.CallbackHMACSecret == "" && len(cfg.CallbackSigningSecrets) == 0 {
		log.Warn("vendor callbacks are off: set DOPPEL_CALLBACK_TOKEN to accept them")
	}
	if cfg.CallbackHMACSecret != "" {
		log.Warn("DOPPEL_CALLBACK_HMAC_SECRET (X-Doppel-Signature) is deprecated: sign callbacks by the Standard Webhooks specification under DOPPEL_CALLBACK_SIGNING_SECRETS (docs/callbacks.md)")
	}
	// Readiness is computed in the background: a probe reads the last answer and never opens a
	// connection of its own. Each part of the pipeline that can stop progress adds a named check.
	checks := append([]readiness.Check{
		{Name: "database", Serving: true, Check: func(ctx context.Context) error { return pool.Ping(ctx) }},
		{Name: "kafka", Check: func(ctx context.Context) error { return pingBroker(ctx, cfg.KafkaBrokers) }},
	}, regionReadiness(vendor)...)
	checks = append(checks, readiness.Check{Name: "consumer", Check: cons.CheckProgress})
	ready := readiness.New(readiness.Config{Interval: readinessInterval, Logger: log.With("component", "readiness")}, checks...)
	// Every read of a person's data, by the API or the console, is queued here and written in
	// batches; it is closed after the HTTP server has stopped (below), so the last reads are kept.
	accessMetrics := m.AccessLog()
	accessLog := accesslog.NewWriter(store, accesslog.Config{Logger: log.With("component", "access-log"),
		OnWritten: accessMetrics.Written, OnRefused: accessMetrics.Refused, OnLost: accessMetrics.Lost})
	defer func() { // a start-up that fails below stops the writer too (after the Close at the end, a no-op)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = accessLog.Close(ctx)
	}()
	// Erasure needs the tombstones' key; without it the routes answer 503 and nothing runs.
	var erasures httpapi.ErasureStore
	var consoleErasures console.Erasures
	onErasure := func() {}
	if cfg.PseudonymKey != "" {
		runner, pub, err := NewErasureRunner(cfg, store, log.With("component", "erasure"), m.ErasureDone)
		if err != nil {
			return err
		}
		defer pub.Close()
		erasures, consoleErasures, onErasure = store, store, runner.Wake
		parts = append(parts, named{"erasures", func(ctx context.Context) error { runner.Run(ctx); return nil }})
	} else {
		log.Warn("erasure is off: POST /v1/erasures answers 503 until DOPPEL_PSEUDONYM_KEY is set (the key of the tombstones, the same on every instance)")
	}
	retentions := map[string]time.Duration{}
	for _, r := range cfg.Regions() {
		if r.Retention > 0 {
			retentions[r.Name] = r.Retention
		}
	}
	if len(retentions) > 0 {
		warnAlertRetention(ctx, cfg, retentions, log)
		sweeper := retention.New(retention.Config{Store: store, Retentions: retentions, OnDeleted: m.RetentionDeleted, OnSwept: m.RetentionSwept,
			Logger: log.With("component", "retention")})
		parts = append(parts, named{"retention", func(ctx context.Context) error { sweeper.Run(ctx); return nil }})
	}
	api := httpapi.New(httpapi.Config{
		Erasures:                erasures,
		OnErasure:               onErasure,
		LegalHolds:              store,
		Logger:                  log.With("component", "http"),
		Readiness:               ready,
		Store:                   store,
		AccessLog:               accessLog,
		Replayer:                duplicate.NewReplayer(vendor, store, nil),
		OnAlerts:                rel.Notify,
		Events:                  events,
		CallbackToken:           cfg.CallbackToken,
		CallbackTokenHeaderOnly: !cfg.CallbackTokenInQuery,
		CallbackSigningSecrets:  cfg.CallbackSigningSecrets,
		CallbackHMACSecret:      cfg.CallbackHMACSecret,
		Deliveries:              store,
		OnCallback:              m.Callback,
		CallbackTimeout:         cfg.CallbackTimeout,
		EventOptions:            eventOptions,
		APIKeys:                 keys,
		ReplayMaxChecks:         cfg.ReplayMaxChecks,
		ReplayDailyLimit:        cfg.ReplayDailyLimit,
		CaseCap:                 cfg.CaseCap,
		HSTS:                    cfg.ServedOverTLS(),
		AuthFailuresPerMinute:   cfg.AuthFailuresPerMinute,
		OnAuthFailure:           m.AuthFailure,
		OnRequest:               m.HTTPRequest,
		Regions:                 vendor.Names(),
		Reconciliation: func(ctx context.Context) (reconcile.Counts, error) {
			return store.Counts(ctx, time.Now().Add(-reconcile.AlertWindow))
		},
		ReconcileAlertRatio: cfg.ReconcileAlertRatio,
	})
	evidenceFetcher, evidenceViews := newEvidence(cfg, vendor, m, log, accessLog)
	reviewConsole, err := console.New(console.Config{
		Erasures:      consoleErasures,
		OnErasure:     onErasure,
		Evidence:      evidenceFetcher,
		EvidenceViews: evidenceViews,
		SecureCookies: cfg.ServedOverTLS(),
		Store:         store,
		CaseCap:       cfg.CaseCap,
		ReviewSLA:     cfg.ReviewSLA,
		AccessLog:     accessLog,
		APIKeys:       keys,
		SignIn:        api.SignInGuard(console.SignInPath),
		SessionTTL:    cfg.ConsoleSessionTTL,
		OIDC:          consoleOIDC(cfg),
		Region:        consoleRegion(cfg),
		Logger:        log.With("component", "console"),
		DeadLetters: func(ctx context.Context) (int64, error) {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			return topic.Messages(ctx, cfg.KafkaBrokers, cfg.TopicDLQ)
		},
	})
	if err != nil {
		return err
	}
	api.MountConsole(console.Path, reviewConsole)
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
		named{"callback-deliveries-sweep", func(ctx context.Context) error { return api.SweepDeliveries(ctx, deliverySweepInterval) }},
		named{"admin", func(ctx context.Context) error { return admin.Serve(ctx, cfg.AdminAddr, cfg.ShutdownTimeout/2) }},
	)
	if cfg.AccessLogRetention > 0 {
		parts = append(parts, named{"access-log-sweep", func(ctx context.Context) error {
			return accesslog.Sweep(ctx, store, accesslog.SweepConfig{Retention: cfg.AccessLogRetention, Batch: postgres.MaxSweepRows,
				OnDeleted: accessMetrics.Swept, Logger: log.With("component", "access-log")})
		}})
	}
	err = runAll(ctx, log, parts...)
	// The HTTP server has stopped: nothing records any more, and what is queued is written now.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout/2)
	defer cancel()
	if cerr := accessLog.Close(closeCtx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("access log: %w", cerr))
	}
	return err
}

// warnAlertRetention warns when the alert topic keeps its messages longer than the shortest
// configured retention: Doppel cannot rewrite what is already on Kafka, so the broker's retention
// bounds how long an alert outlives the rows it was made from.
func warnAlertRetention(ctx context.Context, cfg config.Config, retentions map[string]time.Duration, log *slog.Logger) {
	shortest := time.Duration(0)
	for _, d := range retentions {
		if shortest == 0 || d < shortest {
			shortest = d
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kept, err := topic.Retention(ctx, cfg.KafkaBrokers, cfg.TopicAlerts)
	if err != nil {
		log.Warn("could not read the alert topic's retention.ms", "topic", cfg.TopicAlerts, "error", err)
		return
	}
	if msg := alertRetentionProblem(kept, shortest); msg != "" {
		log.Warn(msg, "topic", cfg.TopicAlerts, "retention_ms", kept.Milliseconds(), "shortest_retention", shortest.String())
	}
}

// alertRetentionProblem says what is wrong with an alert topic that keeps its messages for kept
// (-1: for ever) when the shortest configured retention is shortest; "" when nothing is.
func alertRetentionProblem(kept, shortest time.Duration) string {
	if kept >= 0 && kept <= shortest {
		return ""
	}
	return "the alert topic keeps alerts longer than the shortest DOPPEL_RETENTION / DOPPEL_ADVANCE_<R>_RETENTION: " +
		"alerts on Kafka outlive the rows they name; set the topic's retention.ms to at most that"
}

// consumerConfig is what every consumer (events, parked, started) shares: the dead-letter topic,
// retries, the classification of errors and the stall bound; route is the consumer's own.
func consumerConfig(cfg config.Config, groupID, topic string, workers int, log *slog.Logger, m *metrics.Metrics,
	route func(kafka.Message) ([]byte, any)) consumer.Config {
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
		Classify:      pipeline.Classify,
		Route:         route,
		ShutdownGrace: cfg.ShutdownTimeout / 2,
		StallAfter:    cfg.StallAfter,
		Logger:        log,
		Observer:      m,
	}
}

// deliverySweepInterval is how often the signed callbacks' delivery ids past their window are
// deleted: they number the signed callbacks of about six minutes, so a minute keeps the table small.
const deliverySweepInterval = time.Minute

// readinessInterval is how often the readiness checks run: often enough for a load balancer to
// see a change within seconds, rarely enough that its pings cost nothing.
const readinessInterval = 2 * time.Second

// OpenStore connects to PostgreSQL with at most maxConns connections and returns the pool (close it
// when done) and the store over it with the configured alert policy: what `doppel serve` and
// `doppel replay` both use.
func OpenStore(ctx context.Context, cfg config.Config, maxConns int, opts ...postgres.PoolOption) (*pgxpool.Pool, *postgres.Store, error) {
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, int32(maxConns), opts...)
	if err != nil {
		return nil, nil, err
	}
	sla, regionSLA := cfg.CaseSLA()
	storeOpts := []postgres.Option{postgres.WithAlertPolicy(duplicate.AlertPolicy{HighSeverityRingSize: cfg.RingHighSeveritySize}),
		postgres.WithCases(duplicate.CaseSLA{Default: sla, Regions: regionSLA}), postgres.WithErasureLog(slog.Default(), nil)}
	if cfg.PseudonymKey != "" {
		// Every store checks the erasures' tombstones: an erased person is not linked again.
		storeOpts = append(storeOpts, postgres.WithTombstones(pseudonym.NewKey([]byte(cfg.PseudonymKey))))
	}
	return pool, postgres.NewStore(pool, storeOpts...), nil
}

// DeadLetterReplay returns where `doppel dlq replay` reads and writes: the dead-letter topic back to
// the events topic, a dead-lettered started event back to the started topic.
func DeadLetterReplay(cfg config.Config) deadletter.Options {
	return deadletter.Options{Brokers: cfg.KafkaBrokers, DLQTopic: cfg.TopicDLQ, TargetTopic: cfg.TopicEvents,
		SourceRoutes: map[string]string{cfg.TopicStarted: cfg.TopicStarted}}
}

// metricSeries are the label values metrics creates at zero: every dead-letter reason (the one
// table in deadletter) and every classification the pipeline retries, passed here so that metrics
// imports neither package.
func metricSeries() metrics.Series {
	s := metrics.Series{DeadLetterReasons: deadletter.Reasons}
	for _, c := range pipeline.Retries {
		s.Retries = append(s.Retries, metrics.Retry{Action: c.Action.String(), Reason: c.Reason})
	}
	return s
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

// consoleOIDC is the console's single sign-on, nil when DOPPEL_OIDC_ISSUER is not set.
func consoleOIDC(cfg config.Config) *console.OIDCConfig {
	if cfg.OIDCIssuer == "" {
		return nil
	}
	return &console.OIDCConfig{Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID, ClientSecret: cfg.OIDCClientSecret,
		RedirectURL: cfg.OIDCRedirectURL(), RoleClaim: cfg.OIDCRoleClaim}
}
