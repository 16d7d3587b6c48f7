-- Deleting a check (an erasure, a retention sweep) makes PostgreSQL find the alerts that refer to it
-- for the foreign key: without an index on alerts.signature_id, a scan of every alert per check.
-- Built CONCURRENTLY.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_signature_id_idx ON alerts (signature_id)
