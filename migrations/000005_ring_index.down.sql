CREATE INDEX IF NOT EXISTS alerts_user_id_idx ON alerts (user_id);
CREATE INDEX IF NOT EXISTS alerts_detected_at_idx ON alerts (detected_at);
ALTER TABLE alerts DROP COLUMN IF EXISTS new_matched_count, DROP COLUMN IF EXISTS matched_count;
ALTER TABLE idv_checks DROP COLUMN IF EXISTS matched_count, DROP COLUMN IF EXISTS similar_count;

DROP VIEW IF EXISTS fraud_rings;
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

DROP TABLE IF EXISTS ring_members;
DROP TABLE IF EXISTS rings;
