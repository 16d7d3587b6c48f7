package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/doppelhq/doppel/internal/accesslog"
	"github.com/doppelhq/doppel/internal/config"
	"github.com/doppelhq/doppel/internal/console"
	"github.com/doppelhq/doppel/internal/evidence"
	"github.com/doppelhq/doppel/internal/facesearch"
	"github.com/doppelhq/doppel/internal/metrics"
	"github.com/doppelhq/doppel/internal/pseudonym"
	"github.com/doppelhq/doppel/internal/region"
)

// newEvidence returns what the console fetches evidence with and records its views with, or nils
// when DOPPEL_EVIDENCE is off. Each region's look-ups go through that region's account (its rate
// limit, SERVICE_BUSY pause and circuit breaker, shared with the pipeline), capped at
// DOPPEL_EVIDENCE_QPS of it so that analysts opening rings never take the pipeline's whole rate.
func newEvidence(cfg config.Config, regions *region.Registry, m *metrics.Metrics, log *slog.Logger, access *accesslog.Writer) (*evidence.Fetcher, console.EvidenceViews) {
	if !cfg.Evidence {
		return nil, nil
	}
	sources := map[string]evidence.Source{}
	for _, name := range regions.Names() {
		r, _ := regions.Lookup(name)
		if v, ok := r.Account().(*facesearch.Vendor); ok {
			sources[name] = v.WithShare(cfg.EvidenceQPS)
		}
	}
	def := regions.Default().Name
	fetcher := evidence.NewFetcher(evidence.FetcherConfig{
		Source: func(name string) (evidence.Source, bool) {
			if name == "" {
				name = def
			}
			s, ok := sources[name]
			return s, ok
		},
		Cache:   evidence.NewCache(cfg.EvidenceCacheSize, cfg.EvidenceCacheTTL),
		OnFetch: m.EvidenceFetch,
	})
	// The views' pseudonyms use the logs' key, so that a view can be matched with the other lines
	// about a person; without DOPPEL_PSEUDONYM_KEY they are stable for this process only.
	key := pseudonym.RandomKey()
	if cfg.PseudonymKey != "" {
		key = pseudonym.NewKey([]byte(cfg.PseudonymKey))
	}
	return fetcher, evidenceViews{access: access, fallback: evidence.LogViews{Logger: log.With("component", "evidence"), Key: key}}
}

// evidenceViews records who saw whose faces and documents in the access log, as every other read
// of a person's data is; a view the log refuses (its queue full) is still written to the log
// lines, pseudonymised, so that no view goes unrecorded.
type evidenceViews struct {
	access   *accesslog.Writer
	fallback evidence.LogViews
}

// evidenceWhat is the access log's name for a view of faces and documents.
const evidenceWhat = "console: faces and documents"

func (v evidenceViews) RecordView(ctx context.Context, actor string, userIDs []string, ringID string) {
	ids, n := accesslog.Shown(userIDs)
	err := v.access.Record(ctx, accesslog.Entry{At: time.Now().UTC(), Actor: actor, Via: accesslog.ViaConsole,
		What: evidenceWhat, UserIDs: ids, UserCount: n, RingID: ringID})
	if err != nil {
		v.fallback.RecordView(ctx, actor, userIDs, ringID)
	}
}
