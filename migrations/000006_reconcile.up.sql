-- Reconciliation (issue 12): verifications that started but whose completion callback never came are
-- found by polling get-result; failed attempts can be enrolled in the vendor's face search.

-- One row per verification started (an event on DOPPEL_TOPIC_STARTED). status is pending until the
-- verification is settled: by its COMPLETED event (completed), by polling (recovered, with the
-- verdict polling found), or by giving up (expired). next_poll_at is both the schedule and the
-- lease: an instance claims due rows with FOR UPDATE SKIP LOCKED and moves next_poll_at one
-- interval on in the same statement, so no other instance polls the row within that interval, and a
-- crash leaves the row pending, to be polled again when the interval has passed.
CREATE TABLE started_verifications (
    signature_id     text PRIMARY KEY,
    user_id          text,
    region           text,
    started_at       timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    status           text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'completed', 'recovered', 'expired')),
    verdict          text,
    next_poll_at     timestamptz NOT NULL,
    polls            integer NOT NULL DEFAULT 0,
    last_polled_at   timestamptz,
    last_poll_result text,
    polled_by        text,
    settled_at       timestamptz,
    source_topic     text,
    source_partition integer,
    source_offset    bigint
);

-- The poller's claim: due pending rows, oldest schedule first.
CREATE INDEX started_verifications_due_idx ON started_verifications (next_poll_at) WHERE status = 'pending';
-- The callbacks_missing ratio: settled rows of the last hour.
CREATE INDEX started_verifications_settled_idx ON started_verifications (settled_at) WHERE status <> 'pending';

COMMENT ON TABLE started_verifications IS 'Verifications started (idv.started events); pending until their COMPLETED event settles them, polling recovers them, or they expire.';
COMMENT ON COLUMN started_verifications.status IS 'pending; completed (its COMPLETED event came); recovered (found by polling get-result: the callback was lost); expired (no final verdict within DOPPEL_RECONCILE_GIVE_UP).';
COMMENT ON COLUMN started_verifications.verdict IS 'The final verdict polling found (PASS or FAIL), for recovered rows.';
COMMENT ON COLUMN started_verifications.started_at IS 'startedAt from the event, or when the event was read if it had none.';

-- How a check came to Doppel: its COMPLETED event, or polling when the callback was lost.
ALTER TABLE idv_checks
    ADD COLUMN found_by    text NOT NULL DEFAULT 'event' CHECK (found_by IN ('event', 'polling')),
    ADD COLUMN enrolled_at timestamptz,
    ADD COLUMN enroll_error text;

COMMENT ON COLUMN idv_checks.found_by IS 'event: processed from its COMPLETED event; polling: found by polling get-result after the callback was lost.';
COMMENT ON COLUMN idv_checks.enrolled_at IS 'When the failed verification was enrolled in the vendor''s face search (DOPPEL_ENROLL_FAILED), NULL if never.';
COMMENT ON COLUMN idv_checks.enroll_error IS 'Why the vendor refused to enrol the failed verification (it is not tried again).';

-- The enroller's queue: final FAIL verdicts not enrolled yet.
CREATE INDEX idv_checks_enroll_idx ON idv_checks (checked_at)
    WHERE overall_result = 'FAIL' AND enrolled_at IS NULL AND enroll_error IS NULL;

-- A link whose other account is known to Doppel only by an enrolled failed verification.
ALTER TABLE duplicate_links ADD COLUMN reaches_failed_attempt boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN duplicate_links.reaches_failed_attempt IS 'One side of the pair is known only by a failed verification enrolled in face search.';

ALTER TABLE alerts ADD COLUMN matched_failed_user_ids text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN alerts.matched_failed_user_ids IS 'Matched accounts known only by an enrolled failed verification.';

-- Alerts about the pipeline itself (callbacks_missing), published by the poller; one per hour at most.
CREATE TABLE reconcile_alerts (
    alert_id     uuid PRIMARY KEY,
    type         text NOT NULL,
    raised_at    timestamptz NOT NULL DEFAULT now(),
    payload      jsonb NOT NULL,
    published_at timestamptz
);

CREATE INDEX reconcile_alerts_raised_at_idx ON reconcile_alerts (type, raised_at);

COMMENT ON TABLE reconcile_alerts IS 'callbacks_missing alerts: the share of verifications recovered by polling crossed DOPPEL_RECONCILE_ALERT_RATIO.';
