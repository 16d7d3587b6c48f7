package postgres

// The overview's open cases: until the case queue has its own table, a case is a ring with an open
// alert. Everything is read from the open alerts, oldest first, through the partial index
// alerts_open_detected_at_idx (the open alerts are the backlog, not the history), at most
// OpenCasesRead of them; each alert's ring now comes from two primary-key look-ups (ring_members,
// rings). No statement here scans a table that grows with history.

import (
	"context"
	"fmt"
	"time"

	"github.com/doppelhq/doppel/internal/duplicate"
)

// OpenCasesRead bounds the open alerts one overview reads: past it the counts are lower bounds
// (duplicate.OpenCases.Capped), and a backlog that large is itself the news. At 10,000,000
// checks with 600,000 open alerts, reading 5,000 (two primary-key look-ups each) was most of the
// overview's 59 ms.
const OpenCasesRead = 1000

// openCasesSQL groups the oldest $1 open alerts by the ring their account is in now: $2 is the
// overdue cut-off, $3 the high-severity ring size (0: none is high).
const openCasesSQL = `
WITH o AS (
    SELECT a.user_id, a.region, a.detected_at
    FROM alerts a WHERE a.open
    ORDER BY a.detected_at, a.alert_id
    LIMIT $1
), c AS (
    SELECT r.ring_key, min(r.size) AS size, min(o.detected_at) AS oldest, array_agg(DISTINCT o.region) AS regions
    FROM o
    JOIN ring_members m ON m.user_id = o.user_id
    JOIN rings r ON r.ring_key = m.ring_key
    GROUP BY r.ring_key
), by_region AS (
    SELECT region, count(*)::int AS n FROM c, unnest(c.regions) AS region GROUP BY region
)
SELECT
    (SELECT count(*)::int FROM o),
    (SELECT min(detected_at) FROM o),
    (SELECT count(*)::int FROM c),
    (SELECT count(*)::int FROM c WHERE c.oldest < $2),
    (SELECT count(*)::int FROM c WHERE $3 > 0 AND c.size >= $3),
    coalesce((SELECT array_agg(region ORDER BY region) FROM by_region), '{}'),
    coalesce((SELECT array_agg(n ORDER BY region) FROM by_region), '{}')`

// OpenCases counts the open cases as of now: by region, overdue (oldest open alert older than
// sla), high severity (ring size at least the store's alert policy's high-severity size), and the
// oldest open alert.
func (s *Store) OpenCases(ctx context.Context, now time.Time, sla time.Duration) (duplicate.OpenCases, error) {
	var out duplicate.OpenCases
	var oldest *time.Time
	var regions []string
	var counts []int
	err := s.pool.QueryRow(ctx, openCasesSQL, OpenCasesRead, now.Add(-sla), s.policy.HighSeverityRingSize).Scan(
		&out.Read, &oldest, &out.Total, &out.Overdue, &out.HighSeverity, &regions, &counts)
	if err != nil {
		return duplicate.OpenCases{}, fmt.Errorf("count open cases: %w", err)
	}
	if oldest != nil {
		out.OldestOpenAlertAt = oldest.UTC()
	}
	out.Capped = out.Read >= OpenCasesRead
	for i, r := range regions {
		out.ByRegion = append(out.ByRegion, duplicate.RegionCount{Region: r, Count: counts[i]})
	}
	return out, nil
}
