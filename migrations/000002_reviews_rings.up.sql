-- Reviews, fraud rings, alert severity and re-runs. See docs/api.md for the analyst queries.

-- The ring id rule of duplicate.RingID: 'ring_' and the first 16 hex digits of the SHA-256 of the
-- ring's smallest userId. Stable while a ring grows; when two rings merge the smaller id survives.
CREATE FUNCTION doppel_ring_id(smallest_user_id text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN 'ring_' || left(encode(sha256(convert_to(smallest_user_id, 'UTF8')), 'hex'), 16);

-- Alerts carry the ring they were raised in and a severity.
ALTER TABLE alerts
    ADD COLUMN ring_id   text,
    ADD COLUMN ring_size integer,
    ADD COLUMN severity  text NOT NULL DEFAULT 'normal' CHECK (severity IN ('normal', 'high'));

-- Keyset pagination of GET /v1/alerts.
CREATE INDEX alerts_detected_at_alert_id_idx ON alerts (detected_at, alert_id);

-- Deliberate re-runs of face search (doppel replay, POST /v1/replay).
ALTER TABLE idv_checks
    ADD COLUMN replay_count integer NOT NULL DEFAULT 0,
    ADD COLUMN replayed_at  timestamptz;

COMMENT ON COLUMN idv_checks.replay_count IS 'How many times a person re-ran face search for this check (each one billed).';

-- "Which verifications linked X?" is answered through idv_checks_user_id_idx, from X and the
-- accounts duplicate_links already ties to X; a GIN index on matched_user_ids would answer it too,
-- but costs every insert on the hot path (the benchmark measured it) for a rare analyst query.

-- Analysts' decisions on pairs of accounts, append-only: a new decision is a new row, the latest row
-- of a pair is its current decision. The pair is in the same canonical order as duplicate_links.
CREATE TABLE link_reviews (
    review_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id_low  text NOT NULL,
    user_id_high text NOT NULL,
    decision     text NOT NULL CHECK (decision IN ('confirmed_fraud', 'false_positive', 'same_person')),
    note         text NOT NULL DEFAULT '',
    reviewed_by  text NOT NULL,
    reviewed_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (user_id_low < user_id_high)
);

CREATE INDEX link_reviews_pair_idx ON link_reviews (user_id_low, user_id_high, reviewed_at DESC, review_id DESC);
CREATE INDEX link_reviews_high_idx ON link_reviews (user_id_high);

COMMENT ON TABLE link_reviews IS 'Append-only history of analysts'' decisions on pairs of accounts; the latest row of a pair is its decision.';

CREATE FUNCTION link_reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'link_reviews is append-only: record a new review instead of changing one';
END
$$;

CREATE TRIGGER link_reviews_append_only BEFORE UPDATE OR DELETE ON link_reviews
    FOR EACH ROW EXECUTE FUNCTION link_reviews_append_only();

-- The current decision of every reviewed pair.
CREATE VIEW latest_link_reviews AS
SELECT DISTINCT ON (user_id_low, user_id_high)
       user_id_low, user_id_high, decision, note, reviewed_by, reviewed_at, review_id
FROM link_reviews
ORDER BY user_id_low, user_id_high, reviewed_at DESC, review_id DESC;

COMMENT ON VIEW latest_link_reviews IS 'The latest review of each reviewed pair of accounts.';

-- Fraud rings: the connected components of the link graph, one row each. A component's smallest
-- member never appears as user_id_high, so the walk starts only from such local minima; UNION (not
-- UNION ALL) drops every (root, user) pair already reached, so the walk visits each member once per
-- root and ends without a depth bound. Cost grows with (roots x ring size): fine for an analyst
-- view, and the API's per-user look-up is bounded separately (duplicate.MaxRingMembers).
CREATE VIEW fraud_rings AS
WITH RECURSIVE roots AS (
    SELECT DISTINCT l.user_id_low AS root
    FROM duplicate_links l
    WHERE NOT EXISTS (SELECT 1 FROM duplicate_links h WHERE h.user_id_high = l.user_id_low)
), reach(root, user_id) AS (
    SELECT root, root FROM roots
    UNION
    SELECT r.root, a.duplicate_user_id
    FROM reach r
    JOIN duplicate_accounts a ON a.user_id = r.user_id
), rings AS (
    SELECT root, count(*)::integer AS size, array_agg(user_id ORDER BY user_id) AS members
    FROM reach
    GROUP BY root
    HAVING root = min(user_id)
)
SELECT doppel_ring_id(r.root) AS ring_id,
       r.size,
       r.members,
       r.root AS smallest_user_id,
       s.link_count,
       s.first_seen_at,
       s.last_seen_at
FROM rings r
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS link_count, min(l.first_seen_at) AS first_seen_at, max(l.last_seen_at) AS last_seen_at
    FROM duplicate_links l
    WHERE l.user_id_low = ANY (r.members)
) s;

COMMENT ON VIEW fraud_rings IS 'One row per fraud ring (connected component of duplicate_links): ring_id, size, sorted members.';

-- Alerts at least one of whose new pairs nobody has reviewed yet: the analysts' work queue.
CREATE VIEW open_alerts AS
SELECT a.alert_id, a.detected_at, a.severity, a.ring_id, a.ring_size, a.signature_id, a.user_id,
       a.new_matched_user_ids, u.unreviewed_user_ids, a.published_at
FROM alerts a
CROSS JOIN LATERAL (
    SELECT array_agg(m ORDER BY ord) AS unreviewed_user_ids
    FROM unnest(a.new_matched_user_ids) WITH ORDINALITY AS x(m, ord)
    WHERE NOT EXISTS (
        SELECT 1 FROM link_reviews r
        WHERE r.user_id_low = least(a.user_id, x.m) AND r.user_id_high = greatest(a.user_id, x.m))
) u
WHERE u.unreviewed_user_ids IS NOT NULL;

COMMENT ON VIEW open_alerts IS 'Alerts with at least one new pair that has no review yet; unreviewed_user_ids lists those pairs.';
