DROP INDEX CONCURRENTLY IF EXISTS alerts_signature_id_idx
