package erasure_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/doppelhq/doppel/internal/harness/testinfra"
	"github.com/doppelhq/doppel/internal/postgres"
)

// BenchmarkSaveCheck measures what the tombstone checks cost the write path: checks saved through
// the group commit by 16 workers at once, half linking a pair, with and without the tombstone key
// (the per-person locks, the tombstone probes of the insert and of the matched accounts).
func BenchmarkSaveCheck(b *testing.B) {
	for _, withKey := range []bool{false, true} {
		b.Run(fmt.Sprintf("tombstones=%v", withKey), func(b *testing.B) {
			_, pool := testinfra.Database(b)
			var opts []postgres.Option
			if withKey {
				opts = append(opts, postgres.WithTombstones(key))
			}
			batcher := postgres.NewBatcher(postgres.NewStore(pool, opts...), 64, 1, 0)
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					c := check(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i))
					if i%2 == 0 {
						c = check(fmt.Sprintf("s%d", i), fmt.Sprintf("u%d", i), fmt.Sprintf("u%d", i-1))
					}
					if _, err := batcher.SaveCheck(context.Background(), c); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
