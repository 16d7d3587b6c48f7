-- GET /v1/rings/{ringId}: the ring by its public id.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS rings_ring_id_idx ON rings (ring_id)
