package postgres

import (
	"context"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// SaveChecks stores checks (distinct signatureIds, in this order) as one batch of the group commit
// does: one transaction, the links, ring changes and alerts the domain decides. It exists for the
// scale generator (internal/harness/scale), which fills a database with a year of checks through
// the pipeline's own write path in large ordered batches; the Batcher cannot promise the order of
// requests submitted by concurrent callers, and the generator's rows must not depend on timing.
func (s *Store) SaveChecks(ctx context.Context, checks []duplicate.Check) ([]duplicate.Saved, error) {
	return s.saveBatch(ctx, checks)
}
