-- GET /v1/rings (largest first) and the console's ring list: an index scan in the page's order.
CREATE INDEX CONCURRENTLY IF NOT EXISTS rings_size_idx ON rings (size DESC, last_seen_at DESC, ring_id)
