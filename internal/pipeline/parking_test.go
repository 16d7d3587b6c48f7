package pipeline

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/doppelhq/doppel/internal/consumer"
	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/region"
)

// instantAccount is a region's vendor account that answers at once, with no match.
type instantAccount struct{}

func (instantAccount) FaceSearch(context.Context, string) (duplicate.SearchResult, error) {
	return duplicate.SearchResult{TransactionID: "tx"}, nil
}
func (instantAccount) Verification(context.Context, string) (duplicate.Verification, error) {
	return duplicate.Verification{}, nil
}
func (instantAccount) Ready() error             { return nil }
func (instantAccount) State() string            { return "closed" }
func (instantAccount) PausedFor() time.Duration { return 0 }

// savingStore holds every SaveCheck until release is closed, and says when one is waiting.
type savingStore struct{ saving, release chan struct{} }

func (savingStore) FinalOutcome(context.Context, string) (duplicate.Outcome, bool, error) {
	return "", false, nil
}
func (s savingStore) SaveCheck(ctx context.Context, c duplicate.Check) (duplicate.Saved, error) {
	s.saving <- struct{}{}
	<-s.release
	return duplicate.Saved{Stored: true}, nil
}

// The parking share bounds a region's events at its vendor (docs/regions.md), not those waiting for
// the database: under load a healthy region's events wait for the group commit, and counting them
// parked the events of a region that was never in trouble.
func TestAnEventWaitingForTheDatabaseLeavesItsRegionsVendorShare(t *testing.T) {
	t.Parallel()
	reg := region.New("ph", instantAccount{}, nil)
	regions, err := region.NewRegistry("ph", reg)
	require.NoError(t, err)
	// Two workers: a share of one event at the vendor per region.
	m := metrics.New(metrics.Series{})
	parking := NewParking(ParkingConfig{Workers: 2, Brokers: []string{"127.0.0.1:1"}}, regions,
		func(name string) RegionMetrics { return m.Region(name) }, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = parking.Close() })
	parking.states["ph"].draining.Store(false) // measured: no parked backlog

	store := savingStore{saving: make(chan struct{}), release: make(chan struct{})}
	h := New(Config{EventOptions: duplicate.DecodeOptions{MaxBytes: 1024}, Detector: duplicate.NewDetector(store, nil), Regions: regions,
		Parking: parking, Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() {
		done <- h.Handle(context.Background(), consumer.Message{Message: kafka.Message{Topic: "idv.completed",
			Value: []byte(`{"signatureId":"s1","type":"COMPLETED","userId":"u1"}`)}})
	}()
	<-store.saving

	require.True(t, parking.enter(reg), "s1 is at the database, not at the vendor: the region's share is free")
	require.False(t, parking.enter(reg), "the share is one event at the vendor")
	parking.leave(reg)
	close(store.release)
	require.NoError(t, <-done)
	require.Zero(t, parking.states["ph"].atVendor.Load(), "s1 left the share once, not twice")
}
