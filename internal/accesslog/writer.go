package accesslog

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ErrUnavailable is what Record returns when it could not queue an entry: the queue stayed full
// for Config.MaxWait (the database has not taken entries for a while) or the writer is closed. The
// caller must then not show the data: a read that cannot be recorded is refused (HTTP 503), since
// an access log that silently misses reads is worth little to the people it protects.
var ErrUnavailable = errors.New("the access log cannot take the entry: the read is refused until it can")

// Sink stores a batch of entries; postgres.Store implements it.
type Sink interface {
	InsertAccessLog(ctx context.Context, entries []Entry) error
}

// Config configures a Writer. Zero values take the defaults.
type Config struct {
	// BatchSize is the most entries one write carries (default 500).
	BatchSize int
	// FlushInterval is the longest an entry waits before it is written (default 100 ms).
	FlushInterval time.Duration
	// QueueSize is how many entries may wait to be written (default 10,000: at 1,000 reads a
	// second, ten seconds of a database that does not answer).
	QueueSize int
	// MaxWait is how long Record waits for room in a full queue before it refuses the read
	// (default 2 s).
	MaxWait time.Duration
	// WriteTimeout bounds one write (default 10 s); a failed write is tried again, with backoff,
	// until it succeeds or the writer is closed.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// OnWritten, OnRefused and OnLost are told how many entries were stored, refused (Record
	// returned ErrUnavailable), or lost (still unwritten when Close gave up); any may be nil.
	OnWritten func(n int)
	OnRefused func()
	OnLost    func(n int)
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 500
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 100 * time.Millisecond
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 10000
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 2 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnWritten == nil {
		c.OnWritten = func(int) {}
	}
	if c.OnRefused == nil {
		c.OnRefused = func() {}
	}
	if c.OnLost == nil {
		c.OnLost = func(int) {}
	}
}

// Writer queues entries and writes them in batches from one goroutine: every BatchSize entries or
// FlushInterval, whichever comes first. Create it with NewWriter and stop it with Close once
// nothing records any more (after the HTTP server has stopped), so that the last reads are
// written too.
type Writer struct {
	sink    Sink
	cfg     Config
	queue   chan Entry
	flushes chan chan struct{}
	// mu makes Close wait for the Record calls under way (each holds it for reading), so that no
	// entry is queued after the loop has drained the queue for the last time.
	mu     sync.RWMutex
	closed bool
	stop   chan struct{}
	done   chan struct{}
	// stopCtx ends the retries of a write the database keeps refusing once Close gives up.
	stopCtx    context.Context
	cancelStop context.CancelFunc
}

// NewWriter starts a writer into sink.
func NewWriter(sink Sink, cfg Config) *Writer {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{sink: sink, cfg: cfg, queue: make(chan Entry, cfg.QueueSize), flushes: make(chan chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{}), stopCtx: ctx, cancelStop: cancel}
	go w.loop()
	return w
}

// Record queues e; it costs a channel send while the queue has room. When the queue is full it
// waits up to MaxWait for room, then returns ErrUnavailable (counted and logged): the caller
// refuses the read rather than show data without a record of it.
func (w *Writer) Record(ctx context.Context, e Entry) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return w.refuse("closed")
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	select {
	case w.queue <- e:
		return nil
	default:
	}
	t := time.NewTimer(w.cfg.MaxWait)
	defer t.Stop()
	select {
	case w.queue <- e:
		return nil
	case <-t.C:
		return w.refuse("full")
	case <-ctx.Done():
		return w.refuse("request ended")
	}
}

func (w *Writer) refuse(why string) error {
	w.cfg.OnRefused()
	w.cfg.Logger.Error("access log: a read was refused because its entry could not be queued", "why", why,
		"queued", len(w.queue))
	return ErrUnavailable
}

// Flush returns once every entry queued before the call is stored (or ctx ends): the access-log
// query and the subject export call it, so that they show the reads made up to the moment.
func (w *Writer) Flush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case w.flushes <- ack:
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking entries and writes those still queued, trying until ctx ends; what is then
// still unwritten is counted as lost and logged with its number. Call it once the readers have
// stopped.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		w.cancelStop()
		<-w.done
		return ctx.Err()
	}
}

func (w *Writer) loop() {
	defer close(w.done)
	defer w.cancelStop()
	batch := make([]Entry, 0, w.cfg.BatchSize)
	tick := time.NewTicker(w.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
			if len(batch) >= w.cfg.BatchSize {
				batch = w.write(batch)
			}
		case <-tick.C:
			batch = w.write(batch)
		case ack := <-w.flushes:
			batch = w.drain(batch)
			close(ack)
		case <-w.stop:
			batch = w.drain(batch)
			if n := len(batch) + len(w.queue); n > 0 { // closed: nothing is queued any more
				w.cfg.OnLost(n)
				w.cfg.Logger.Error("access log: entries lost at shutdown: the database did not take them in time", "entries", n)
			}
			return
		}
	}
}

// drain writes everything queued now, in batches.
func (w *Writer) drain(batch []Entry) []Entry {
	for {
		select {
		case e := <-w.queue:
			batch = append(batch, e)
			if len(batch) >= w.cfg.BatchSize {
				if batch = w.write(batch); len(batch) > 0 {
					return batch // Close gave up
				}
			}
		default:
			return w.write(batch)
		}
	}
}

// write stores batch, trying again with backoff while the database refuses it, and returns what
// is left unwritten: nothing, unless Close gave up.
func (w *Writer) write(batch []Entry) []Entry {
	if len(batch) == 0 {
		return batch
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(w.stopCtx, w.cfg.WriteTimeout)
		err := w.sink.InsertAccessLog(ctx, batch)
		cancel()
		if err == nil {
			w.cfg.OnWritten(len(batch))
			return batch[:0]
		}
		w.cfg.Logger.Warn("access log: write failed; trying again", "entries", len(batch), "attempt", attempt, "error", err)
		select {
		case <-w.stopCtx.Done():
			return batch
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
