// Package relay publishes the alerts waiting in the PostgreSQL outbox to the alert topic and marks
// them published. An alert is written in the same transaction as its check, so a crash loses none;
// one published but not yet marked goes out again with the same alertId (at least once).
package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/topic"
)

// Outbox is where alerts wait; postgres.Store implements it.
type Outbox interface {
	PublishAlerts(ctx context.Context, limit int, publish func(context.Context, []duplicate.Alert) error) (int, error)
}

// Config configures a Relay.
type Config struct {
	Brokers   []string
	Topic     string
	BatchSize int
	// Interval is how often the outbox is polled when nobody calls Notify.
	Interval time.Duration
	Logger   *slog.Logger
	// OnPublished is told how many alerts went out, for metrics; may be nil.
	OnPublished func(n int)
}

// Relay drains the outbox. Create it with New, start Run, and call Notify after a commit that wrote
// an alert so it goes out at once rather than at the next poll.
type Relay struct {
	cfg    Config
	outbox Outbox
	writer *kafka.Writer
	wake   chan struct{}
	log    *slog.Logger
}

// New returns a Relay that publishes from outbox to cfg.Topic.
func New(cfg Config, outbox Outbox) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 200
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		cfg:    cfg,
		outbox: outbox,
		wake:   make(chan struct{}, 1),
		log:    cfg.Logger,
		// Acknowledged by every in-sync replica before a row is marked published; the same
		// partition per userId as Java producers.
		writer: topic.NewWriter(cfg.Brokers, cfg.Topic, topic.WriterConfig{
			BatchSize:    cfg.BatchSize,
			BatchTimeout: 2 * time.Millisecond, // kafka-go's 1 s default would delay every alert
		}),
	}
}

// Notify wakes the relay without blocking.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx is cancelled, then makes one last bounded attempt to drain the outbox.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	failures := 0
	for {
		n, err := r.outbox.PublishAlerts(ctx, r.cfg.BatchSize, r.publish)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			wait := min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)
			r.log.Warn("publish alerts", "error", err, "retry_in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		case err == nil:
			failures = 0
			if n > 0 && r.cfg.OnPublished != nil {
				r.cfg.OnPublished(n)
			}
			if n == r.cfg.BatchSize {
				continue // more are probably waiting
			}
		}
		select {
		case <-ctx.Done():
			return r.drain(ctx)
		case <-r.wake:
		case <-t.C:
		}
	}
}

func (r *Relay) drain(ctx context.Context) error {
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	for {
		n, err := r.outbox.PublishAlerts(drainCtx, r.cfg.BatchSize, r.publish)
		if err != nil || n < r.cfg.BatchSize {
			if err != nil {
				r.log.Warn("final outbox drain", "error", err)
			}
			return r.writer.Close()
		}
	}
}

func (r *Relay) publish(ctx context.Context, alerts []duplicate.Alert) error {
	msgs := make([]kafka.Message, len(alerts))
	for i, a := range alerts {
		value, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encode alert %s: %w", a.AlertID, err)
		}
		msgs[i] = kafka.Message{
			Key:   []byte(a.UserID),
			Value: value,
			Headers: []kafka.Header{
				{Key: "alert-id", Value: []byte(a.AlertID)},
				{Key: "alert-type", Value: []byte(a.Type)},
			},
		}
	}
	if err := r.writer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("write %d alerts to %s: %w", len(msgs), r.cfg.Topic, err)
	}
	r.log.Debug("alerts published", "count", len(msgs))
	return nil
}
