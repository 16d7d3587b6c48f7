-- An erasure, a subject export and a repeated erasure request find a person's started verifications
-- by user_id: without this index, a scan of every verification ever started. Built CONCURRENTLY.
CREATE INDEX CONCURRENTLY IF NOT EXISTS started_verifications_user_id_idx ON started_verifications (user_id)
