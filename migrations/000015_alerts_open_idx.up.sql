-- The queue and GET /v1/alerts?status=open, newest or oldest first: a scan of the open alerts only.
-- Built CONCURRENTLY (alone in its file, outside a transaction) so writers of alerts never wait.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_open_detected_at_idx ON alerts (detected_at, alert_id) WHERE open
