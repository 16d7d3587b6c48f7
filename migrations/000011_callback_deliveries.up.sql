-- Signed callback deliveries seen within the signature's tolerance window (5 minutes either way of
-- the signed timestamp), so that a captured request cannot be replayed while its timestamp is still
-- accepted. Kept in PostgreSQL rather than in memory so that every instance behind the load
-- balancer agrees: a replay sent to another instance is still a duplicate.
--
-- A row is first a claim (claim set, accepted_at NULL) taken with INSERT ... ON CONFLICT before the
-- event is published, so that of two concurrent deliveries of one id only one publishes; the claim
-- is deleted if the publish fails (the producer's retry of the same id may then succeed) and marked
-- accepted once the broker has the event. A claim whose holder died is taken over after
-- claimed_until. Rows whose expires_at has passed are deleted in bounded batches by a background
-- sweep, off the request path.
CREATE TABLE callback_deliveries (
    -- scheme is 'webhook-id' (Standard Webhooks: the webhook-id header) or 'x-doppel-signature'
    -- (the deprecated form: the hex HMAC, which is unique per timestamp and body).
    scheme        text NOT NULL,
    delivery_id   text NOT NULL,
    claim         uuid NOT NULL,
    claimed_until timestamptz NOT NULL,
    accepted_at   timestamptz,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scheme, delivery_id)
);

-- The sweep of expired deliveries.
CREATE INDEX callback_deliveries_expires_at_idx ON callback_deliveries (expires_at);

COMMENT ON TABLE callback_deliveries IS 'Signed callback deliveries (webhook-id, or the deprecated X-Doppel-Signature) claimed or accepted within the signature tolerance window: a second delivery of one id answers duplicate and publishes nothing.';
