package consumer

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

// TestDispatcherSerialisesAKeyButNotTheOthers drives the dispatcher as the consumer does: a slow
// key must not hold up other keys, and one key's messages must run one at a time, in order.
func TestDispatcherSerialisesAKeyButNotTheOthers(t *testing.T) {
	t.Parallel()
	const workers = 4
	d := newDispatcher(workers, 64)
	var (
		mu         sync.Mutex
		order      = map[string][]int64{}
		running    = map[string]int{}
		overlapped atomic.Bool
		wg         sync.WaitGroup
	)
	handle := func(key string, msg kafka.Message) {
		mu.Lock()
		running[key]++
		if running[key] > 1 {
			overlapped.Store(true)
		}
		order[key] = append(order[key], msg.Offset)
		mu.Unlock()
		if key == "slow" {
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		running[key]--
		mu.Unlock()
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item := range d.work {
				msg := item.msg
				for {
					handle(item.key, msg.Message)
					<-d.slots
					var more bool
					if msg, more = d.next(item.key); !more {
						break
					}
				}
			}
		}()
	}
	start := time.Now()
	ctx := context.Background()
	for i := range 40 {
		key := "fast"
		if i%10 == 0 {
			key = "slow"
		}
		if i%2 == 1 {
			key = "other"
		}
		d.slots <- struct{}{}
		require.True(t, d.dispatch(ctx, key, Message{Message: kafka.Message{Offset: int64(i)}}))
	}
	close(d.work)
	wg.Wait()

	require.False(t, overlapped.Load(), "two messages with one key ran at once")
	for key, offsets := range order {
		for i := 1; i < len(offsets); i++ {
			require.Less(t, offsets[i-1], offsets[i], "key %s ran out of order", key)
		}
	}
	require.Len(t, order["slow"], 4)
	require.Len(t, order["other"], 20)
	// Four slow messages in a row take 200 ms; everything else ran beside them.
	require.Less(t, time.Since(start), 2*time.Second)
	require.Empty(t, d.queued, "every key is forgotten once its messages are done")
}
