CREATE OR REPLACE FUNCTION link_reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'link_reviews is append-only: record a new review instead of changing one';
END
$$;

DROP TABLE erased_signatures;
DROP TABLE erased_users;
DROP TABLE erasures;
