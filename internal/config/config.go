// Package config loads Doppel's configuration: defaults, then an optional YAML file, then
// environment variables (DOPPEL_*), and validates it with messages that say what to set.
//
// The Config struct is the one list of settings: each field's yaml and env tags name its file key
// and variable, and everything else (parsing, where each value came from, the report of unknown
// DOPPEL_* variables, `doppel config check`) is derived from those tags.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is every setting of `doppel serve` and its sub-commands. The env tag names the variable that
// overrides the YAML key; secret fields are masked when printed.
type Config struct {
	// The PostgreSQL URL, `postgres://user:pass@host:5432/db?sslmode=...` (required).
	DatabaseURL string `yaml:"database_url" env:"DOPPEL_DATABASE_URL" secret:"true"`
	// Size of the main pool (API, console, reconciliation, replay); the group commit and the relay
	// have 2 × `DOPPEL_STORE_FLUSHERS` + 2 connections of their own.
	DatabaseMaxConns int `yaml:"database_max_conns" env:"DOPPEL_DATABASE_MAX_CONNS"`
	// Apply migrations when `serve` starts.
	MigrateOnStart bool `yaml:"migrate_on_start" env:"DOPPEL_MIGRATE_ON_START"`

	// The Kafka bootstrap brokers, comma-separated `host:port` (required).
	KafkaBrokers []string `yaml:"kafka_brokers" env:"DOPPEL_KAFKA_BROKERS"`
	// The consumer group; instances sharing it share the partitions.
	KafkaGroupID string `yaml:"kafka_group_id" env:"DOPPEL_KAFKA_GROUP_ID"`
	// The input topic of "H5 IDV completed" events (the vendor's callback body).
	TopicEvents string `yaml:"topic_events" env:"DOPPEL_TOPIC_EVENTS"`
	// The topic alerts are published to (docs/contracts.md).
	TopicAlerts string `yaml:"topic_alerts" env:"DOPPEL_TOPIC_ALERTS"`
	// The dead-letter topic: events that cannot be processed, with the reason (docs/contracts.md).
	TopicDLQ string `yaml:"topic_dlq" env:"DOPPEL_TOPIC_DLQ"`
	// TopicStarted carries one event per verification started (generate-url answered), so that a
	// verification whose completion callback never comes is found by polling.
	TopicStarted string `yaml:"topic_started" env:"DOPPEL_TOPIC_STARTED"`
	// TopicErasures receives one subject_erased event per finished erasure, keyed by userId, so
	// that every subscriber of the alert topic can delete its own copies (docs/contracts.md).
	TopicErasures string `yaml:"topic_erasures" env:"DOPPEL_TOPIC_ERASURES"`
	// The partitions of the events and alert topics when Doppel creates them.
	TopicPartitions int `yaml:"topic_partitions" env:"DOPPEL_TOPIC_PARTITIONS"`
	// TopicReplicationFactor is the copies of each partition of a topic Doppel creates; 0 takes 3 on
	// a cluster of three brokers or more (counted at start) and 1 otherwise. A topic with three copies
	// or more also gets min.insync.replicas=2, which acks=all producers then wait for. A topic it did
	// not create with one copy on such a cluster is warned about at start (docs/kafka-cluster.md).
	TopicReplicationFactor int `yaml:"topic_replication_factor" env:"DOPPEL_TOPIC_REPLICATION_FACTOR"`
	// Create missing topics on start.
	CreateTopics bool `yaml:"create_topics" env:"DOPPEL_CREATE_TOPICS"`

	// The vendor's regional host, e.g. `https://sg-api.advance.ai`, or advance-sim (required without
	// `DOPPEL_ADVANCE_REGIONS`).
	AdvanceBaseURL string `yaml:"advance_base_url" env:"DOPPEL_ADVANCE_BASE_URL"`
	// The vendor account's access key (required without `DOPPEL_ADVANCE_REGIONS`).
	AdvanceAccessKey string `yaml:"advance_access_key" env:"DOPPEL_ADVANCE_ACCESS_KEY" secret:"true"`
	// The vendor account's secret key (required without `DOPPEL_ADVANCE_REGIONS`).
	AdvanceSecretKey string `yaml:"advance_secret_key" env:"DOPPEL_ADVANCE_SECRET_KEY" secret:"true"`
	// The bound on one vendor call.
	AdvanceTimeout time.Duration `yaml:"advance_timeout" env:"DOPPEL_ADVANCE_TIMEOUT"`
	// Vendor calls per second, a client-side limit shared by all workers of one instance (0: none).
	AdvanceQPS float64 `yaml:"advance_qps" env:"DOPPEL_ADVANCE_QPS"`
	// Transient vendor failures in a row that open the circuit.
	BreakerFailures int `yaml:"breaker_failures" env:"DOPPEL_BREAKER_FAILURES"`
	// How long an open circuit waits before a probe call.
	BreakerOpenFor time.Duration `yaml:"breaker_open_for" env:"DOPPEL_BREAKER_OPEN_FOR"`
	// AdvanceRegions lists the vendor regions, one account each, whose settings are in Advance
	// (see regions.go); unset, the flat DOPPEL_ADVANCE_* settings form the one region "default".
	AdvanceRegions []string `yaml:"advance_regions" env:"DOPPEL_ADVANCE_REGIONS"`
	// Region of an event that names none, and of `/v1/callbacks/advance`.
	AdvanceDefaultRegion string `yaml:"advance_default_region" env:"DOPPEL_ADVANCE_DEFAULT_REGION"`
	// Retention is how long a verification's data is kept (a Go duration, e.g. `43800h` for five
	// years): a sweeper deletes checks completed and links last seen longer ago, with their alerts,
	// never those of a person on legal hold, and recomputes the rings it touches (docs/privacy.md).
	// 0 keeps everything. Per region: `DOPPEL_ADVANCE_<R>_RETENTION`.
	Retention time.Duration `yaml:"retention" env:"DOPPEL_RETENTION"`
	// AdvanceClearDataPath is the path, on the vendor host, of the account's data-clearing call
	// (POST {"signatureId"}): an erasure calls it for each of the person's verifications, so the
	// face leaves the vendor's face database. Empty: the account has none, and the erasure lists
	// the signatureIds for the operator to ask the vendor about (docs/privacy.md). Per region:
	// `DOPPEL_ADVANCE_<R>_CLEAR_DATA_PATH`.
	AdvanceClearDataPath string `yaml:"advance_clear_data_path" env:"DOPPEL_ADVANCE_CLEAR_DATA_PATH"`
	// Advance is the file's advance: section; its variables are per region, DOPPEL_ADVANCE_<R>_*.
	Advance Advance `yaml:"advance"`

	// Events handled at once (same signatureId: one after another); each waits mostly on the vendor,
	// so cheap.
	Workers int `yaml:"workers" env:"DOPPEL_WORKERS"`
	// Larger messages are dead-lettered as `too_large`.
	MaxEventBytes int `yaml:"max_event_bytes" env:"DOPPEL_MAX_EVENT_BYTES"`
	// Dead-letter types other than COMPLETED/SUBMIT_COMPLETED instead of storing them as skipped.
	RejectUnknownTypes bool `yaml:"reject_unknown_types" env:"DOPPEL_REJECT_UNKNOWN_TYPES"`
	// How often finished offsets are committed.
	CommitInterval time.Duration `yaml:"commit_interval" env:"DOPPEL_COMMIT_INTERVAL"`
	// Most checks per PostgreSQL transaction (group commit); a batch takes whatever is queued, so it
	// is one check when idle.
	StoreBatchSize int `yaml:"store_batch_size" env:"DOPPEL_STORE_BATCH_SIZE"`
	// Group-commit transactions at once (two measured no faster, for more PostgreSQL CPU per event).
	StoreFlushers int `yaml:"store_flushers" env:"DOPPEL_STORE_FLUSHERS"`
	// StoreLinger is how long a batch of fewer than 16 checks or look-ups waits for more before it
	// goes (0: never): fewer round trips per event at low rates, for at most this much latency.
	StoreLinger time.Duration `yaml:"store_linger" env:"DOPPEL_STORE_LINGER"`
	// StallAfter is how long a partition may hold uncommitted events without committing before it
	// is reported stalled (log line, metric, alert rule, the admin listener's /readyz).
	StallAfter time.Duration `yaml:"stall_after" env:"DOPPEL_STALL_AFTER"`

	// Tries of an event whose vendor calls fail transiently, before `retries_exhausted`.
	RetryMaxAttempts int `yaml:"retry_max_attempts" env:"DOPPEL_RETRY_MAX_ATTEMPTS"`
	// The first backoff between tries.
	RetryInitialInterval time.Duration `yaml:"retry_initial_interval" env:"DOPPEL_RETRY_INITIAL_INTERVAL"`
	// The longest backoff between tries.
	RetryMaxInterval time.Duration `yaml:"retry_max_interval" env:"DOPPEL_RETRY_MAX_INTERVAL"`
	// Most backoff per event before `retries_exhausted`.
	RetryMaxElapsed time.Duration `yaml:"retry_max_elapsed" env:"DOPPEL_RETRY_MAX_ELAPSED"`

	// Alerts per relay batch.
	RelayBatchSize int `yaml:"relay_batch_size" env:"DOPPEL_RELAY_BATCH_SIZE"`
	// Outbox poll interval, for alerts nobody handed over (a committed alert is handed to the relay
	// and published at once).
	RelayInterval time.Duration `yaml:"relay_interval" env:"DOPPEL_RELAY_INTERVAL"`

	// Public HTTP listen address: the API, the callback, `/healthz`, a status-only `/readyz`.
	HTTPAddr string `yaml:"http_addr" env:"DOPPEL_HTTP_ADDR"`
	// AdminAddr serves /metrics, pprof and the detailed readiness: keep it off the internet.
	AdminAddr string `yaml:"admin_addr" env:"DOPPEL_ADMIN_ADDR"`
	// The log level: debug, info, warn or error.
	LogLevel string `yaml:"log_level" env:"DOPPEL_LOG_LEVEL"`
	// The log format: json, or text for a terminal.
	LogFormat string `yaml:"log_format" env:"DOPPEL_LOG_FORMAT"`
	// LogPseudonymize writes every userId in a log line as its pseudonym, the keyed hash under
	// `DOPPEL_PSEUDONYM_KEY` ("p_" and 24 hex characters): the lines about one person can still be
	// followed, but not traced back to them without the key.
	LogPseudonymize bool `yaml:"log_pseudonymize" env:"DOPPEL_LOG_PSEUDONYMIZE"`
	// PseudonymKey is the secret of the keyed hash (HMAC-SHA-256) that pseudonymizes userIds, at
	// least 32 characters (`openssl rand -hex 32`). Unset, each process draws a random one and warns:
	// its pseudonyms then differ between instances and restarts.
	PseudonymKey string `yaml:"pseudonym_key" env:"DOPPEL_PSEUDONYM_KEY" secret:"true"`
	// The bound on a graceful stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" env:"DOPPEL_SHUTDOWN_TIMEOUT"`

	// APIKeys lists the query API's keys as "name:scope+scope:sha256hex" entries separated by ";":
	// only the SHA-256 of each key is configured, never the key itself. Scopes are read, review,
	// replay and erase (erasure requests; no other scope implies it).
	APIKeys string `yaml:"api_keys" env:"DOPPEL_API_KEYS" secret:"true"`
	// CallbackToken authenticates the vendor's callbacks (?token= on the callback URL, or the
	// X-Doppel-Callback-Token header).
	CallbackToken string `yaml:"callback_token" env:"DOPPEL_CALLBACK_TOKEN" secret:"true"`
	// CallbackTokenInQuery accepts the callback token as ?token=, the only form the vendor can send;
	// false refuses it (401 naming the header), keeping the token out of access logs once every
	// sender uses X-Doppel-Callback-Token.
	CallbackTokenInQuery bool `yaml:"callback_token_in_query" env:"DOPPEL_CALLBACK_TOKEN_IN_QUERY"`
	// CallbackSigningSecrets lets internal producers sign callbacks by the Standard Webhooks
	// specification (webhook-id, webhook-timestamp, webhook-signature): whsec_<base64 key> secrets,
	// several while one is rotated, a signature made with any of them accepted.
	CallbackSigningSecrets []string `yaml:"callback_signing_secrets" env:"DOPPEL_CALLBACK_SIGNING_SECRETS" secret:"true"`
	// CallbackHMACSecret lets internal producers sign callback bodies with X-Doppel-Signature.
	// Deprecated: use `DOPPEL_CALLBACK_SIGNING_SECRETS`, whose signature covers a delivery id.
	CallbackHMACSecret string `yaml:"callback_hmac_secret" env:"DOPPEL_CALLBACK_HMAC_SECRET" secret:"true"`
	// CallbackTimeout bounds the wait for the broker to acknowledge a callback's event.
	CallbackTimeout time.Duration `yaml:"callback_timeout" env:"DOPPEL_CALLBACK_TIMEOUT"`
	// RingHighSeveritySize is the fraud-ring size from which alerts are high severity (0: never).
	RingHighSeveritySize int `yaml:"ring_high_severity_size" env:"DOPPEL_RING_HIGH_SEVERITY_SIZE"`
	// ReplayMaxChecks bounds the checks (billed face searches) one replay call re-runs.
	ReplayMaxChecks int `yaml:"replay_max_checks" env:"DOPPEL_REPLAY_MAX_CHECKS"`
	// ReplayDailyLimit bounds the re-runs (billed face searches) one API key may ask for through
	// the API per UTC day, across calls and instances; 0 sets no daily bound.
	ReplayDailyLimit int `yaml:"replay_daily_limit" env:"DOPPEL_REPLAY_DAILY_LIMIT"`
	// PublicURL is the address people and the vendor reach Doppel's public listener at, e.g.
	// https://doppel.example.com. An https URL tells Doppel that a TLS proxy is in front: the
	// console's cookies become Secure with the __Host- prefix and HSTS is sent. Empty: unknown.
	PublicURL string `yaml:"public_url" env:"DOPPEL_PUBLIC_URL"`
	// AuthFailuresPerMinute is how many failed authentications one remote address may make per
	// minute (as a burst, refilled evenly) before it is answered 429; 0 turns throttling off.
	AuthFailuresPerMinute int `yaml:"auth_failures_per_minute" env:"DOPPEL_AUTH_FAILURES_PER_MINUTE"`
	// ReviewSLA is how long a case (a ring with open alerts) may wait for a decision before it is
	// overdue, from its oldest open alert; a region may set its own (DOPPEL_ADVANCE_<R>_REVIEW_SLA).
	ReviewSLA time.Duration `yaml:"review_sla" env:"DOPPEL_REVIEW_SLA"`
	// CaseCap is the most cases one analyst may hold claimed at once (0: no cap).
	CaseCap int `yaml:"case_cap" env:"DOPPEL_CASE_CAP"`
	// ConsoleSessionTTL is how long a review-console sign-in lasts.
	ConsoleSessionTTL time.Duration `yaml:"console_session_ttl" env:"DOPPEL_CONSOLE_SESSION_TTL"`
	// OIDCIssuer turns on single sign-on to the review console with this OpenID Connect provider
	// (its issuer URL, e.g. https://login.example.com/realms/risk); it needs DOPPEL_OIDC_CLIENT_ID,
	// DOPPEL_OIDC_CLIENT_SECRET and DOPPEL_PUBLIC_URL (the provider sends people back to
	// DOPPEL_PUBLIC_URL/console/sso/callback). Empty: no single sign-on.
	OIDCIssuer string `yaml:"oidc_issuer" env:"DOPPEL_OIDC_ISSUER"`
	// OIDCClientID is the console's client id at the provider.
	OIDCClientID string `yaml:"oidc_client_id" env:"DOPPEL_OIDC_CLIENT_ID"`
	// OIDCClientSecret is the console's client secret at the provider.
	OIDCClientSecret string `yaml:"oidc_client_secret" env:"DOPPEL_OIDC_CLIENT_SECRET" secret:"true"`
	// OIDCRoleClaim names the ID token (or userinfo) claim holding the analyst's role: reviewer,
	// lead or admin, as a string, a list or an object keyed by role; a dotted name such as
	// realm_access.roles reaches into objects. The highest role among its values is taken; a
	// person with none is refused sign-in.
	OIDCRoleClaim string `yaml:"oidc_role_claim" env:"DOPPEL_OIDC_ROLE_CLAIM"`
	// AccessLogRetention is how long an access-log entry (who read which person's data, and when)
	// is kept before the sweep deletes it; 0 keeps every entry. At least 1h when set
	// (docs/access-log.md).
	AccessLogRetention time.Duration `yaml:"access_log_retention" env:"DOPPEL_ACCESS_LOG_RETENTION"`

	// ReconcileAfter is how long after startedAt (or after the started event was read) a
	// verification with no completion is first polled with get-result.
	ReconcileAfter time.Duration `yaml:"reconcile_after" env:"DOPPEL_RECONCILE_AFTER"`
	// ReconcileInterval is the least time between two polls of one signatureId (the vendor asks
	// for no more than one every 10 minutes).
	ReconcileInterval time.Duration `yaml:"reconcile_interval" env:"DOPPEL_RECONCILE_INTERVAL"`
	// ReconcileGiveUp is how long after it started a verification is polled before it is
	// recorded as expired.
	ReconcileGiveUp time.Duration `yaml:"reconcile_give_up" env:"DOPPEL_RECONCILE_GIVE_UP"`
	// ReconcileRetention is how long a settled started verification is kept before it is deleted
	// (0: for ever); the totals of GET /v1/reconciliation count the rows kept.
	ReconcileRetention time.Duration `yaml:"reconcile_retention" env:"DOPPEL_RECONCILE_RETENTION"`
	// ReconcileQPS is the most calls per second each region's polling takes from the region's
	// rate; 0 takes 10% of the region's QPS. Polling and the main path share the rate: polling
	// never takes more than this, so it never starves the main path, and while it is idle the main
	// path has all of it.
	ReconcileQPS float64 `yaml:"reconcile_qps" env:"DOPPEL_RECONCILE_QPS"`
	// ReconcileAlertRatio is the share of verifications recovered by polling in the last hour above
	// which a callbacks_missing alert is published.
	ReconcileAlertRatio float64 `yaml:"reconcile_alert_ratio" env:"DOPPEL_RECONCILE_ALERT_RATIO"`
	// EnrollFailed enrols every verification whose final verdict is FAIL in the vendor's face
	// search (face-search-enroll), so a later attempt with the same face finds it. Off by default:
	// enrolment may be billed.
	EnrollFailed bool `yaml:"enroll_failed" env:"DOPPEL_ENROLL_FAILED"`

	// Evidence shows, on the console's ring page, each account's face and document data from the
	// vendor's get-result (fetched when the page is viewed, kept in memory only, each view logged).
	Evidence bool `yaml:"evidence" env:"DOPPEL_EVIDENCE"`
	// EvidenceCacheTTL is how long fetched evidence stays in memory after it was fetched (at most
	// 15m): a reload within it costs no vendor call, and nothing is kept longer.
	EvidenceCacheTTL time.Duration `yaml:"evidence_cache_ttl" env:"DOPPEL_EVIDENCE_CACHE_TTL"`
	// EvidenceCacheSize bounds the verifications whose evidence is kept in memory at once.
	EvidenceCacheSize int `yaml:"evidence_cache_size" env:"DOPPEL_EVIDENCE_CACHE_SIZE"`
	// EvidenceQPS is the most get-result calls per second the console's evidence takes from each
	// region's rate (shared with the pipeline, whose rate it never exceeds); 0 sets no cap of its own.
	EvidenceQPS float64 `yaml:"evidence_qps" env:"DOPPEL_EVIDENCE_QPS"`
}

// MaxEvidenceCacheTTL bounds DOPPEL_EVIDENCE_CACHE_TTL: evidence is personal data, kept minutes.
const MaxEvidenceCacheTTL = 15 * time.Minute

// reconcileDefaultShare is the share of the vendor rate polling takes when DOPPEL_RECONCILE_QPS is 0.
const reconcileDefaultShare = 0.10

// ServedOverTLS reports whether DOPPEL_PUBLIC_URL says a TLS proxy serves the public listener.
func (c Config) ServedOverTLS() bool {
	return strings.HasPrefix(strings.ToLower(c.PublicURL), "https://")
}

// PollQPS returns the vendor calls per second polling may spend (0: no client-side limit, when
// DOPPEL_ADVANCE_QPS sets none either).
func (c Config) PollQPS() float64 { return c.PollQPSOf(c.AdvanceQPS) }

// PollQPSOf returns the calls per second polling may spend in a region whose rate is regionQPS:
// DOPPEL_RECONCILE_QPS, else 10% of the region's rate (0: no client-side limit).
func (c Config) PollQPSOf(regionQPS float64) float64 {
	if c.ReconcileQPS > 0 {
		return c.ReconcileQPS
	}
	return regionQPS * reconcileDefaultShare
}

// Default returns the configuration used where nothing is set. Connection settings and vendor keys
// have no safe default and must be set.
func Default() Config {
	return Config{
		DatabaseMaxConns:      20,
		MigrateOnStart:        true,
		KafkaGroupID:          "doppel",
		TopicEvents:           "idv.completed",
		TopicAlerts:           "doppel.alerts",
		TopicDLQ:              "idv.completed.dlq",
		TopicStarted:          "idv.started",
		TopicErasures:         "doppel.erasures",
		TopicPartitions:       6,
		CreateTopics:          true,
		AdvanceTimeout:        10 * time.Second,
		AdvanceQPS:            50,
		BreakerFailures:       10,
		BreakerOpenFor:        30 * time.Second,
		Workers:               512,
		MaxEventBytes:         64 << 10,
		CommitInterval:        200 * time.Millisecond,
		StoreBatchSize:        1024,
		StoreFlushers:         1,
		StoreLinger:           2 * time.Millisecond,
		StallAfter:            2 * time.Minute,
		RetryMaxAttempts:      8,
		RetryInitialInterval:  200 * time.Millisecond,
		RetryMaxInterval:      10 * time.Second,
		RetryMaxElapsed:       2 * time.Minute,
		RelayBatchSize:        200,
		RelayInterval:         500 * time.Millisecond,
		HTTPAddr:              ":8080",
		AdminAddr:             "127.0.0.1:9090",
		ReplayMaxChecks:       1000,
		ReplayDailyLimit:      10000,
		LogPseudonymize:       true,
		AuthFailuresPerMinute: 10,
		CallbackTokenInQuery:  true,
		CallbackTimeout:       10 * time.Second,
		RingHighSeveritySize:  5,
		ConsoleSessionTTL:     8 * time.Hour,
		ReviewSLA:             24 * time.Hour,
		CaseCap:               10,
		OIDCRoleClaim:         "roles",
		LogLevel:              "info",
		LogFormat:             "json",
		ShutdownTimeout:       20 * time.Second,
		ReconcileAfter:        15 * time.Minute,
		ReconcileInterval:     10 * time.Minute,
		ReconcileGiveUp:       168 * time.Hour,
		ReconcileRetention:    30 * 24 * time.Hour,
		ReconcileAlertRatio:   0.05,
		Evidence:              true,
		EvidenceCacheTTL:      5 * time.Minute,
		EvidenceCacheSize:     512,
		EvidenceQPS:           10,
	}
}

// Validate reports every problem at once, each naming the variable to set and how.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.DatabaseURL == "" {
		bad("DOPPEL_DATABASE_URL is not set: set it to a PostgreSQL URL, e.g. postgres://doppel@127.0.0.1:5432/doppel?sslmode=disable")
	} else if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DOPPEL_DATABASE_URL must be a postgres:// or postgresql:// URL")
	}
	if c.DatabaseMaxConns < 1 {
		bad("DOPPEL_DATABASE_MAX_CONNS must be at least 1, got %d", c.DatabaseMaxConns)
	}
	if len(c.KafkaBrokers) == 0 {
		bad("DOPPEL_KAFKA_BROKERS is not set: set it to a comma-separated list of host:port, e.g. 127.0.0.1:9092")
	}
	for _, b := range c.KafkaBrokers {
		if _, port, ok := strings.Cut(b, ":"); !ok || port == "" {
			bad("DOPPEL_KAFKA_BROKERS entry %q must be host:port", b)
		}
	}
	for name, topic := range map[string]string{"DOPPEL_KAFKA_GROUP_ID": c.KafkaGroupID,
		"DOPPEL_TOPIC_EVENTS": c.TopicEvents, "DOPPEL_TOPIC_ALERTS": c.TopicAlerts, "DOPPEL_TOPIC_DLQ": c.TopicDLQ,
		"DOPPEL_TOPIC_STARTED": c.TopicStarted, "DOPPEL_TOPIC_ERASURES": c.TopicErasures} {
		if topic == "" {
			bad("%s must not be empty", name)
		}
	}
	if c.TopicEvents != "" && (c.TopicEvents == c.TopicAlerts || c.TopicEvents == c.TopicDLQ || c.TopicAlerts == c.TopicDLQ) {
		bad("DOPPEL_TOPIC_EVENTS, DOPPEL_TOPIC_ALERTS and DOPPEL_TOPIC_DLQ must be three different topics")
	}
	if c.TopicStarted != "" && (c.TopicStarted == c.TopicEvents || c.TopicStarted == c.TopicAlerts || c.TopicStarted == c.TopicDLQ) {
		bad("DOPPEL_TOPIC_STARTED must differ from DOPPEL_TOPIC_EVENTS, DOPPEL_TOPIC_ALERTS and DOPPEL_TOPIC_DLQ")
	}
	if c.TopicErasures != "" && (c.TopicErasures == c.TopicEvents || c.TopicErasures == c.TopicAlerts ||
		c.TopicErasures == c.TopicDLQ || c.TopicErasures == c.TopicStarted) {
		bad("DOPPEL_TOPIC_ERASURES must differ from DOPPEL_TOPIC_EVENTS, DOPPEL_TOPIC_ALERTS, DOPPEL_TOPIC_DLQ and DOPPEL_TOPIC_STARTED")
	}
	if c.Retention < 0 {
		bad("DOPPEL_RETENTION must be 0 (keep everything) or a positive Go duration, e.g. 43800h, got %s", c.Retention)
	}
	if c.TopicPartitions < 1 {
		bad("DOPPEL_TOPIC_PARTITIONS must be at least 1, got %d", c.TopicPartitions)
	}
	if c.TopicReplicationFactor < 0 || c.TopicReplicationFactor > 7 {
		bad("DOPPEL_TOPIC_REPLICATION_FACTOR must be 0 (3 on a cluster of three brokers or more, else 1) or a factor from 1 to 7, got %d", c.TopicReplicationFactor)
	}
	c.validateRegions(bad)
	if c.AdvanceTimeout <= 0 {
		bad("DOPPEL_ADVANCE_TIMEOUT must be positive, e.g. 10s")
	}
	if c.BreakerFailures < 1 {
		bad("DOPPEL_BREAKER_FAILURES must be at least 1, got %d", c.BreakerFailures)
	}
	if c.BreakerOpenFor <= 0 {
		bad("DOPPEL_BREAKER_OPEN_FOR must be positive, e.g. 30s")
	}
	if c.Workers < 1 || c.Workers > 4096 {
		bad("DOPPEL_WORKERS must be between 1 and 4096, got %d", c.Workers)
	}
	if c.MaxEventBytes < 256 {
		bad("DOPPEL_MAX_EVENT_BYTES must be at least 256, got %d", c.MaxEventBytes)
	}
	if c.StoreBatchSize < 1 || c.StoreBatchSize > 10000 {
		bad("DOPPEL_STORE_BATCH_SIZE must be between 1 and 10000, got %d", c.StoreBatchSize)
	}
	if c.StoreLinger < 0 || c.StoreLinger > 100*time.Millisecond {
		bad("DOPPEL_STORE_LINGER must be between 0 and 100ms, got %s", c.StoreLinger)
	}
	if c.StoreFlushers < 1 || c.StoreFlushers > 16 {
		bad("DOPPEL_STORE_FLUSHERS must be between 1 and 16, got %d", c.StoreFlushers)
	}
	if c.CommitInterval <= 0 {
		bad("DOPPEL_COMMIT_INTERVAL must be positive, e.g. 200ms")
	}
	if c.StallAfter <= 0 {
		bad("DOPPEL_STALL_AFTER must be positive, e.g. 2m")
	}
	if c.RetryMaxAttempts < 1 {
		bad("DOPPEL_RETRY_MAX_ATTEMPTS must be at least 1, got %d", c.RetryMaxAttempts)
	}
	if c.RetryInitialInterval <= 0 || c.RetryMaxInterval < c.RetryInitialInterval {
		bad("DOPPEL_RETRY_INITIAL_INTERVAL must be positive and at most DOPPEL_RETRY_MAX_INTERVAL")
	}
	if c.RetryMaxElapsed <= 0 {
		bad("DOPPEL_RETRY_MAX_ELAPSED must be positive, e.g. 2m")
	}
	if c.RelayBatchSize < 1 {
		bad("DOPPEL_RELAY_BATCH_SIZE must be at least 1, got %d", c.RelayBatchSize)
	}
	if c.RelayInterval <= 0 {
		bad("DOPPEL_RELAY_INTERVAL must be positive, e.g. 500ms")
	}
	if err := checkListenAddr(c.HTTPAddr); err != nil {
		bad("DOPPEL_HTTP_ADDR %v, e.g. :8080 or 127.0.0.1:8080", err)
	}
	if err := checkListenAddr(c.AdminAddr); err != nil {
		bad("DOPPEL_ADMIN_ADDR %v, e.g. 127.0.0.1:9090 (metrics, pprof and detailed readiness: keep it private)", err)
	} else if c.AdminAddr == c.HTTPAddr && !strings.HasSuffix(c.AdminAddr, ":0") { // :0 picks a free port each
		bad("DOPPEL_ADMIN_ADDR must differ from DOPPEL_HTTP_ADDR: the operations endpoints stay off the public listener")
	}
	if c.ReplayMaxChecks < 1 {
		bad("DOPPEL_REPLAY_MAX_CHECKS must be at least 1, got %d", c.ReplayMaxChecks)
	}
	if c.PseudonymKey != "" && len(c.PseudonymKey) < 32 {
		bad("DOPPEL_PSEUDONYM_KEY must be at least 32 characters, e.g. the output of `openssl rand -hex 32`")
	}
	if c.ReplayDailyLimit < 0 {
		bad("DOPPEL_REPLAY_DAILY_LIMIT must be 0 (no daily bound) or more, got %d", c.ReplayDailyLimit)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" {
			bad("DOPPEL_PUBLIC_URL must be the public listener's absolute address, e.g. https://doppel.example.com")
		}
	}
	c.validateOIDC(bad)
	if c.AuthFailuresPerMinute < 0 {
		bad("DOPPEL_AUTH_FAILURES_PER_MINUTE must be 0 (no throttling) or positive, got %d", c.AuthFailuresPerMinute)
	}
	if _, err := ParseAPIKeys(c.APIKeys); err != nil {
		bad("%v", err)
	}
	if c.CallbackToken != "" && len(c.CallbackToken) < minSecretLen {
		bad("DOPPEL_CALLBACK_TOKEN must be at least %d characters: generate one with `openssl rand -hex 32`", minSecretLen)
	}
	if c.CallbackHMACSecret != "" && len(c.CallbackHMACSecret) < minSecretLen {
		bad("DOPPEL_CALLBACK_HMAC_SECRET must be at least %d characters: generate one with `openssl rand -hex 32`", minSecretLen)
	}
	for i, secret := range c.CallbackSigningSecrets {
		if err := checkSigningSecret(secret); err != nil {
			bad("DOPPEL_CALLBACK_SIGNING_SECRETS entry %d of %d %v: each entry must be whsec_ followed by a standard base64 key of at least %d bytes, e.g. whsec_$(openssl rand -base64 32)",
				i+1, len(c.CallbackSigningSecrets), err, minSigningKeyBytes)
		}
	}
	if c.CallbackTimeout <= 0 {
		bad("DOPPEL_CALLBACK_TIMEOUT must be positive, e.g. 10s")
	}
	if c.RingHighSeveritySize != 0 && c.RingHighSeveritySize < 2 {
		bad("DOPPEL_RING_HIGH_SEVERITY_SIZE must be 0 (never high) or at least 2 accounts, got %d", c.RingHighSeveritySize)
	}
	c.validateReconcile(bad)
	if c.ReviewSLA <= 0 {
		bad("DOPPEL_REVIEW_SLA must be a positive duration such as 24h, got %s", c.ReviewSLA)
	}
	if c.CaseCap < 0 {
		bad("DOPPEL_CASE_CAP must be 0 (no cap) or a positive number of cases, got %d", c.CaseCap)
	}
	if c.ConsoleSessionTTL <= 0 {
		bad("DOPPEL_CONSOLE_SESSION_TTL must be positive, e.g. 8h")
	}
	if c.EvidenceCacheTTL < time.Second || c.EvidenceCacheTTL > MaxEvidenceCacheTTL {
		bad("DOPPEL_EVIDENCE_CACHE_TTL must be between 1s and %s (evidence is kept in memory minutes, not longer), got %s", MaxEvidenceCacheTTL, c.EvidenceCacheTTL)
	}
	if c.EvidenceCacheSize < 1 {
		bad("DOPPEL_EVIDENCE_CACHE_SIZE must be at least 1 verification, e.g. 512, got %d", c.EvidenceCacheSize)
	}
	if !(c.EvidenceQPS >= 0) {
		bad("DOPPEL_EVIDENCE_QPS must be 0 (no cap of its own) or positive, e.g. 2")
	}
	if c.AccessLogRetention != 0 && c.AccessLogRetention < time.Hour {
		bad("DOPPEL_ACCESS_LOG_RETENTION must be 0 (keep every entry) or at least 1h, e.g. 17520h for two years, got %s", c.AccessLogRetention)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("DOPPEL_LOG_LEVEL must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("DOPPEL_LOG_FORMAT must be json or text, got %q", c.LogFormat)
	}
	if c.ShutdownTimeout <= 0 {
		bad("DOPPEL_SHUTDOWN_TIMEOUT must be positive, e.g. 20s")
	}
	return errors.Join(errs...)
}

// validateReconcile checks the polling settings. Short values are allowed (tests use seconds).
func (c Config) validateReconcile(bad func(string, ...any)) {
	if c.ReconcileAfter <= 0 {
		bad("DOPPEL_RECONCILE_AFTER must be positive, e.g. 15m")
	}
	if c.ReconcileInterval <= 0 {
		bad("DOPPEL_RECONCILE_INTERVAL must be positive, e.g. 10m (the vendor asks for no more than one poll per 10 minutes)")
	}
	if c.ReconcileGiveUp <= c.ReconcileAfter {
		bad("DOPPEL_RECONCILE_GIVE_UP must be longer than DOPPEL_RECONCILE_AFTER, e.g. 168h")
	}
	if c.ReconcileQPS < 0 {
		bad("DOPPEL_RECONCILE_QPS must be 0 (10%% of DOPPEL_ADVANCE_QPS) or positive, got %g", c.ReconcileQPS)
	}
	if c.AdvanceQPS > 0 && c.ReconcileQPS >= c.AdvanceQPS {
		bad("DOPPEL_RECONCILE_QPS (%g) must be below DOPPEL_ADVANCE_QPS (%g): polling takes at most that much of the vendor rate, and the main path must keep some",
			c.ReconcileQPS, c.AdvanceQPS)
	}
	if c.ReconcileRetention != 0 && c.ReconcileRetention < time.Hour {
		bad("DOPPEL_RECONCILE_RETENTION must be 0 (keep for ever) or at least 1h (the recovered share is measured over the last hour), e.g. 720h, got %s", c.ReconcileRetention)
	}
	if c.ReconcileAlertRatio <= 0 || c.ReconcileAlertRatio > 1 {
		bad("DOPPEL_RECONCILE_ALERT_RATIO must be above 0 and at most 1, e.g. 0.05, got %g", c.ReconcileAlertRatio)
	}
}

// validateOIDC checks the single sign-on settings: all three or none, an absolute issuer, and the
// public URL the provider sends people back to.
func (c Config) validateOIDC(bad func(string, ...any)) {
	if c.OIDCIssuer == "" && c.OIDCClientID == "" && c.OIDCClientSecret == "" {
		return
	}
	if c.OIDCIssuer == "" || c.OIDCClientID == "" || c.OIDCClientSecret == "" {
		bad("single sign-on needs DOPPEL_OIDC_ISSUER, DOPPEL_OIDC_CLIENT_ID and DOPPEL_OIDC_CLIENT_SECRET together: set all three, or none")
		return
	}
	if u, err := url.Parse(c.OIDCIssuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("DOPPEL_OIDC_ISSUER must be the provider's issuer URL, e.g. https://login.example.com/realms/risk")
	}
	if c.PublicURL == "" {
		bad("single sign-on needs DOPPEL_PUBLIC_URL: the provider sends people back to DOPPEL_PUBLIC_URL/console/sso/callback")
	}
	if strings.TrimSpace(c.OIDCRoleClaim) == "" {
		bad("DOPPEL_OIDC_ROLE_CLAIM must name the claim holding the role (default roles)")
	}
}

// OIDCRedirectURL is where the provider sends people back after single sign-on.
func (c Config) OIDCRedirectURL() string {
	return strings.TrimSuffix(c.PublicURL, "/") + "/console/sso/callback"
}
