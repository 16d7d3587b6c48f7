package accesslog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// countingSink is the real store, counting its round trips and the entries each carried.
type countingSink struct {
	sink    accesslog.Sink
	mu      sync.Mutex
	batches []int
}

func (c *countingSink) InsertAccessLog(ctx context.Context, entries []accesslog.Entry) error {
	c.mu.Lock()
	c.batches = append(c.batches, len(entries))
	c.mu.Unlock()
	return c.sink.InsertAccessLog(ctx, entries)
}

func TestConcurrentReadsAreWrittenInFewBatchesAndNoneIsLost(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	sink := &countingSink{sink: postgres.NewStore(pool)}
	var written atomic.Int64
	w := accesslog.NewWriter(sink, accesslog.Config{BatchSize: 200, FlushInterval: 20 * time.Millisecond,
		OnWritten: func(n int) { written.Add(int64(n)) }})
	const readers, each = 50, 200
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			for i := range each {
				err := w.Record(context.Background(), accesslog.Entry{Actor: fmt.Sprintf("key-%02d", r), Via: accesslog.ViaAPI,
					What: "GET /v1/users/{userId}/cluster", UserIDs: []string{fmt.Sprintf("user-%02d-%03d", r, i)}, UserCount: 1})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close(context.Background()))

	var rows, distinct int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT user_ids[1]) FROM access_log`).Scan(&rows, &distinct))
	require.Equal(t, readers*each, rows)
	require.Equal(t, readers*each, distinct, "each read once")
	require.EqualValues(t, readers*each, written.Load())
	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.LessOrEqual(t, len(sink.batches), readers*each/20, "batched: %d round trips for %d entries", len(sink.batches), rows)
	for _, n := range sink.batches {
		require.LessOrEqual(t, n, 200)
	}
}

func TestAnEntryIsWrittenWithinTheIntervalAndFlushWaitsForIt(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	w := accesslog.NewWriter(postgres.NewStore(pool), accesslog.Config{FlushInterval: 50 * time.Millisecond})
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	count := func() (n int) {
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM access_log`).Scan(&n))
		return n
	}
	require.NoError(t, w.Record(context.Background(), accesslog.Entry{Actor: "a", Via: accesslog.ViaAPI, What: "GET /x"}))
	require.Eventually(t, func() bool { return count() == 1 }, 2*time.Second, 10*time.Millisecond, "a lone entry goes within the interval")
	require.NoError(t, w.Record(context.Background(), accesslog.Entry{Actor: "a", Via: accesslog.ViaAPI, What: "GET /x"}))
	require.NoError(t, w.Flush(context.Background()))
	require.Equal(t, 2, count(), "Flush returns once what was queued before it is stored")
}

// stuckSink fails every write until released, like a database that does not answer.
type stuckSink struct {
	release chan struct{}
	sink    accesslog.Sink
}

func (s *stuckSink) InsertAccessLog(ctx context.Context, entries []accesslog.Entry) error {
	select {
	case <-s.release:
		return s.sink.InsertAccessLog(ctx, entries)
	default:
		return errors.New("connection refused")
	}
}

func TestAFullQueueRefusesTheReadAfterAShortWaitAndKeepsWhatItHolds(t *testing.T) {
	t.Parallel()
	_, pool := testinfra.Database(t)
	sink := &stuckSink{release: make(chan struct{}), sink: postgres.NewStore(pool)}
	var refused atomic.Int64
	// Written only by full batches of two, so the batch being retried holds exactly two.
	w := accesslog.NewWriter(sink, accesslog.Config{BatchSize: 2, QueueSize: 4, FlushInterval: time.Hour,
		MaxWait: 50 * time.Millisecond, OnRefused: func() { refused.Add(1) }})
	entry := accesslog.Entry{Actor: "a", Via: accesslog.ViaAPI, What: "GET /x"}
	// Two entries are in the batch being retried, four fill the queue: the seventh waits, then is refused.
	var accepted int
	for range 20 {
		if w.Record(context.Background(), entry) != nil {
			break
		}
		accepted++
	}
	require.Equal(t, 6, accepted)
	start := time.Now()
	require.ErrorIs(t, w.Record(context.Background(), entry), accesslog.ErrUnavailable)
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond, "it waited for room first")
	require.EqualValues(t, 2, refused.Load())

	close(sink.release) // the database answers again: everything accepted is written
	require.NoError(t, w.Close(context.Background()))
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM access_log`).Scan(&n))
	require.Equal(t, accepted, n)
	require.ErrorIs(t, w.Record(context.Background(), entry), accesslog.ErrUnavailable, "a closed writer takes nothing")
}

func TestAShutdownThatCannotWriteCountsTheEntriesItLoses(t *testing.T) {
	t.Parallel()
	sink := &stuckSink{release: make(chan struct{})}
	var lost atomic.Int64
	w := accesslog.NewWriter(sink, accesslog.Config{BatchSize: 2, FlushInterval: time.Millisecond,
		OnLost: func(n int) { lost.Add(int64(n)) }})
	for range 5 {
		require.NoError(t, w.Record(context.Background(), accesslog.Entry{Actor: "a", Via: accesslog.ViaAPI, What: "GET /x"}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, w.Close(ctx), context.DeadlineExceeded)
	require.EqualValues(t, 5, lost.Load(), "counted (and logged), never dropped silently")
}

func TestShownListsEachIDOnceTheSubjectFirstAndBoundsTheList(t *testing.T) {
	t.Parallel()
	ids, n := accesslog.Shown([]string{"subject"}, []string{"", "b", "subject", "a"}, []string{"b"})
	require.Equal(t, []string{"subject", "b", "a"}, ids)
	require.Equal(t, 3, n)

	farm := make([]string, 5000)
	for i := range farm {
		farm[i] = fmt.Sprintf("farm-%04d", i)
	}
	ids, n = accesslog.Shown([]string{"farm-4999"}, farm)
	require.Len(t, ids, accesslog.MaxUserIDs)
	require.Equal(t, "farm-4999", ids[0])
	require.Equal(t, 5000, n)
}
