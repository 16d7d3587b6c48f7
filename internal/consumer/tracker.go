package consumer

import (
	"sync"
	"time"

	"github.com/doppelhq/doppel/internal/clip"
)

// offsetTracker remembers, per partition, which fetched offsets are finished, and yields the highest
// offset below which everything is finished. kafka-go's CommitMessages commits the highest offset it
// is given, so with many events in flight committing a finished message directly could skip an
// unfinished earlier one and lose it on a restart.
//
// It also keeps the clock of each partition's progress, for the stall monitor: when its committed
// offset last moved (or when it last got work after having none), and why its work last waited.
type offsetTracker struct {
	now   func() time.Time
	mu    sync.Mutex
	parts map[int]*partitionOffsets
}

type partitionOffsets struct {
	// pending holds fetched offsets not yet part of the finished prefix, in fetch order.
	pending []int64
	done    map[int64]struct{}
	// ready is the highest offset whose whole prefix is finished; committed the last one committed.
	ready, committed int64
	// progressAt is when the partition last made progress; blocker why its work last waited.
	progressAt time.Time
	blocker    string
}

// busy reports whether the partition has work not committed yet.
func (po *partitionOffsets) busy() bool { return len(po.pending) > 0 || po.ready > po.committed }

func (po *partitionOffsets) progressed(now time.Time) {
	po.progressAt = now
	po.blocker = ""
}

// newOffsetTracker returns a tracker reading the time from now (time.Now outside tests).
func newOffsetTracker(now func() time.Time) *offsetTracker {
	return &offsetTracker{now: now, parts: make(map[int]*partitionOffsets)}
}

func (t *offsetTracker) partition(p int) *partitionOffsets {
	po := t.parts[p]
	if po == nil {
		po = &partitionOffsets{done: make(map[int64]struct{}), ready: -1, committed: -1}
		t.parts[p] = po
	}
	return po
}

// add records a fetched offset. An offset not above the last one fetched means the reader rewound
// (after a rebalance or a failed commit): what was pending will be fetched again, so it is forgotten
// rather than waited for.
func (t *offsetTracker) add(partition int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	po := t.partition(partition)
	if !po.busy() {
		po.progressed(t.now()) // an idle partition was not stuck: its clock starts now
	}
	if n := len(po.pending); n > 0 && offset <= po.pending[n-1] {
		po.pending = po.pending[:0]
		clear(po.done)
	}
	if offset <= po.ready {
		po.ready = offset - 1
		if po.committed > po.ready {
			po.committed = po.ready
		}
	}
	po.pending = append(po.pending, offset)
}

// finish marks an offset finished (stored, or dead-lettered) and advances the finished prefix.
func (t *offsetTracker) finish(partition int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	po := t.partition(partition)
	po.done[offset] = struct{}{}
	for len(po.pending) > 0 {
		head := po.pending[0]
		if _, ok := po.done[head]; !ok {
			break
		}
		delete(po.done, head)
		po.ready = head
		po.pending = po.pending[1:]
	}
}

// committable returns, per partition, the highest finished-prefix offset not yet committed.
func (t *offsetTracker) committable() map[int]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[int]int64)
	for p, po := range t.parts {
		if po.ready > po.committed {
			out[p] = po.ready
		}
	}
	return out
}

// markCommitted records a successful commit.
func (t *offsetTracker) markCommitted(partition int, offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	po := t.partition(partition)
	if offset > po.committed {
		po.committed = offset
		po.progressed(t.now())
	}
}

// block records why work on a partition waits, for the stall report (the first few hundred bytes:
// enough to name the cause, short enough for a readiness answer).
func (t *offsetTracker) block(partition int, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partition(partition).blocker = clip.Bytes(reason, 300)
}

// partitionProgress is one partition's progress as the stall monitor sees it.
type partitionProgress struct {
	partition int
	// stuckFor is how long the partition has had uncommitted work without committing; 0 when it
	// has none.
	stuckFor time.Duration
	since    time.Time
	// offset is where it is stuck: the oldest unfinished message, or the last finished one if
	// only its commit is missing.
	offset  int64
	blocker string
}

// progress returns every known partition's progress.
func (t *offsetTracker) progress() []partitionProgress {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	out := make([]partitionProgress, 0, len(t.parts))
	for p, po := range t.parts {
		pp := partitionProgress{partition: p, since: po.progressAt, offset: po.ready, blocker: po.blocker}
		if len(po.pending) > 0 {
			pp.offset = po.pending[0]
		}
		if po.busy() {
			pp.stuckFor = now.Sub(po.progressAt)
		}
		out = append(out, pp)
	}
	return out
}

// inFlight returns how many fetched messages are not yet part of a finished prefix.
func (t *offsetTracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, po := range t.parts {
		n += len(po.pending)
	}
	return n
}
