-- GET /v1/alerts?userId= (the alerts naming the user among their matches: matched_user_ids @> ARRAY[id]).
-- Built CONCURRENTLY.
CREATE INDEX CONCURRENTLY IF NOT EXISTS alerts_matched_user_ids_idx ON alerts USING gin (matched_user_ids)
