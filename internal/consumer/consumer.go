// Package consumer reads "H5 IDV completed" events from Kafka in a consumer group and runs a handler
// on each, many at once. It retries what is worth retrying, dead-letters what is not (with the
// reason and where the message came from, cut to fit the dead-letter topic's size limit), and
// commits an offset only once every earlier message of its partition is finished, so nothing is
// lost on a crash and nothing is committed unstored. A partition that cannot make progress for
// longer than a bound is reported: logged, observed, and returned by Stalled.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"

	"github.com/doppelhq/doppel/internal/clip"
	"github.com/doppelhq/doppel/internal/pause"
)

// Message is a fetched message with what Config.Route made of it.
type Message struct {
	kafka.Message
	// Routed is what Route returned beside the key (the pipeline's decoded event), so the handler
	// need not parse the message again; nil without Route. A retry gets the same value.
	Routed any
}

// Handler processes one message. It must be idempotent: a message may be delivered again after a
// crash or a rebalance.
type Handler func(ctx context.Context, msg Message) error

// Action is what the consumer does with a handler's error.
type Action int

const (
	// Retry retries with exponential backoff up to the policy's bounds, then dead-letters the message
	// with reason ReasonRetriesExhausted.
	Retry Action = iota
	// Wait retries without limit: the cause (our database, the vendor account, a rate limit) is not
	// the message's fault, so dead-lettering it would be wrong.
	Wait
	// DeadLetter sends the message to the dead-letter topic at once.
	DeadLetter
)

// String is the action's stable snake_case name: what Observer.Retried is told, so an observer
// (metrics' action label) needs no type of this package.
func (a Action) String() string {
	switch a {
	case Retry:
		return "retry"
	case Wait:
		return "wait"
	case DeadLetter:
		return "dead_letter"
	default:
		return "unknown"
	}
}

// Classification is what Config.Classify says about a handler error: the action and its reason.
type Classification struct {
	Action Action
	// Reason is the dead-letter reason, a stable snake_case word.
	Reason string
}

// ReasonRetriesExhausted is the dead-letter reason of a message whose transient failures outlasted
// the retry policy.
const ReasonRetriesExhausted = "retries_exhausted"

// RetryPolicy bounds retries of transient failures.
type RetryPolicy struct {
	MaxAttempts     int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	MaxElapsed      time.Duration
	// WaitMaxInterval caps the backoff of Wait classifications, so recovery is noticed quickly.
	WaitMaxInterval time.Duration
}

// Config configures a Consumer.
type Config struct {
	Brokers  []string
	GroupID  string
	Topic    string
	DLQTopic string
	// Workers is how many messages are handled at once. Messages with the same routing key are
	// handled one after another, so the same signatureId is never handled twice concurrently.
	Workers int
	// MaxInFlight bounds fetched but unfinished messages (in progress or waiting behind their key);
	// fetching stops at the bound. 0 takes twice Workers.
	MaxInFlight    int
	CommitInterval time.Duration
	Retry          RetryPolicy
	// Classify decides what to do with a handler error.
	Classify func(error) Classification
	// Route returns the key that serialises messages (the signatureId), and any value the handler
	// gets with the message (Message.Routed): what the key was read from, decoded once. Nil keys by
	// the message key.
	Route func(kafka.Message) (key []byte, routed any)
	// ShutdownGrace is how long in-flight work may finish after the context is cancelled before it
	// is abandoned (uncommitted, so it is redelivered).
	ShutdownGrace  time.Duration
	SessionTimeout time.Duration
	// StallAfter is how long a partition may have uncommitted messages without its committed
	// offset moving before it is reported as stalled. 0 takes 2 minutes.
	StallAfter time.Duration
	Logger     *slog.Logger
	// Observer receives the consumer's events for metrics; nil ignores them.
	Observer Observer
}

// Observer is told what the consumer does, for metrics.
type Observer interface {
	Finished(topic string, partition int, deadLettered bool, reason string)
	// DeadLetterUnwritable is told of a message finished without a dead letter, because the
	// dead-letter topic refused even the letter without its value.
	DeadLetterUnwritable(topic string, partition int, reason string)
	// Retried is told of a failed attempt the consumer will try again, by its classification's
	// action (Action.String) and reason: plain words, so that an observer imports nothing of the
	// consumer's.
	Retried(action, reason string)
	InFlight(n int)
	// PartitionProgress is told, every few seconds, how long each partition has had uncommitted
	// messages without committing (0 when it has none), and whether that is over the stall bound.
	PartitionProgress(partition int, stuckFor time.Duration, stalled bool)
}

type nopObserver struct{}

func (nopObserver) Finished(string, int, bool, string)         {}
func (nopObserver) DeadLetterUnwritable(string, int, string)   {}
func (nopObserver) Retried(string, string)                     {}
func (nopObserver) InFlight(int)                               {}
func (nopObserver) PartitionProgress(int, time.Duration, bool) {}

func (c *Config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("consumer: no brokers"))
	}
	if c.GroupID == "" || c.Topic == "" || c.DLQTopic == "" {
		errs = append(errs, errors.New("consumer: group id, topic and DLQ topic are required"))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("consumer: workers must be at least 1"))
	}
	if c.Classify == nil {
		errs = append(errs, errors.New("consumer: Classify is required"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.CommitInterval <= 0 {
		c.CommitInterval = 200 * time.Millisecond
	}
	if c.Retry.MaxAttempts <= 0 {
		c.Retry.MaxAttempts = 8
	}
	if c.Retry.InitialInterval <= 0 {
		c.Retry.InitialInterval = 200 * time.Millisecond
	}
	if c.Retry.MaxInterval <= 0 {
		c.Retry.MaxInterval = 10 * time.Second
	}
	if c.Retry.MaxElapsed <= 0 {
		c.Retry.MaxElapsed = 2 * time.Minute
	}
	if c.Retry.WaitMaxInterval <= 0 {
		c.Retry.WaitMaxInterval = 5 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 2 * c.Workers
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 5 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.StallAfter <= 0 {
		c.StallAfter = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Route == nil {
		c.Route = func(m kafka.Message) ([]byte, any) { return m.Key, nil }
	}
}

// Consumer runs the consume loop. Create it with New and start it with Run.
type Consumer struct {
	cfg     Config
	handler Handler
	tracker *offsetTracker
	dlq     *deadLetterWriter
	log     *slog.Logger
	// waitLog holds back the "cannot make progress" lines every waiting worker would log on
	// every retry.
	waitLog *logLimiter
}

// New returns a Consumer for cfg that calls handler for every message.
func New(cfg Config, handler Handler) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Consumer{
		cfg:     cfg,
		handler: handler,
		tracker: newOffsetTracker(time.Now),
		log:     cfg.Logger,
		dlq:     newDeadLetterWriter(cfg.Brokers, cfg.DLQTopic, cfg.Logger),
		waitLog: newLogLimiter(time.Now, repeatLogEvery),
	}, nil
}

// Run consumes until ctx is cancelled or the reader fails for good. On return every finished
// message's offset has been committed (as far as the broker allowed) and in-flight work that did not
// finish within the shutdown grace was abandoned uncommitted, to be redelivered.
func (c *Consumer) Run(ctx context.Context) error {
	// Before the first message: a dead letter is fitted to the limit read here.
	c.dlq.refreshLimit(ctx)
	monitorCtx, stopMonitor := context.WithCancel(ctx)
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		newStallMonitor(c.cfg.Topic, c.cfg.StallAfter, c.tracker, c.cfg.Observer, c.log).run(monitorCtx)
	}()
	defer func() { stopMonitor(); <-monitorDone }()

	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.cfg.Brokers,
		GroupID:           c.cfg.GroupID,
		Topic:             c.cfg.Topic,
		MinBytes:          1,
		MaxBytes:          10 << 20,
		MaxWait:           250 * time.Millisecond,
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second,
		SessionTimeout:    c.cfg.SessionTimeout,
		RebalanceTimeout:  c.cfg.SessionTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		ReadBackoffMin:    50 * time.Millisecond,
		ReadBackoffMax:    time.Second,
		// A bounded prefetch queue is part of the backpressure: a slow vendor stops fetching.
		QueueCapacity:         256,
		WatchPartitionChanges: true,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			c.log.Warn("kafka reader", "detail", fmt.Sprintf(msg, args...))
		}),
	})

	// Work outlives ctx by the shutdown grace, so that a SIGTERM lets in-flight events finish.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.NewTimer(c.cfg.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-workCtx.Done():
		}
	})
	defer stopGrace()

	d := newDispatcher(c.cfg.Workers, c.cfg.MaxInFlight)
	var workers sync.WaitGroup
	for range c.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			c.work(workCtx, d)
		}()
	}

	commitCtx, stopCommitting := context.WithCancel(context.WithoutCancel(ctx))
	committerDone := make(chan struct{})
	go func() {
		defer close(committerDone)
		c.commitLoop(commitCtx, reader)
	}()

	fetchErr := c.fetchLoop(ctx, reader, d)

	close(d.work)
	workers.Wait()
	cancelWork()
	stopCommitting()
	<-committerDone
	// Final commit of whatever finished, with a fresh bounded context since ctx is done.
	finalCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	c.commit(finalCtx, reader)
	cancel()

	return errors.Join(fetchErr, reader.Close(), c.dlq.close())
}

func (c *Consumer) fetchLoop(ctx context.Context, reader *kafka.Reader, d *dispatcher) error {
	for {
		// Backpressure: with MaxInFlight messages unfinished, stop fetching until one finishes.
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		msg, err := reader.FetchMessage(ctx)
		if err != nil {
			<-d.slots
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			c.log.Error("fetch message", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		c.tracker.add(msg.Partition, msg.Offset)
		c.cfg.Observer.InFlight(c.tracker.inFlight())
		key, routed := c.cfg.Route(msg)
		if !d.dispatch(ctx, string(key), Message{Message: msg, Routed: routed}) {
			// Not handed to a worker: it stays unfinished and uncommitted, to be fetched again.
			return nil
		}
	}
}

// dispatcher hands messages to a pool of workers: any free worker takes the next message, except
// that messages with the same key run one after another, in fetch order, so one signatureId is never
// searched twice at once. A slow message holds up only the messages with its own key.
type dispatcher struct {
	work  chan keyed
	slots chan struct{} // one per unfinished message: bounds memory when the vendor is slow

	mu     sync.Mutex
	queued map[string][]Message // keys in progress, with the messages waiting behind them
}

type keyed struct {
	key string
	msg Message
}

func newDispatcher(workers, maxInFlight int) *dispatcher {
	return &dispatcher{
		work:   make(chan keyed, workers),
		slots:  make(chan struct{}, max(maxInFlight, workers)),
		queued: make(map[string][]Message),
	}
}

// dispatch queues msg behind a message with the same key in progress, or hands it to the workers.
func (d *dispatcher) dispatch(ctx context.Context, key string, msg Message) bool {
	d.mu.Lock()
	if waiting, busy := d.queued[key]; busy {
		d.queued[key] = append(waiting, msg)
		d.mu.Unlock()
		return true
	}
	d.queued[key] = nil
	d.mu.Unlock()
	select {
	case d.work <- keyed{key: key, msg: msg}:
		return true
	case <-ctx.Done():
		return false
	}
}

// next returns the message waiting behind key, or false (and forgets key) when none is.
func (d *dispatcher) next(key string) (Message, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	waiting := d.queued[key]
	if len(waiting) == 0 {
		delete(d.queued, key)
		return Message{}, false
	}
	d.queued[key] = waiting[1:]
	return waiting[0], true
}

func (c *Consumer) work(ctx context.Context, d *dispatcher) {
	for item := range d.work {
		msg := item.msg
		for {
			if ctx.Err() != nil {
				break // abandoned: not finished, not committed, fetched again after a restart
			}
			switch r := c.process(ctx, msg); r.outcome {
			case processed, deadLettered:
				c.tracker.finish(msg.Partition, msg.Offset)
				c.cfg.Observer.Finished(msg.Topic, msg.Partition, r.outcome == deadLettered, r.reason)
			case unwritableLetter:
				c.tracker.finish(msg.Partition, msg.Offset)
				c.cfg.Observer.DeadLetterUnwritable(msg.Topic, msg.Partition, r.reason)
			case unfinished:
			}
			<-d.slots
			var more bool
			if msg, more = d.next(item.key); !more {
				break
			}
		}
	}
}

// outcome is what became of a message.
type outcome int

const (
	// unfinished: the context ended first; the message is neither stored nor dead-lettered and
	// must not be committed.
	unfinished outcome = iota
	processed
	deadLettered
	// unwritableLetter: to be dead-lettered, but the dead-letter topic refused it for good; it was
	// logged in full and is committed past.
	unwritableLetter
)

type result struct {
	outcome outcome
	reason  string // the dead-letter reason
}

// process runs the handler with the retry policy.
func (c *Consumer) process(ctx context.Context, msg Message) result {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     c.cfg.Retry.InitialInterval,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         c.cfg.Retry.MaxInterval,
	}
	bo.Reset()
	var (
		attempts     int           // every failed try, for the dead letter
		retries      int           // tries that failed transiently: only these spend the budget
		retryWaited  time.Duration // backoff spent on transient failures
		firstFailure time.Time
	)
	for {
		err := c.handler(ctx, msg)
		if err == nil {
			return result{outcome: processed}
		}
		if ctx.Err() != nil {
			return result{}
		}
		attempts++
		if firstFailure.IsZero() {
			firstFailure = time.Now()
		}
		d := c.cfg.Classify(err)
		log := c.log.With("partition", msg.Partition, "offset", msg.Offset, "key", string(msg.Key),
			"attempt", attempts, "error", err)
		wait := bo.NextBackOff()
		switch d.Action {
		case DeadLetter:
			return c.deadLetter(ctx, msg.Message, d.Reason, err, attempts, firstFailure)
		case Retry:
			retries++
			if retries >= c.cfg.Retry.MaxAttempts || retryWaited+wait > c.cfg.Retry.MaxElapsed {
				log.Error("retries exhausted, dead-lettering")
				return c.deadLetter(ctx, msg.Message, ReasonRetriesExhausted, err, attempts, firstFailure)
			}
			retryWaited += wait
			c.tracker.block(msg.Partition, d.Reason+": "+err.Error())
			log.Warn("transient failure, retrying", "retry_in", wait)
		case Wait:
			// Waiting (vendor account, open circuit, database down) does not spend the retry
			// budget: the message is not at fault, so it must never be dead-lettered for it.
			wait = min(wait, c.cfg.Retry.WaitMaxInterval)
			c.tracker.block(msg.Partition, d.Reason+": "+err.Error())
			if ok, suppressed := c.waitLog.allow("wait:" + d.Reason); ok {
				log.Warn("cannot make progress, waiting", "reason", d.Reason, "retry_in", wait,
					"similar_lines_suppressed", suppressed)
			}
		}
		c.cfg.Observer.Retried(d.Action.String(), d.Reason)
		if !pause.For(ctx, wait) {
			return result{}
		}
	}
}

// deadLetter writes the message to the dead-letter topic with why and from where, cut to fit the
// topic's size limit; see deadLetterWriter.write for what is retried.
func (c *Consumer) deadLetter(ctx context.Context, msg kafka.Message, reason string, cause error, attempts int, firstFailure time.Time) result {
	l := newLetter(msg,
		kafka.Header{Key: HeaderReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderError, Value: []byte(clip.Bytes(cause.Error(), 1024))},
		kafka.Header{Key: HeaderAttempts, Value: []byte(strconv.Itoa(attempts))},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderSourcePart, Value: []byte(strconv.Itoa(msg.Partition))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		kafka.Header{Key: HeaderFirstFailureAt, Value: []byte(firstFailure.UTC().Format(time.RFC3339Nano))},
	)
	blocked := func(err error) {
		c.tracker.block(msg.Partition, "dead-letter write failing: "+err.Error())
		if ok, suppressed := c.waitLog.allow("dead_letter_write"); ok {
			c.log.Error("write dead letter", "partition", msg.Partition, "offset", msg.Offset, "error", err,
				"similar_lines_suppressed", suppressed)
		}
	}
	switch c.dlq.write(ctx, l, msg, blocked) {
	case written:
		c.log.Warn("dead-lettered", "partition", msg.Partition, "offset", msg.Offset,
			"reason", reason, "error", cause)
		return result{outcome: deadLettered, reason: reason}
	case unwritable:
		return result{outcome: unwritableLetter, reason: reason}
	default:
		return result{}
	}
}

func (c *Consumer) commitLoop(ctx context.Context, reader *kafka.Reader) {
	t := time.NewTicker(c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.commit(ctx, reader)
			c.cfg.Observer.InFlight(c.tracker.inFlight())
		}
	}
}

// commit commits the finished prefix of every partition; a failure is retried on the next tick.
func (c *Consumer) commit(ctx context.Context, reader *kafka.Reader) {
	ready := c.tracker.committable()
	if len(ready) == 0 {
		return
	}
	msgs := make([]kafka.Message, 0, len(ready))
	for p, off := range ready {
		msgs = append(msgs, kafka.Message{Topic: c.cfg.Topic, Partition: p, Offset: off})
	}
	if err := reader.CommitMessages(ctx, msgs...); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("commit offsets", "error", err)
		}
		return
	}
	for p, off := range ready {
		c.tracker.markCommitted(p, off)
	}
}
