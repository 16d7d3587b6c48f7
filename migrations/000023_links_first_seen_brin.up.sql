-- The console's overview counts the links found today: a BRIN index (a few pages, cheap to keep:
-- links are written in time order) bounds that count to today's block ranges instead of a scan
-- of every link. Built CONCURRENTLY.
CREATE INDEX CONCURRENTLY IF NOT EXISTS duplicate_links_first_seen_at_idx ON duplicate_links USING brin (first_seen_at)
