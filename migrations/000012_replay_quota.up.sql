-- Billed re-runs (POST /v1/replay, doppel replay) counted per API key and UTC day, so that
-- DOPPEL_REPLAY_DAILY_LIMIT holds across every instance. One small row per key and day; rows older
-- than a week are deleted as new days start (they only ever bound one day).
CREATE TABLE replay_quota (
    key_name  text    NOT NULL,
    day       date    NOT NULL,
    searches  integer NOT NULL CHECK (searches >= 0),
    PRIMARY KEY (key_name, day)
);
