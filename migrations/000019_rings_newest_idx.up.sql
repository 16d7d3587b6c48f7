-- GET /v1/rings?order=newest: an index scan in the page's order.
CREATE INDEX CONCURRENTLY IF NOT EXISTS rings_last_seen_at_idx ON rings (last_seen_at DESC, ring_id)
