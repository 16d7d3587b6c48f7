-- Back to the database's default collation for userIds (see the up migration for why it is wrong).
DO $$
DECLARE
    views    text[] := ARRAY['latest_link_reviews', 'duplicate_accounts', 'fraud_rings', 'open_alerts', 'region_fraud_rings'];
    defs     text[] := '{}';
    comments text[] := '{}';
    i        integer;
BEGIN
    FOR i IN 1 .. array_length(views, 1) LOOP
        defs := defs || pg_get_viewdef(views[i]::regclass);
        comments := comments || obj_description(views[i]::regclass, 'pg_class');
    END LOOP;
    FOR i IN REVERSE array_length(views, 1) .. 1 LOOP
        EXECUTE format('DROP VIEW %I', views[i]);
    END LOOP;

    ALTER TABLE idv_checks
        ALTER COLUMN user_id          TYPE text   COLLATE "default",
        ALTER COLUMN similar_user_ids TYPE text[] COLLATE "default",
        ALTER COLUMN matched_user_ids TYPE text[] COLLATE "default";
    ALTER TABLE duplicate_links
        ALTER COLUMN user_id_low  TYPE text COLLATE "default",
        ALTER COLUMN user_id_high TYPE text COLLATE "default";
    ALTER TABLE link_reviews
        ALTER COLUMN user_id_low  TYPE text COLLATE "default",
        ALTER COLUMN user_id_high TYPE text COLLATE "default";
    ALTER TABLE alerts
        ALTER COLUMN user_id                 TYPE text   COLLATE "default",
        ALTER COLUMN matched_user_ids        TYPE text[] COLLATE "default",
        ALTER COLUMN new_matched_user_ids    TYPE text[] COLLATE "default",
        ALTER COLUMN matched_failed_user_ids TYPE text[] COLLATE "default";
    ALTER TABLE rings
        ALTER COLUMN ring_key         TYPE text COLLATE "default",
        ALTER COLUMN smallest_user_id TYPE text COLLATE "default";
    ALTER TABLE ring_members
        ALTER COLUMN user_id  TYPE text COLLATE "default",
        ALTER COLUMN ring_key TYPE text COLLATE "default";
    ALTER TABLE started_verifications
        ALTER COLUMN user_id TYPE text COLLATE "default";

    FOR i IN 1 .. array_length(views, 1) LOOP
        EXECUTE format('CREATE VIEW %I AS ', views[i]) || defs[i];
        EXECUTE format('COMMENT ON VIEW %I IS %L', views[i], comments[i]);
    END LOOP;
END $$;
