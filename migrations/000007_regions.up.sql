-- Regions: one vendor account per country, each with its own face database and bill. Rows stored
-- before regions existed came from the one region there was, named 'default'.
ALTER TABLE idv_checks ADD COLUMN region text NOT NULL DEFAULT 'default';
COMMENT ON COLUMN idv_checks.region IS 'The vendor region (account) whose face database the verification was searched in.';

ALTER TABLE alerts ADD COLUMN region text NOT NULL DEFAULT 'default';
COMMENT ON COLUMN alerts.region IS 'The region of the check that raised the alert.';

ALTER TABLE duplicate_links ADD COLUMN regions text[] NOT NULL DEFAULT '{}';
UPDATE duplicate_links SET regions = '{default}';
COMMENT ON COLUMN duplicate_links.regions IS 'The regions whose face search found the pair, in the order they first did.';

-- A region's monthly spend is counted from its stored face searches (see postgres.Store.FaceSearchesSince).
CREATE INDEX idv_checks_region_searched_idx ON idv_checks (region, checked_at)
    WHERE outcome IN ('duplicates_found', 'no_duplicates');
CREATE INDEX idv_checks_region_replayed_idx ON idv_checks (region, replayed_at) WHERE replayed_at IS NOT NULL;
CREATE INDEX alerts_region_detected_at_idx ON alerts (region, detected_at);

CREATE OR REPLACE VIEW duplicate_accounts AS
SELECT user_id_low  AS user_id,
       user_id_high AS duplicate_user_id,
       first_seen_at, last_seen_at, seen_count, first_signature_id, last_signature_id, regions
FROM duplicate_links
UNION ALL
SELECT user_id_high AS user_id,
       user_id_low  AS duplicate_user_id,
       first_seen_at, last_seen_at, seen_count, first_signature_id, last_signature_id, regions
FROM duplicate_links;

CREATE OR REPLACE VIEW open_alerts AS
SELECT a.alert_id, a.detected_at, a.severity, a.ring_id, a.ring_size, a.signature_id, a.user_id,
       a.new_matched_user_ids, u.unreviewed_user_ids, a.published_at, a.region
FROM alerts a
CROSS JOIN LATERAL (
    SELECT array_agg(m ORDER BY ord) AS unreviewed_user_ids
    FROM unnest(a.new_matched_user_ids) WITH ORDINALITY AS x(m, ord)
    WHERE NOT EXISTS (
        SELECT 1 FROM link_reviews r
        WHERE r.user_id_low = least(a.user_id, x.m) AND r.user_id_high = greatest(a.user_id, x.m))
) u
WHERE u.unreviewed_user_ids IS NOT NULL;

-- Fraud rings per region: the connected components of the links each region's face search found
-- (a pair found by two regions is in both), without the pairs a review cleared (false_positive,
-- same_person), as the ring rule has it. A region's ring id is that of a ring with the same
-- smallest member; a recursive walk for analysts, not a hot path.
CREATE VIEW region_fraud_rings AS
WITH RECURSIVE region_links AS (
    SELECT r.region, l.user_id_low, l.user_id_high, l.first_seen_at, l.last_seen_at
    FROM duplicate_links l
    CROSS JOIN LATERAL unnest(l.regions) AS r(region)
    WHERE NOT EXISTS (
        SELECT 1 FROM latest_link_reviews v
        WHERE v.user_id_low = l.user_id_low AND v.user_id_high = l.user_id_high
          AND v.decision IN ('false_positive', 'same_person'))
), pairs AS (
    SELECT region, user_id_low AS user_id, user_id_high AS other FROM region_links
    UNION ALL
    SELECT region, user_id_high, user_id_low FROM region_links
), roots AS (
    SELECT DISTINCT x.region, x.user_id_low AS root
    FROM region_links x
    WHERE NOT EXISTS (SELECT 1 FROM region_links h WHERE h.region = x.region AND h.user_id_high = x.user_id_low)
), reach(region, root, user_id) AS (
    SELECT region, root, root FROM roots
    UNION
    SELECT r.region, r.root, p.other
    FROM reach r
    JOIN pairs p ON p.region = r.region AND p.user_id = r.user_id
), rings AS (
    SELECT region, root, count(*)::integer AS size, array_agg(user_id ORDER BY user_id) AS members
    FROM reach
    GROUP BY region, root
    HAVING root = min(user_id)
)
SELECT r.region,
       doppel_ring_id(r.root) AS ring_id,
       r.size,
       r.members,
       s.link_count,
       s.first_seen_at,
       s.last_seen_at
FROM rings r
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS link_count, min(l.first_seen_at) AS first_seen_at, max(l.last_seen_at) AS last_seen_at
    FROM region_links l
    WHERE l.region = r.region AND l.user_id_low = ANY (r.members)
) s;

COMMENT ON VIEW region_fraud_rings IS 'One row per region and fraud ring that region''s face search found: region, ring_id, size, sorted members.';
