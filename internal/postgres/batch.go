package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Batcher puts the per-event database work of many workers into shared round trips: while one
// batch is being written or read, new requests queue up and go together in the next one (group
// commit). The batch size follows the queue: at low load a request goes out at once, alone; at high
// load one transaction carries up to maxBatch checks (and MaxBatchLinks links) and one query answers
// up to maxBatch look-ups, which is what lets the pipeline keep up with a fast vendor. It
// implements duplicate.Store.
type Batcher struct {
	store   *Store
	saves   *group[saveRequest]
	lookups *group[lookupRequest]
}

// BatchObserver is told about every round trip of a Batcher, for metrics; metrics.Metrics
// implements it.
type BatchObserver interface {
	// StoreBatch reports one round trip of kind ("save" or "lookup"): how long each of its
	// requests waited in the queue (and the linger) before it started, and how long it took,
	// commit included.
	StoreBatch(kind string, waits []time.Duration, took time.Duration)
}

// Observe sets who is told about every round trip; call it before the first request.
func (b *Batcher) Observe(o BatchObserver) {
	b.saves.observe = func(waits []time.Duration, took time.Duration) { o.StoreBatch("save", waits, took) }
	b.lookups.observe = func(waits []time.Duration, took time.Duration) { o.StoreBatch("lookup", waits, took) }
}

type saveRequest struct {
	check duplicate.Check
	saved duplicate.Saved
}

type lookupRequest struct {
	signatureID string
	outcome     duplicate.Outcome
	found       bool
}

var _ duplicate.Store = (*Batcher)(nil)

// MaxBatchLinks bounds the matched accounts of one batch of checks (each is a link to write or an
// account whose ring is read and joined), whatever the number of checks: a face farm's checks each
// name thousands of accounts, and a thousand of them in one transaction would hold millions of ids
// in memory at once. A check larger than the bound goes alone.
const MaxBatchLinks = 50_000

// batchTimeout bounds one batch's round trip; it is not tied to any one caller's context because
// the batch serves several callers.
const batchTimeout = 30 * time.Second

// NewBatcher returns a Batcher writing through store, with at most maxBatch requests per round trip
// and at most maxFlushers round trips of each kind at once. A round trip that would carry fewer
// than lingerBelow requests first waits up to linger for more (0: never waits). Its statements are
// prepared once per connection: give it a store over a pool opened with KeyLookUpPlans, whose
// cached plans stay index plans as the tables grow.
func NewBatcher(store *Store, maxBatch, maxFlushers int, linger time.Duration) *Batcher {
	b := &Batcher{store: store}
	b.saves = newGroup(maxBatch, maxFlushers, linger, b.flushSaves)
	b.saves.weigh, b.saves.maxWeight = func(r saveRequest) int { return len(r.check.MatchedUserIDs) }, MaxBatchLinks
	b.lookups = newGroup(maxBatch, maxFlushers, linger, b.flushLookups)
	return b
}

// lingerBelow is the batch size under which a flush waits for the linger: at a few hundred events
// a second a batch held one or two requests, and each round trip, statement and commit was paid
// per event. Waiting up to 2 ms for more cut PostgreSQL's CPU per event by a fifth and doppel's by
// a tenth at 1,000 events/s, and the p99 with it (the machine queued less); above it batches are
// already large and go at once. The requests that queued behind a flush linger too: letting them
// go at once raised PostgreSQL's CPU per event at 1,000 events/s by about 10 % for no gain in
// latency (alternating runs).
const lingerBelow = 16

// FinalOutcome returns the stored outcome of signatureID and whether it is final, looked up together
// with other workers' look-ups.
func (b *Batcher) FinalOutcome(ctx context.Context, signatureID string) (duplicate.Outcome, bool, error) {
	r, err := b.lookups.submit(ctx, lookupRequest{signatureID: signatureID})
	if err != nil || !r.found {
		return "", false, err
	}
	return r.outcome, r.outcome.Final(), nil
}

// SaveCheck queues the check and returns once the transaction holding it has committed (or failed).
// If the caller's context ends first it returns the context's error; the check may still be
// stored, which is harmless: a redelivered event finds the stored outcome.
func (b *Batcher) SaveCheck(ctx context.Context, check duplicate.Check) (duplicate.Saved, error) {
	r, err := b.saves.submit(ctx, saveRequest{check: check})
	return r.saved, err
}

func (b *Batcher) flushSaves(ctx context.Context, batch []*pending[saveRequest]) {
	// A signatureId twice in one batch (a redelivery racing the first delivery) would have the bulk
	// insert touch one row twice; the later copies are saved after the batch, as one by one.
	seen := make(map[string]bool, len(batch))
	var first, again []*pending[saveRequest]
	for _, p := range batch {
		if seen[p.req.check.SignatureID] {
			again = append(again, p)
			continue
		}
		seen[p.req.check.SignatureID] = true
		first = append(first, p)
	}
	if len(first) > 1 && b.saveTogether(ctx, first) {
		first = nil
	}
	// One bad check must not fail its neighbours: after a failed batch each check is saved in a
	// transaction of its own, so each caller gets its own answer.
	for _, p := range append(first, again...) {
		p.req.saved, p.err = b.store.SaveCheck(ctx, p.req.check)
		close(p.done)
	}
}

// saveTogether saves the batch in one transaction and answers its callers; false means it failed
// and answered no one.
func (b *Batcher) saveTogether(ctx context.Context, batch []*pending[saveRequest]) bool {
	checks := make([]duplicate.Check, len(batch))
	for i, p := range batch {
		checks[i] = p.req.check
	}
	saved, err := b.store.saveBatch(ctx, checks)
	if err != nil {
		return false
	}
	for i, p := range batch {
		p.req.saved = saved[i]
		close(p.done)
	}
	return true
}

// lookupOutcomesSQL reads the stored outcomes of a batch of signatureIds. Like every statement of
// the Batcher it is prepared once per connection (see KeyLookUpPlans).
// A tombstoned signatureId (its person was erased) answers 'erased', after any stored row.
const lookupOutcomesSQL = `SELECT signature_id, outcome FROM idv_checks WHERE signature_id = ANY($1::text[])
UNION ALL
SELECT u.sig, 'erased' FROM unnest($1::text[], $2::text[]) AS u(sig, h)
WHERE EXISTS (SELECT 1 FROM erased_signatures e WHERE e.signature_hash = u.h)`

func (b *Batcher) flushLookups(ctx context.Context, batch []*pending[lookupRequest]) {
	sigs, hashes := make([]string, len(batch)), make([]string, len(batch))
	for i, p := range batch {
		sigs[i], hashes[i] = p.req.signatureID, b.store.hash(p.req.signatureID)
	}
	outcomes := make(map[string]string, len(batch))
	rows, err := b.store.pool.Query(ctx, lookupOutcomesSQL, sigs, hashes)
	if err == nil {
		var sig, outcome string
		_, err = pgx.ForEachRow(rows, []any{&sig, &outcome}, func() error {
			if outcomes[sig] != string(duplicate.OutcomeErased) {
				outcomes[sig] = outcome
			}
			return nil
		})
	}
	for _, p := range batch {
		if err != nil {
			p.err = err
		} else if o, ok := outcomes[p.req.signatureID]; ok {
			p.req.outcome, p.req.found = duplicate.Outcome(o), true
		}
		close(p.done)
	}
}

// group queues requests and hands them in batches to flush, with at most maxFlushers flushes
// running at once; a flush starts as soon as a request arrives and one is free.
type group[T any] struct {
	maxBatch, maxFlushers int
	linger                time.Duration
	flush                 func(context.Context, []*pending[T])
	// filled wakes a lingering flusher once lingerBelow requests are queued.
	filled chan struct{}
	// weigh, when set, bounds a batch by the sum of its requests' weights (maxWeight) as well.
	weigh     func(T) int
	maxWeight int
	// observe, when set, is told each batch's queue waits and duration.
	observe func(waits []time.Duration, took time.Duration)

	mu       sync.Mutex
	queue    []*pending[T]
	flushing int
}

type pending[T any] struct {
	req    T
	err    error
	done   chan struct{}
	queued time.Time
}

func newGroup[T any](maxBatch, maxFlushers int, linger time.Duration, flush func(context.Context, []*pending[T])) *group[T] {
	return &group[T]{maxBatch: max(1, maxBatch), maxFlushers: max(1, maxFlushers), linger: linger, flush: flush,
		filled: make(chan struct{}, 1)}
}

func (g *group[T]) submit(ctx context.Context, req T) (T, error) {
	p := &pending[T]{req: req, done: make(chan struct{})}
	if g.observe != nil {
		p.queued = time.Now()
	}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	if g.flushing < g.maxFlushers {
		g.flushing++
		go g.flushLoop()
	}
	if len(g.queue) == lingerBelow {
		select {
		case g.filled <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()
	select {
	case <-p.done:
		return p.req, p.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// flushLoop flushes queued requests until the queue is empty.
func (g *group[T]) flushLoop() {
	for {
		g.lingerForMore()
		g.mu.Lock()
		n := g.batchLen()
		if n == 0 {
			g.flushing--
			g.mu.Unlock()
			return
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		started := time.Now()
		var waits []time.Duration
		if g.observe != nil {
			waits = make([]time.Duration, len(batch))
			for i, p := range batch {
				waits[i] = started.Sub(p.queued)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
		g.flush(ctx, batch)
		cancel()
		if g.observe != nil {
			g.observe(waits, time.Since(started))
		}
	}
}

// lingerForMore waits up to the linger while fewer than lingerBelow requests are queued.
func (g *group[T]) lingerForMore() {
	if g.linger <= 0 {
		return
	}
	g.mu.Lock()
	short := len(g.queue) < lingerBelow
	g.mu.Unlock()
	if !short {
		return
	}
	select {
	case <-g.filled: // possibly left from an earlier fill: then the batch simply goes now
	default:
		t := time.NewTimer(g.linger)
		select {
		case <-g.filled:
		case <-t.C:
		}
		t.Stop()
	}
}

// batchLen is how many queued requests the next batch takes: all of them up to maxBatch, and up to
// maxWeight in weight (at least one). The caller holds mu.
func (g *group[T]) batchLen() int {
	n := min(len(g.queue), g.maxBatch)
	if g.weigh == nil {
		return n
	}
	weight := 0
	for i, p := range g.queue[:n] {
		weight += g.weigh(p.req)
		if weight > g.maxWeight && i > 0 {
			return i
		}
	}
	return n
}
