-- One row per identity verification (signatureId) Doppel has finished with. The primary key is what
-- keeps a redelivered event from being searched (and billed) twice.
CREATE TABLE idv_checks (
    signature_id          text PRIMARY KEY,
    user_id               text,
    event_type            text NOT NULL,
    outcome               text NOT NULL CHECK (outcome IN
                              ('duplicates_found', 'no_duplicates', 'skipped', 'not_passed', 'failed')),
    overall_result        text,
    similar_user_ids      text[] NOT NULL DEFAULT '{}',
    matched_user_ids      text[] NOT NULL DEFAULT '{}',
    vendor_transaction_id text,
    failure_reason        text,
    event_id              text,
    occurred_at           timestamptz,
    source_topic          text,
    source_partition      integer,
    source_offset         bigint,
    checked_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idv_checks_user_id_idx ON idv_checks (user_id);
CREATE INDEX idv_checks_checked_at_idx ON idv_checks (checked_at);

COMMENT ON TABLE idv_checks IS 'The stored outcome of each H5 identity verification Doppel checked; one row per signatureId.';
COMMENT ON COLUMN idv_checks.similar_user_ids IS 'userIds exactly as the vendor''s face search returned them.';
COMMENT ON COLUMN idv_checks.matched_user_ids IS 'Distinct userIds other than the user''s own: the accounts linked by this check.';

-- One row per unordered pair of accounts that share a face. The pair is stored in a canonical order
-- (low < high) so that seeing it again from either side updates the same row.
CREATE TABLE duplicate_links (
    user_id_low        text NOT NULL,
    user_id_high       text NOT NULL,
    first_seen_at      timestamptz NOT NULL,
    last_seen_at       timestamptz NOT NULL,
    seen_count         integer NOT NULL DEFAULT 1,
    first_signature_id text NOT NULL,
    last_signature_id  text NOT NULL,
    PRIMARY KEY (user_id_low, user_id_high),
    CHECK (user_id_low < user_id_high)
);

CREATE INDEX duplicate_links_high_idx ON duplicate_links (user_id_high);

COMMENT ON TABLE duplicate_links IS 'Duplicate-account links: one row per unordered pair of userIds whose faces matched.';

-- Alerts double as the transactional outbox: a row is written in the same transaction as the check
-- and its links, and the relay sets published_at once the broker has acknowledged it.
CREATE TABLE alerts (
    alert_id              uuid PRIMARY KEY,
    signature_id          text NOT NULL REFERENCES idv_checks (signature_id),
    user_id               text NOT NULL,
    matched_user_ids      text[] NOT NULL,
    new_matched_user_ids  text[] NOT NULL,
    vendor_transaction_id text,
    detected_at           timestamptz NOT NULL,
    published_at          timestamptz,
    publish_attempts      integer NOT NULL DEFAULT 0
);

CREATE INDEX alerts_unpublished_idx ON alerts (detected_at) WHERE published_at IS NULL;
CREATE INDEX alerts_user_id_idx ON alerts (user_id);
CREATE INDEX alerts_detected_at_idx ON alerts (detected_at);

COMMENT ON TABLE alerts IS 'Duplicate-face alerts; published_at is NULL until the relay has put the alert on the alert topic.';

-- Every pair in both directions, so that "every account linked to X" is one WHERE user_id = 'X'.
CREATE VIEW duplicate_accounts AS
SELECT user_id_low  AS user_id,
       user_id_high AS duplicate_user_id,
       first_seen_at, last_seen_at, seen_count, first_signature_id, last_signature_id
FROM duplicate_links
UNION ALL
SELECT user_id_high AS user_id,
       user_id_low  AS duplicate_user_id,
       first_seen_at, last_seen_at, seen_count, first_signature_id, last_signature_id
FROM duplicate_links;

COMMENT ON VIEW duplicate_accounts IS 'duplicate_links with each pair in both directions: filter on user_id.';
