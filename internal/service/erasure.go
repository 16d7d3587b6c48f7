package service

import (
	"fmt"
	"log/slog"

	"github.com/doppelhq/doppel/internal/advance"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/erasure"
	"github.com/doppelhq/doppel/internal/postgres"
	"github.com/doppelhq/doppel/internal/topic"
)

// NewErasureRunner returns the runner that finishes erasure jobs (internal/erasure) and the
// publisher of its subject_erased events (close it when done): each region whose account has a
// data-clearing call (DOPPEL_ADVANCE_<R>_CLEAR_DATA_PATH) gets a client of its own for it, off
// the hot path's rate limits. onDone may be nil.
func NewErasureRunner(cfg config.Config, store *postgres.Store, log *slog.Logger, onDone func()) (*erasure.Runner, *topic.Publisher, error) {
	clearers := map[string]erasure.Clearer{}
	for _, rc := range cfg.Regions() {
		if rc.ClearDataPath == "" {
			continue
		}
		client, err := advance.New(advance.Config{BaseURL: rc.BaseURL, AccessKey: rc.AccessKey, SecretKey: rc.SecretKey,
			Timeout: cfg.AdvanceTimeout, ClearDataPath: rc.ClearDataPath})
		if err != nil {
			return nil, nil, fmt.Errorf("vendor client of region %s: %w", rc.Name, err)
		}
		clearers[rc.Name] = client
	}
	pub := topic.NewPublisher(cfg.KafkaBrokers, cfg.TopicErasures, "erasure")
	return erasure.New(erasure.Config{Store: store, Publisher: pub, Clearers: clearers, Logger: log, OnDone: onDone}), pub, nil
}
