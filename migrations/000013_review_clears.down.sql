-- region_fraud_rings as migration 7 wrote it, then the function it no longer needs.
CREATE OR REPLACE VIEW region_fraud_rings AS
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


DROP FUNCTION doppel_review_clears(text);
