CREATE INDEX CONCURRENTLY IF NOT EXISTS ring_members_ring_key_idx ON ring_members (ring_key)
