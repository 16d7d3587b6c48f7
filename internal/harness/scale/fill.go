package scale

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/doppelhq/doppel/internal/duplicate"
	"github.com/doppelhq/doppel/internal/postgres"
)

// Filled is what Fill did and how long it took.
type Filled struct {
	Checks, Reviews int
	ChecksTook      time.Duration
	ReviewsTook     time.Duration
}

// Fill stores the population's checks through store in ordered batches of batch checks (the group
// commit's batch: links, ring index, alerts and overflow as the pipeline writes them), then its
// reviews one by one as the API records them, and marks the alerts published as the relay does.
// progress, when not nil, is called after each batch
// with the checks stored so far.
func Fill(ctx context.Context, store *postgres.Store, p *Population, batch int, progress func(done int)) (Filled, error) {
	var f Filled
	start := time.Now()
	err := p.Checks(batch, postgres.MaxBatchLinks, func(checks []duplicate.Check) error {
		if _, err := store.SaveChecks(ctx, checks); err != nil {
			return fmt.Errorf("save checks %s..: %w", checks[0].SignatureID, err)
		}
		f.Checks += len(checks)
		if progress != nil {
			progress(f.Checks)
		}
		return nil
	})
	f.ChecksTook = time.Since(start)
	if err != nil {
		return f, err
	}
	start = time.Now()
	for _, r := range p.Reviews() {
		if _, err := store.AddReview(ctx, r); err != nil {
			return f, fmt.Errorf("add review of %s and %s: %w", r.UserID, r.DuplicateUserID, err)
		}
		f.Reviews++
	}
	f.ReviewsTook = time.Since(start)
	return f, publishAll(ctx, store)
}

// publishAll marks every alert published through the relay's own statement (Store.MarkPublished):
// in a year-old database the relay published them long ago, and a doppel serve started on fresh
// unpublished alerts would spend the first minutes of the measurement publishing them all.
func publishAll(ctx context.Context, store *postgres.Store) error {
	ids, err := unpublishedAlerts(ctx, store)
	if err != nil {
		return err
	}
	for len(ids) > 0 {
		n := min(len(ids), 10_000)
		if err := store.MarkPublished(ctx, ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

func unpublishedAlerts(ctx context.Context, store *postgres.Store) ([]string, error) {
	rows, err := store.Pool().Query(ctx, `SELECT alert_id::text FROM alerts WHERE published_at IS NULL ORDER BY detected_at`)
	if err != nil {
		return nil, fmt.Errorf("list unpublished alerts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list unpublished alerts: %w", err)
	}
	return ids, nil
}
