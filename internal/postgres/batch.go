package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// Batcher stores checks from many workers in shared transactions: while a transaction is being
// written, new checks queue up and go together in the next one (group commit). At low load a check
// is written at once, alone; at high load one commit carries up to MaxBatch checks, which is what
// lets the pipeline keep up with a fast vendor. It implements duplicate.Store.
type Batcher struct {
	store       *Store
	maxBatch    int
	maxFlushers int

	mu       sync.Mutex
	queue    []*pendingSave
	flushing int
}

type pendingSave struct {
	check duplicate.Check
	saved duplicate.Saved
	err   error
	done  chan struct{}
}

var _ duplicate.Store = (*Batcher)(nil)

// flushTimeout bounds one batch transaction; it is not tied to any one caller's context because
// the batch serves several callers.
const flushTimeout = 30 * time.Second

// NewBatcher returns a Batcher writing through store, at most maxBatch checks per transaction and
// at most maxFlushers transactions at once.
func NewBatcher(store *Store, maxBatch, maxFlushers int) *Batcher {
	return &Batcher{store: store, maxBatch: max(1, maxBatch), maxFlushers: max(1, maxFlushers)}
}

// FinalOutcome reads straight from the store.
func (b *Batcher) FinalOutcome(ctx context.Context, signatureID string) (duplicate.Outcome, bool, error) {
	return b.store.FinalOutcome(ctx, signatureID)
}

// SaveCheck queues the check and returns once the transaction holding it has committed (or failed).
// If the caller's context ends first it returns the context's error; the check may still be
// stored, which is harmless: a redelivered event finds the stored outcome.
func (b *Batcher) SaveCheck(ctx context.Context, check duplicate.Check) (duplicate.Saved, error) {
	p := &pendingSave{check: check, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if b.flushing < b.maxFlushers {
		b.flushing++
		go b.flushLoop()
	}
	b.mu.Unlock()
	select {
	case <-p.done:
		return p.saved, p.err
	case <-ctx.Done():
		return duplicate.Saved{}, ctx.Err()
	}
}

// flushLoop writes queued checks until the queue is empty.
func (b *Batcher) flushLoop() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.maxBatch)
		if n == 0 {
			b.flushing--
			b.mu.Unlock()
			return
		}
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		b.flush(batch)
	}
}

func (b *Batcher) flush(batch []*pendingSave) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if len(batch) > 1 {
		results := make([]duplicate.Saved, len(batch))
		err := inTx(ctx, b.store.pool, func(tx pgx.Tx) error {
			for i, p := range batch {
				saved, err := b.store.saveCheckTx(ctx, tx, p.check)
				if err != nil {
					return err
				}
				results[i] = saved
			}
			return nil
		})
		if err == nil {
			for i, p := range batch {
				p.saved = results[i]
				close(p.done)
			}
			return
		}
		// One bad check (or a deadlock with the other flusher) must not fail its neighbours:
		// fall back to one transaction each, so each caller gets its own answer.
	}
	for _, p := range batch {
		p.saved, p.err = b.store.SaveCheck(ctx, p.check)
		close(p.done)
	}
}
