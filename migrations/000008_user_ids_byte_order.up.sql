-- userIds compare byte by byte, as Go compares them, whatever the database's collation.
--
-- Doppel puts each pair in canonical order in Go (duplicate.PairOf: low < high by bytes) and takes a
-- ring's id from its smallest member by bytes (duplicate.RingID). The columns compared in the
-- database's default collation: in a database created with en_US.UTF-8 (the postgres image's
-- default) 'B' sorts after 'a', so CHECK (user_id_low < user_id_high) refused the pair Go wrote, and
-- least()/min() named other pairs and other smallest members than Go did. The "C" collation is also
-- the cheapest to compare: every btree insert on these columns is a memcmp, not a strcoll.
--
-- The views read these columns, and a column a view reads cannot change type: each view is dropped
-- and made again from its own definition (whichever migration wrote it), in dependency order, so
-- its comparisons are resolved against the new collation.
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
        ALTER COLUMN user_id          TYPE text   COLLATE "C",
        ALTER COLUMN similar_user_ids TYPE text[] COLLATE "C",
        ALTER COLUMN matched_user_ids TYPE text[] COLLATE "C";
    ALTER TABLE duplicate_links
        ALTER COLUMN user_id_low  TYPE text COLLATE "C",
        ALTER COLUMN user_id_high TYPE text COLLATE "C";
    ALTER TABLE link_reviews
        ALTER COLUMN user_id_low  TYPE text COLLATE "C",
        ALTER COLUMN user_id_high TYPE text COLLATE "C";
    ALTER TABLE alerts
        ALTER COLUMN user_id                 TYPE text   COLLATE "C",
        ALTER COLUMN matched_user_ids        TYPE text[] COLLATE "C",
        ALTER COLUMN new_matched_user_ids    TYPE text[] COLLATE "C",
        ALTER COLUMN matched_failed_user_ids TYPE text[] COLLATE "C";
    ALTER TABLE rings
        ALTER COLUMN ring_key         TYPE text COLLATE "C",
        ALTER COLUMN smallest_user_id TYPE text COLLATE "C";
    ALTER TABLE ring_members
        ALTER COLUMN user_id  TYPE text COLLATE "C",
        ALTER COLUMN ring_key TYPE text COLLATE "C";
    ALTER TABLE started_verifications
        ALTER COLUMN user_id TYPE text COLLATE "C";

    FOR i IN 1 .. array_length(views, 1) LOOP
        EXECUTE format('CREATE VIEW %I AS ', views[i]) || defs[i];
        EXECUTE format('COMMENT ON VIEW %I IS %L', views[i], comments[i]);
    END LOOP;
END $$;
