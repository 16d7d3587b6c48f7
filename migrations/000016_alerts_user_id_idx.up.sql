-- GET /v1/alerts?userId= (the alerts raised for the user), the review that closes a pair's alerts,
-- and the open alerts of a ring's members. Built CONCURRENTLY.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_user_id_idx ON alerts (user_id)
