-- The read model for a database of millions of checks (issue 23). Before it, listing rings built
-- every ring's members and counted its links before ORDER BY ... LIMIT (26.6M index probes at 2M
-- checks), and "open" was an EXISTS over a view of every alert. Now:
--   * each ring row carries its summary (ring_id, link_count, first/last sighting, open alerts),
--     kept by the transactions that change links, rings, alerts and reviews (internal/postgres);
--   * each alert carries its open state, set when it is raised and cleared by the review that
--     reviews its last new pair.
-- Listing rings is then an index scan of rings, the queue an index scan of open alerts.

-- An alert is open while one of its new pairs (the user and a listed new match) has no review at
-- all: the one definition, used when an alert is raised, when a pair is reviewed, and below. The
-- pair's order is by bytes (COLLATE "C", as Go orders it and as link_reviews stores it) whatever
-- collation the caller's arguments carry.
CREATE FUNCTION doppel_alert_open(user_id text, new_matched_user_ids text[]) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN EXISTS (
    SELECT 1 FROM unnest(new_matched_user_ids) AS m
    WHERE NOT EXISTS (SELECT 1 FROM link_reviews r
                      WHERE r.user_id_low = least(user_id COLLATE "C", m COLLATE "C")
                        AND r.user_id_high = greatest(user_id COLLATE "C", m COLLATE "C")));

COMMENT ON FUNCTION doppel_alert_open(text, text[]) IS 'Whether an alert is still waiting for a review: one of its new pairs has none.';

-- A constant default adds the column without rewriting the table; the backfill below sets the
-- alerts that are open.
ALTER TABLE alerts ADD COLUMN open boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN alerts.open IS 'Waiting for a review (doppel_alert_open): set when raised, cleared by the review of its last new pair.';

-- The ring's public id, stored so that GET /v1/rings/{ringId} is an index look-up rather than a
-- SHA-256 of every ring's smallest member; a trigger keeps it from doppel_ring_id, the one
-- definition. link_count counts the ring's live links (between two members, not cleared by a
-- review); first_seen_at and last_seen_at are the earliest and latest sightings of those links;
-- open_alerts counts the members' open alerts; newest_user_id is the member whose latest
-- verification that named other accounts is the newest (newest_at), where a large ring's page
-- starts (doppel_newest_check).
ALTER TABLE rings
    ADD COLUMN ring_id       text,
    ADD COLUMN link_count    integer NOT NULL DEFAULT 0,
    ADD COLUMN first_seen_at timestamptz,
    ADD COLUMN last_seen_at  timestamptz,
    ADD COLUMN open_alerts   integer NOT NULL DEFAULT 0,
    ADD COLUMN newest_user_id text COLLATE "C",
    ADD COLUMN newest_at     timestamptz;

CREATE FUNCTION rings_set_ring_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.ring_id := doppel_ring_id(NEW.smallest_user_id);
    RETURN NEW;
END
$$;

CREATE TRIGGER rings_set_ring_id BEFORE INSERT OR UPDATE OF smallest_user_id ON rings
    FOR EACH ROW EXECUTE FUNCTION rings_set_ring_id();

-- An account's latest verification that named other accounts (face search matches): what makes a
-- ring member its ring's newest; no row when it has none. A set-returning SQL function of one
-- SELECT, so PostgreSQL inlines it into the statement that calls it and plans it for its argument:
-- called as a function (planned once, for any userId) it chose a backward scan of
-- idv_checks_checked_at_idx, 350 µs a call in the batch that keeps the summaries. OFFSET 0 keeps
-- max() from becoming that same scan: the look-up is idv_checks_user_id_idx and the user's checks.
CREATE FUNCTION doppel_newest_check(uid text) RETURNS TABLE (user_id text, checked_at timestamptz)
LANGUAGE sql STABLE AS $$
SELECT uid, max(x.checked_at) FROM (
    SELECT c.checked_at FROM idv_checks c WHERE c.user_id = uid AND cardinality(c.matched_user_ids) > 0 OFFSET 0
) x HAVING max(x.checked_at) IS NOT NULL
$$;

-- The part of a ring's summary that its members alone give, cheap for any ring (index look-ups per
-- member): its open alerts and its newest member. An erasure counts these again without counting
-- the ring's links. coalesce(a.open, false), not a.open: the latter lets the planner read the
-- partial index of every open alert.
CREATE FUNCTION doppel_ring_member_summary(key text)
RETURNS TABLE (open_alerts integer, newest_user_id text, newest_at timestamptz)
LANGUAGE sql STABLE AS $$
SELECT (SELECT count(*)::integer FROM ring_members m JOIN alerts a ON a.user_id = m.user_id
        WHERE m.ring_key = key AND coalesce(a.open, false)),
       n.user_id, n.checked_at
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT x.user_id, x.checked_at
    FROM ring_members m CROSS JOIN LATERAL doppel_newest_check(m.user_id) x
    WHERE m.ring_key = key
    ORDER BY x.checked_at DESC, x.user_id DESC LIMIT 1
) n ON true
$$;

-- A ring's summary computed from scratch: the backfill below, a ring split by a review, an erasure
-- that split a ring. The incremental upkeep must always agree with it (TestRingSummariesAgreeWithARecount).
CREATE FUNCTION doppel_ring_summary(key text,
    OUT link_count integer, OUT first_seen_at timestamptz, OUT last_seen_at timestamptz, OUT open_alerts integer,
    OUT newest_user_id text, OUT newest_at timestamptz)
LANGUAGE sql STABLE AS $$
SELECT s.link_count, s.first_seen_at, s.last_seen_at, ms.open_alerts, ms.newest_user_id, ms.newest_at
FROM (
    SELECT count(*)::integer AS link_count, min(l.first_seen_at) AS first_seen_at, max(l.last_seen_at) AS last_seen_at
    FROM ring_members a
    JOIN duplicate_links l ON l.user_id_low = a.user_id
    JOIN ring_members b ON b.user_id = l.user_id_high AND b.ring_key = a.ring_key
    WHERE a.ring_key = key
      AND NOT doppel_review_clears((SELECT r.decision FROM link_reviews r
                                    WHERE r.user_id_low = l.user_id_low AND r.user_id_high = l.user_id_high
                                    ORDER BY r.reviewed_at DESC, r.review_id DESC LIMIT 1))
) s, doppel_ring_member_summary(key) ms
$$;

COMMENT ON FUNCTION doppel_ring_summary(text) IS 'A ring''s link count, first and last sighting and open alerts, counted from scratch.';

CREATE FUNCTION doppel_refresh_ring_summaries(keys text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE rings r SET (link_count, first_seen_at, last_seen_at, open_alerts, newest_user_id, newest_at) =
        (SELECT s.link_count, s.first_seen_at, s.last_seen_at, s.open_alerts, s.newest_user_id, s.newest_at
         FROM doppel_ring_summary(r.ring_key) s)
    WHERE r.ring_key = ANY (keys);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION doppel_refresh_ring_summaries(text[]) IS 'Recounts the summaries of the rings given by ring_key.';

-- Backfill in bounded statements: open alerts by ranges of detected_at, then ring ids and
-- summaries 10,000 rings at a time. (golang-migrate runs a file in one transaction: the batches
-- bound each statement's memory and work, not the lock, which only writers of these rows wait on.)
DO $$
DECLARE
    lo timestamptz;
    hi timestamptz;
    keys text[];
    last_key text := '';
BEGIN
    SELECT min(detected_at), max(detected_at) INTO lo, hi FROM alerts;
    WHILE lo IS NOT NULL AND lo <= hi LOOP
        UPDATE alerts SET open = true
        WHERE detected_at >= lo AND detected_at < lo + interval '7 days'
          AND doppel_alert_open(user_id, new_matched_user_ids);
        lo := lo + interval '7 days';
    END LOOP;
    LOOP
        SELECT array_agg(ring_key ORDER BY ring_key) INTO keys
        FROM (SELECT ring_key FROM rings WHERE ring_key > last_key ORDER BY ring_key LIMIT 10000) k;
        EXIT WHEN keys IS NULL;
        UPDATE rings SET ring_id = doppel_ring_id(smallest_user_id) WHERE ring_key = ANY (keys);
        PERFORM doppel_refresh_ring_summaries(keys);
        last_key := keys[array_length(keys, 1)];
    END LOOP;
END
$$;

ALTER TABLE rings ALTER COLUMN ring_id SET NOT NULL;

-- The analysts' views read the stored state. fraud_rings lists members through a scalar subquery,
-- evaluated only for the rows a query keeps (SELECT ... ORDER BY size DESC LIMIT 10 reads ten
-- rings' members, not every ring's). link_count now counts live links, which is what joins a ring.
DROP VIEW fraud_rings;
CREATE VIEW fraud_rings AS
SELECT r.ring_id,
       r.size,
       ARRAY(SELECT m.user_id FROM ring_members m WHERE m.ring_key = r.ring_key ORDER BY m.user_id) AS members,
       r.smallest_user_id,
       r.link_count,
       r.first_seen_at,
       r.last_seen_at,
       r.open_alerts
FROM rings r;

COMMENT ON VIEW fraud_rings IS 'One row per fraud ring (accounts joined by links no review cleared): ring_id, size, sorted members, live links, open alerts.';

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
WHERE a.open;

COMMENT ON VIEW open_alerts IS 'Alerts at least one of whose new pairs nobody has reviewed yet: the analysts'' work queue.';
