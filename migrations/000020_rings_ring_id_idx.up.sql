-- GET /v1/rings/{ringId}: the ring by its public id. Not UNIQUE although ids are: a batch that
-- merges two rings gives the surviving row its new smallest member before it deletes the merged
-- row, which held that member, so for a moment two rows carry one id. Built CONCURRENTLY.
CREATE INDEX CONCURRENTLY IF NOT EXISTS rings_ring_id_idx ON rings (ring_id)
