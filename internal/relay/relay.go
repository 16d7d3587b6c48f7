// Package relay publishes the alerts waiting in the PostgreSQL outbox to the alert topic and marks
// them published, each alert once, even across a crash. An alert is written in the same
// transaction as its check, so a crash loses none. A crash between the broker's acknowledgement and
// the mark leaves an alert on the topic and unmarked; before a poll publishes what the outbox holds
// unmarked, it reads the alert topic back and marks what it finds there instead of publishing it
// again (readback.go).
//
// What remains, and would publish an alert twice with the same alertId (subscribers still
// deduplicate on it):
//   - another instance's handed-over alert whose write is still in flight SettleFor after its
//     detection (a broker that takes seconds to acknowledge): this poll claims it, reads the topic
//     before that write lands, and publishes it too. A crash changes nothing here; it is the window
//     SettleFor already had.
//   - a write a killed process had sent, appended by the broker a few milliseconds after another
//     running instance claimed the alert and read the end offsets (the killed process's own
//     restart comes far too late to meet it).
//   - a message stamped more than ReadBackMargin before its alert's detection time, that is, clocks
//     of two hosts that disagree by more than the margin (a minute by default).
//   - an alert left unmarked for longer than the topic's retention: its message is gone.
//
// callbacks_missing alerts (PublishOne) are published by the reconciliation poller in its own
// transaction and remain at least once.
package relay

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/pause"
	"github.com/doppelhq/doppel/internal/topic"
)

// Outbox is where alerts wait; postgres.Store implements it.
type Outbox interface {
	// PublishSettledAlerts claims unpublished alerts detected at least settledFor ago, except
	// those in exclude, hands them to publish and marks them published when it returns nil.
	PublishSettledAlerts(ctx context.Context, limit int, settledFor time.Duration, exclude []string,
		publish func(context.Context, []duplicate.Alert) error) (int, error)
	// MarkPublished marks alerts published.
	MarkPublished(ctx context.Context, alertIDs []string) error
	// MarkFoundPublished marks published the unmarked alerts of alertIDs, found on the topic,
	// except those another transaction holds; it returns how many it marked and the ids it skipped.
	MarkFoundPublished(ctx context.Context, alertIDs []string) (int, []string, error)
}

// Config configures a Relay.
type Config struct {
	Brokers   []string
	Topic     string
	BatchSize int
	// Interval is how often the outbox is polled for alerts nobody handed over.
	Interval time.Duration
	// SettleFor is how old an unpublished alert must be before a poll publishes it: younger ones
	// are still on their way through the relay of the instance that committed them, and claiming
	// them too would publish them twice. 0 takes 2 seconds.
	SettleFor time.Duration
	// ReadBackMargin is how long before the oldest alert a poll claimed the read-back of the topic
	// starts: a message is stamped by the clock of the host that published it, the detection time
	// by the clock of the host that detected it. 0 takes a minute.
	ReadBackMargin time.Duration
	Logger         *slog.Logger
	// OnPublished is told how many alerts went out, for metrics; may be nil.
	OnPublished func(n int)
	// OnReadBack is told how many messages each read-back of the topic read; may be nil.
	OnReadBack func(messages int)
}

// Relay publishes alerts. The committer hands each committed alert over (Handoff): the relay
// publishes it at once, with whatever else was handed over meanwhile, and then marks it published,
// without reading it back. The outbox stays the source of truth: a poll every Interval publishes
// what was never handed over or could not be published (a crash between commit and publish,
// another process's re-runs, a broker that was down), once it has settled, after reading the topic
// back for what is already there (a crash between publish and mark). Create it with New and start
// Run.
type Relay struct {
	cfg     Config
	outbox  Outbox
	writer  *kafka.Writer
	handoff chan duplicate.Alert
	wake    chan struct{}
	log     *slog.Logger

	// mu guards inFlight, the alerts handed over and not yet marked, which a poll must leave
	// alone, and toMark, those of them published and waiting for markLoop.
	mu       sync.Mutex
	inFlight map[string]struct{}
	toMark   []duplicate.Alert
	markWake chan struct{}

	// Only Run's goroutine (polls, then the drain) touches these. client reads the topic back;
	// read is what it has read; foundElsewhere, the alertIds the last read found that its poll did
	// not claim, to mark once the claim has committed; held, alertIds found on the topic whose rows
	// another poll held, unmarked, when they were to be marked.
	client         *kafka.Client
	closeClient    func()
	read           coverage
	foundElsewhere []string
	held           map[string]struct{}
}

// relayPartitionBatch bounds the alerts of one write sent to one partition in one request.
const relayPartitionBatch = 64

// handoffFactor times BatchSize is how many handed-over alerts may wait; past it a handoff is
// dropped, and the alert goes out with the next poll instead.
const handoffFactor = 8

// New returns a Relay that publishes from outbox to cfg.Topic.
func New(cfg Config, outbox Outbox) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 200
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.SettleFor <= 0 {
		cfg.SettleFor = 2 * time.Second
	}
	if cfg.ReadBackMargin <= 0 {
		cfg.ReadBackMargin = time.Minute
	}
	client, closeClient := topic.NewClient(cfg.Brokers, 10*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{
		cfg:         cfg,
		outbox:      outbox,
		handoff:     make(chan duplicate.Alert, handoffFactor*cfg.BatchSize),
		wake:        make(chan struct{}, 1),
		log:         cfg.Logger,
		inFlight:    map[string]struct{}{},
		markWake:    make(chan struct{}, 1),
		client:      client,
		closeClient: closeClient,
		held:        map[string]struct{}{},
		// Acknowledged by every in-sync replica before a row is marked published; the same
		// partition per userId as Java producers.
		writer: topic.NewWriter(cfg.Brokers, cfg.Topic, topic.WriterConfig{
			// kafka-go allocates room for BatchSize messages in every partition's batch of every
			// write; a write of BatchSize alerts spreads them over the partitions.
			BatchSize: min(cfg.BatchSize, relayPartitionBatch),
			// Each write hands over its whole batch and nothing else writes meanwhile, so waiting
			// for more (kafka-go's 1 s default; 2 ms before) only delayed every alert.
			BatchTimeout: 50 * time.Microsecond,
		}),
	}
}

// Handoff gives the relay an alert its transaction has committed, to publish now. It never
// blocks: when too many wait, the alert is left to the next poll.
func (r *Relay) Handoff(a duplicate.Alert) {
	r.mu.Lock()
	r.inFlight[a.AlertID] = struct{}{}
	r.mu.Unlock()
	select {
	case r.handoff <- a:
	default:
		r.settle([]duplicate.Alert{a})
	}
}

// Notify asks for a poll of the outbox now, without blocking: for alerts written by a path that
// does not hand them over (re-runs, polling). They still wait to settle.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx is cancelled, then makes one last bounded attempt to drain the outbox.
func (r *Relay) Run(ctx context.Context) error {
	markCtx, stopMarking := context.WithCancel(context.WithoutCancel(ctx))
	marked := make(chan struct{})
	go func() {
		defer close(marked)
		r.markLoop(markCtx)
	}()
	stopMarkLoop := func() {
		stopMarking()
		<-marked
	}
	defer stopMarkLoop()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	failures := 0
	poll := true // at start: what a previous run left
	for {
		if poll {
			n, err := r.poll(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				failures++
				wait := min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)
				r.log.Warn("publish alerts", "error", err, "retry_in", wait)
				if !pause.For(ctx, wait) {
					return r.drain(ctx, stopMarkLoop)
				}
				continue
			case err == nil:
				failures = 0
				poll = n == r.cfg.BatchSize // more are probably waiting
			}
		}
		select {
		case <-ctx.Done():
			return r.drain(ctx, stopMarkLoop)
		case a := <-r.handoff:
			r.publishHandedOver(ctx, a)
		case <-r.wake:
			poll = true
		case <-t.C:
			poll = true
		}
	}
}

// publishHandedOver publishes first and whatever else was handed over meanwhile, up to a batch,
// and queues them to be marked. What fails is left to the polls.
func (r *Relay) publishHandedOver(ctx context.Context, first duplicate.Alert) {
	batch := []duplicate.Alert{first}
	for len(batch) < r.cfg.BatchSize {
		select {
		case a := <-r.handoff:
			batch = append(batch, a)
			continue
		default:
		}
		break
	}
	if err := r.publish(ctx, batch); err != nil {
		r.settle(batch)
		r.log.Warn("publish handed-over alerts; the outbox poll will retry them", "count", len(batch), "error", err)
		return
	}
	if r.cfg.OnPublished != nil {
		r.cfg.OnPublished(len(batch))
	}
	r.mu.Lock()
	r.toMark = append(r.toMark, batch...)
	r.mu.Unlock()
	select {
	case r.markWake <- struct{}{}:
	default:
	}
}

// markLoop marks published alerts in the outbox, several at a time and at most one statement per
// markSpacing: marking each alert as it goes out cost one commit (a WAL flush) per alert, which
// slowed the check commits sharing the WAL. Until marked, an alert stays in flight, so no poll
// publishes it again; one published and never marked (a crash) goes out again after a restart.
func (r *Relay) markLoop(ctx context.Context) {
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.markWake:
		}
		for {
			r.mu.Lock()
			batch := r.toMark
			r.toMark = nil
			r.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			started := time.Now()
			if err := r.outbox.MarkPublished(ctx, alertIDs(batch)); err != nil {
				r.mu.Lock()
				r.toMark = append(batch, r.toMark...)
				r.mu.Unlock()
				if ctx.Err() != nil {
					return
				}
				failures++
				r.log.Warn("mark alerts published", "count", len(batch), "error", err)
				if !pause.For(ctx, min(time.Duration(failures)*200*time.Millisecond, 5*time.Second)) {
					return
				}
				continue
			}
			failures = 0
			r.settle(batch)
			if !pause.For(ctx, markSpacing-time.Since(started)) {
				return
			}
		}
	}
}

func alertIDs(alerts []duplicate.Alert) []string {
	ids := make([]string, len(alerts))
	for i, a := range alerts {
		ids[i] = a.AlertID
	}
	return ids
}

// markSpacing is the least time between two marking statements.
const markSpacing = 20 * time.Millisecond

// settle forgets alerts handed over: polls may claim them from now on.
func (r *Relay) settle(alerts []duplicate.Alert) {
	r.mu.Lock()
	for _, a := range alerts {
		delete(r.inFlight, a.AlertID)
	}
	r.mu.Unlock()
}

// poll publishes one batch of settled alerts from the outbox, leaving those handed over alone, and
// returns how many it claimed. The alerts of the batch found on the topic are marked, not
// published again.
func (r *Relay) poll(ctx context.Context) (int, error) {
	r.mu.Lock()
	exclude := make([]string, 0, len(r.inFlight))
	for id := range r.inFlight {
		exclude = append(exclude, id)
	}
	r.mu.Unlock()
	published, read := 0, 0
	n, err := r.outbox.PublishSettledAlerts(ctx, r.cfg.BatchSize, r.cfg.SettleFor, exclude,
		func(ctx context.Context, alerts []duplicate.Alert) error {
			var err error
			published, read, err = r.publishUnlessOnTopic(ctx, alerts)
			return err
		})
	if err == nil && n > 0 {
		err = r.markFoundElsewhere(ctx)
	}
	if err != nil {
		// What the read found is marked only if the claim commits: read again next time.
		r.read, r.foundElsewhere = coverage{}, nil
		return n, err
	}
	if n > published {
		r.log.Info("alerts already on the topic marked published, not published again",
			"count", n-published, "claimed", n, "messages_read", read)
	}
	if published > 0 && r.cfg.OnPublished != nil {
		r.cfg.OnPublished(published)
	}
	return n, nil
}

// publishUnlessOnTopic publishes the alerts a poll claimed that the topic does not hold yet, and
// returns how many, and how many messages it read back. The poll marks them all when it returns
// nil.
func (r *Relay) publishUnlessOnTopic(ctx context.Context, alerts []duplicate.Alert) (published, read int, err error) {
	oldest := alerts[0].DetectedAt
	for _, a := range alerts[1:] {
		if a.DetectedAt.Before(oldest) {
			oldest = a.DetectedAt
		}
	}
	onTopic, read, err := r.readBack(ctx, oldest)
	if err != nil {
		return 0, read, fmt.Errorf("read %s back before publishing %d alerts: %w", r.cfg.Topic, len(alerts), err)
	}
	for id := range r.held {
		onTopic[id] = struct{}{}
	}
	rest := make([]duplicate.Alert, 0, len(alerts))
	for _, a := range alerts {
		if _, ok := onTopic[a.AlertID]; ok {
			delete(onTopic, a.AlertID)
			continue
		}
		rest = append(rest, a)
	}
	r.foundElsewhere = r.foundElsewhere[:0]
	for id := range onTopic {
		r.foundElsewhere = append(r.foundElsewhere, id)
	}
	if len(rest) == 0 {
		return 0, read, nil
	}
	return len(rest), read, r.publish(ctx, rest)
}

// markFoundElsewhere marks published the alerts the last read-back found on the topic that its
// poll did not claim, and keeps those another poll held. It runs after a poll that claimed alerts,
// and so read the topic back, has committed.
func (r *Relay) markFoundElsewhere(ctx context.Context) error {
	if len(r.foundElsewhere) == 0 {
		// Every id held before was in the batch the poll has just marked.
		clear(r.held)
		return nil
	}
	marked, held, err := r.outbox.MarkFoundPublished(ctx, r.foundElsewhere)
	if err != nil {
		return err
	}
	r.foundElsewhere = nil
	r.held = make(map[string]struct{}, len(held))
	for _, id := range held {
		r.held[id] = struct{}{}
	}
	if marked > 0 {
		r.log.Info("unclaimed alerts found on the topic marked published", "count", marked, "held_by_another_poll", len(held))
	}
	return nil
}

// drain publishes what was handed over and marks it, then publishes the settled alerts the outbox
// holds, within a few seconds. stopMarkLoop stops markLoop first, so the last marks are made here.
func (r *Relay) drain(ctx context.Context, stopMarkLoop func()) error {
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	stopMarkLoop()
	for {
		select {
		case a := <-r.handoff:
			r.publishHandedOver(drainCtx, a)
			continue
		default:
		}
		break
	}
	r.mu.Lock()
	last := r.toMark
	r.toMark = nil
	r.mu.Unlock()
	if len(last) > 0 {
		if err := r.outbox.MarkPublished(drainCtx, alertIDs(last)); err != nil {
			r.log.Warn("mark alerts published; they go out again after a restart", "count", len(last), "error", err)
		}
	}
	for {
		n, err := r.poll(drainCtx)
		if err != nil || n < r.cfg.BatchSize {
			if err != nil {
				r.log.Warn("final outbox drain", "error", err)
			}
			r.closeClient()
			return r.writer.Close()
		}
	}
}

func (r *Relay) publish(ctx context.Context, alerts []duplicate.Alert) error {
	msgs := make([]kafka.Message, len(alerts))
	for i, a := range alerts {
		m, err := Message(a)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	if err := r.writer.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("write %d alerts to %s: %w", len(msgs), r.cfg.Topic, err)
	}
	r.log.Debug("alerts published", "count", len(msgs))
	return nil
}
