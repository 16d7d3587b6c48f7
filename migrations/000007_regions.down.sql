DROP VIEW region_fraud_rings;

DROP VIEW open_alerts;
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

-- fraud_rings may read duplicate_accounts (it did before the ring index): it is dropped and made again
-- from its own definition, whichever migration wrote it.
DO $$
DECLARE
    rings_def     text := pg_get_viewdef('fraud_rings'::regclass);
    rings_comment text := obj_description('fraud_rings'::regclass, 'pg_class');
BEGIN
    DROP VIEW fraud_rings;
    DROP VIEW duplicate_accounts;
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
    EXECUTE 'CREATE VIEW fraud_rings AS ' || rings_def;
    EXECUTE format('COMMENT ON VIEW fraud_rings IS %L', rings_comment);
END $$;

DROP INDEX alerts_region_detected_at_idx;
DROP INDEX idv_checks_region_replayed_idx;
DROP INDEX idv_checks_region_searched_idx;
ALTER TABLE duplicate_links DROP COLUMN regions;
ALTER TABLE alerts DROP COLUMN region;
ALTER TABLE idv_checks DROP COLUMN region;
