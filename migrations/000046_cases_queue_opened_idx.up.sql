-- The case queue reads the open and in-review cases oldest first within each of its four ranges
-- (overdue or not, high severity or not), by this index, instead of sorting every open case by its
-- ring's size (0.9 s at 323,000 open cases). Built CONCURRENTLY.
CREATE INDEX CONCURRENTLY IF NOT EXISTS cases_queue_opened_idx ON cases (opened_at, case_id) WHERE status IN ('open', 'in_review')
