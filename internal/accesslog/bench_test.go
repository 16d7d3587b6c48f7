package accesslog_test

import (
	"context"
	"testing"

	"github.com/doppelhq/doppel/internal/accesslog"
)

type discardSink struct{}

func (discardSink) InsertAccessLog(context.Context, []accesslog.Entry) error { return nil }

// BenchmarkRecord is what the access log adds to a read: building an entry of a ring's ten ids and
// queueing it (the write itself happens on the writer's goroutine).
func BenchmarkRecord(b *testing.B) {
	w := accesslog.NewWriter(discardSink{}, accesslog.Config{})
	b.Cleanup(func() { _ = w.Close(context.Background()) })
	ring := []string{"cust-1", "cust-2", "cust-3", "cust-4", "cust-5", "cust-6", "cust-7", "cust-8", "cust-9", "cust-10"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ids, n := accesslog.Shown([]string{"cust-3"}, ring)
			if err := w.Record(context.Background(), accesslog.Entry{Actor: "analyst", Via: accesslog.ViaAPI,
				What: "GET /v1/users/{userId}/cluster", UserIDs: ids, UserCount: n, RingID: "ring_0123456789abcdef"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
