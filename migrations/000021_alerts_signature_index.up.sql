-- An erasure deletes a person's checks: without an index on alerts.signature_id every deleted check
-- made PostgreSQL scan all alerts for the foreign key, and finding the alerts of a person's checks did too.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_signature_id_idx ON alerts (signature_id);
