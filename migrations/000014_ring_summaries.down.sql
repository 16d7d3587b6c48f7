-- Back to the views that computed rings' summaries and alerts' open state on every read.
DROP VIEW fraud_rings;
CREATE VIEW fraud_rings AS
SELECT doppel_ring_id(r.smallest_user_id) AS ring_id,
       r.size,
       m.members,
       r.smallest_user_id,
       s.link_count,
       s.first_seen_at,
       s.last_seen_at
FROM rings r
CROSS JOIN LATERAL (
    SELECT array_agg(user_id ORDER BY user_id) AS members FROM ring_members WHERE ring_key = r.ring_key
) m
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS link_count, min(l.first_seen_at) AS first_seen_at, max(l.last_seen_at) AS last_seen_at
    FROM ring_members a
    JOIN duplicate_links l ON l.user_id_low = a.user_id
    JOIN ring_members b ON b.user_id = l.user_id_high AND b.ring_key = a.ring_key
    WHERE a.ring_key = r.ring_key
) s;
COMMENT ON VIEW fraud_rings IS 'One row per fraud ring (accounts joined by links no review cleared): ring_id, size, sorted members.';

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

DROP FUNCTION doppel_refresh_ring_summaries(text[]);
DROP FUNCTION doppel_ring_summary(text);
DROP FUNCTION doppel_ring_member_summary(text);
DROP FUNCTION doppel_newest_check(text);
DROP TRIGGER rings_set_ring_id ON rings;
DROP FUNCTION rings_set_ring_id();
ALTER TABLE rings
    DROP COLUMN ring_id,
    DROP COLUMN link_count,
    DROP COLUMN first_seen_at,
    DROP COLUMN last_seen_at,
    DROP COLUMN open_alerts,
    DROP COLUMN newest_user_id,
    DROP COLUMN newest_at;
ALTER TABLE alerts DROP COLUMN open;
DROP FUNCTION doppel_alert_open(text, text[]);
