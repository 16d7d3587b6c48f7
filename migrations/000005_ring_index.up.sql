-- The ring index: every account's fraud ring, kept up to date as links are written (union by size,
-- see duplicate.MergeRings) instead of walked recursively inside the committing transaction. A pair
-- whose latest review is false_positive or same_person joins no ring. An account in no row is a ring
-- of one.

-- One row per ring of two or more accounts. ring_key is the userId of one of its members (it stays
-- while that member does); the public id is doppel_ring_id(smallest_user_id).
CREATE TABLE rings (
    ring_key         text PRIMARY KEY,
    smallest_user_id text NOT NULL,
    size             integer NOT NULL CHECK (size >= 2)
);

-- One row per account in a ring. The primary key answers "which ring is X in" (every batch, every
-- ring look-up); ring_members_ring_key_idx answers "who is in ring K" (the members of /cluster and
-- fraud_rings, and the one UPDATE that moves a merged ring's members).
CREATE TABLE ring_members (
    user_id  text PRIMARY KEY,
    ring_key text NOT NULL
);

CREATE INDEX ring_members_ring_key_idx ON ring_members (ring_key);

COMMENT ON TABLE rings IS 'Fraud rings of two or more accounts (connected components of links no review cleared); id = doppel_ring_id(smallest_user_id).';
COMMENT ON TABLE ring_members IS 'The ring of each account that is in one; an account without a row is a ring of one.';

-- Fill the index from the links already stored: label propagation over links no review cleared,
-- each account ending with its component's smallest userId (a member, as ring_key must be). A
-- one-off cost: one pass over the links per step of the longest chain in any ring.
CREATE TEMP TABLE ring_labels AS
WITH live AS (
    SELECT l.user_id_low, l.user_id_high FROM duplicate_links l
    WHERE coalesce((SELECT r.decision FROM link_reviews r
                    WHERE r.user_id_low = l.user_id_low AND r.user_id_high = l.user_id_high
                    ORDER BY r.reviewed_at DESC, r.review_id DESC LIMIT 1), '') NOT IN ('false_positive', 'same_person')
)
SELECT user_id_low AS user_id, user_id_low AS label, user_id_high AS other FROM live
UNION ALL
SELECT user_id_high, user_id_high, user_id_low FROM live;

DO $$
DECLARE
    changed bigint;
BEGIN
    LOOP
        WITH best AS (
            SELECT a.user_id, min(b.label) AS label
            FROM ring_labels a JOIN ring_labels b ON b.user_id = a.other
            GROUP BY a.user_id
        )
        UPDATE ring_labels t SET label = best.label
        FROM best WHERE t.user_id = best.user_id AND best.label < t.label;
        GET DIAGNOSTICS changed = ROW_COUNT;
        EXIT WHEN changed = 0;
    END LOOP;
END
$$;

INSERT INTO ring_members (user_id, ring_key)
SELECT DISTINCT user_id, label FROM ring_labels;

INSERT INTO rings (ring_key, smallest_user_id, size)
SELECT ring_key, ring_key, count(*) FROM ring_members GROUP BY ring_key;

DROP TABLE ring_labels;

-- fraud_rings reads the index instead of walking the link graph. link_count counts the links
-- between two members of the ring (a cleared link to an outsider is not part of it).
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

-- A vendor answer can list thousands of ids (a face farm). Links keep every pair; the id lists of a
-- check and of an alert keep the first duplicate.MaxListedUserIDs and the counts say how many there
-- were (NULL on older rows: the list is complete).
ALTER TABLE idv_checks
    ADD COLUMN similar_count integer,
    ADD COLUMN matched_count integer;
ALTER TABLE alerts
    ADD COLUMN matched_count     integer,
    ADD COLUMN new_matched_count integer;

-- Indexes that no query uses cost every insert: GET /v1/alerts pages on
-- alerts_detected_at_alert_id_idx (detected_at, alert_id), which also serves "detected_at >= $1";
-- nothing looks alerts up by user_id.
DROP INDEX IF EXISTS alerts_detected_at_idx;
DROP INDEX IF EXISTS alerts_user_id_idx;
