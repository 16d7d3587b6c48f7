-- The access log (issue 24): one row per read of a person's data, by the API (each route that takes
-- a userId, ringId or alertId, the subject export, the access log itself) or the review console (a
-- ring's page, a user's page, the queue or audit filtered by user). Rows come from a batching
-- writer (internal/accesslog), never from the hot path of events. See docs/access-log.md.
CREATE TABLE access_log (
    entry_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- When the answer was given (not when the row was written, a few ms later).
    read_at    timestamptz NOT NULL,
    -- The API key's name; in the console, the name of the key the analyst signed in with.
    actor      text NOT NULL,
    via        text NOT NULL CHECK (via IN ('api', 'console')),
    -- The route or console page, as its pattern: 'GET /v1/rings/{ringId}', 'GET /console/users'.
    what       text NOT NULL,
    -- The userIds the answer showed, the one asked about first; at most 1,000 (accesslog.MaxUserIDs),
    -- user_count says how many the answer showed in all.
    user_ids   text[] COLLATE "C" NOT NULL DEFAULT '{}',
    user_count integer NOT NULL CHECK (user_count >= 0),
    ring_id    text COLLATE "C",
    CHECK (user_count >= cardinality(user_ids))
);

-- Newest-first pages of GET /v1/access-log, ?since=, and the retention sweep (oldest first).
CREATE INDEX access_log_read_at_idx ON access_log (read_at, entry_id);
-- ?userId=, the subject export and the erasure's pseudonymisation: "entries that showed X".
CREATE INDEX access_log_user_ids_idx ON access_log USING gin (user_ids);
-- ?ringId= and ?actor=, newest first.
CREATE INDEX access_log_ring_id_idx ON access_log (ring_id, read_at, entry_id) WHERE ring_id IS NOT NULL;
CREATE INDEX access_log_actor_idx ON access_log (actor, read_at, entry_id);

COMMENT ON TABLE access_log IS 'Append-only: who (actor, via) read what (route or console page) about whom (user_ids, ring_id) and when (read_at).';
COMMENT ON COLUMN access_log.user_ids IS 'The userIds the answer showed, the one asked about first, at most 1,000; user_count is how many it showed in all.';

-- Append-only, with two exceptions, each opened by a transaction-local setting:
--  * DELETE by the log's own retention sweep (postgres.Store.DeleteAccessLogBefore), which sets
--    doppel.access_log_sweep to its cutoff: only rows read before that cutoff can go, so even the
--    sweep cannot delete a recent entry;
--  * UPDATE by an erasure (postgres.PseudonymizeAccessLog), which sets doppel.erasure = 'on': only
--    user_ids may change, and only by replacing ids with pseudonyms ('erased:' and the keyed hash),
--    element for element.
-- Anything else (a plain UPDATE or DELETE, TRUNCATE) is refused.
CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cutoff text := nullif(current_setting('doppel.access_log_sweep', true), '');
BEGIN
    -- Nested, so that TRUNCATE (a statement trigger, without OLD) never reads OLD's fields.
    IF TG_OP = 'DELETE' THEN
        IF cutoff IS NOT NULL AND OLD.read_at < cutoff::timestamptz THEN
            RETURN OLD;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF current_setting('doppel.erasure', true) = 'on'
           AND (NEW.entry_id, NEW.read_at, NEW.actor, NEW.via, NEW.what, NEW.user_count, NEW.ring_id)
               IS NOT DISTINCT FROM (OLD.entry_id, OLD.read_at, OLD.actor, OLD.via, OLD.what, OLD.user_count, OLD.ring_id)
           AND cardinality(NEW.user_ids) = cardinality(OLD.user_ids)
           AND NOT EXISTS (
               SELECT 1 FROM unnest(OLD.user_ids, NEW.user_ids) AS u(was, became)
               WHERE became IS DISTINCT FROM was AND became NOT LIKE 'erased:%') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'access_log is append-only: % is refused (only the retention sweep deletes, and an erasure pseudonymises userIds)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();
