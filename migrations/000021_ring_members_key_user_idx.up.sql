-- A ring's members in userId order, the first N of them without sorting the rest (a face farm's
-- list pages); replaces ring_members_ring_key_idx, which migration 22 drops.
CREATE INDEX CONCURRENTLY IF NOT EXISTS ring_members_ring_key_user_id_idx ON ring_members (ring_key, user_id)
