-- ring_members_ring_key_user_id_idx serves every query this one did.
DROP INDEX CONCURRENTLY IF EXISTS ring_members_ring_key_idx
