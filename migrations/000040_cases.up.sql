-- Cases (issue 25): a case is a ring with work to do. It follows its ring through merges and
-- splits by ring_key, the ring index's key (a member's userId that stays while that member is in
-- the ring), rewritten by the same transactions that change the ring index:
--   * a merge (doppel_merge_cases): the absorbed ring's case merges into the survivor's: its
--     history moves over, the survivor's assignee is kept (else the absorbed case's), the earlier
--     due time and oldest alert win, regions are joined; the absorbed case stays as a row
--     (status merged, merged_into) so that its caseId still answers. When the survivor has no
--     case, the absorbed case simply follows the ring's key.
--   * a split (doppel_split_case): the part that keeps the ring's key keeps the case; the other
--     part gets a new case, split_from the old one, whose history says so.
-- A case is opened (or reopened) in the batch that raises its ring's first open alert, and closed
-- by the review that leaves its ring with none. See docs/console.md.
CREATE TABLE cases (
    case_id       uuid PRIMARY KEY,
    -- The ring the case follows; NULL once merged into another case or when its ring dissolved.
    ring_key      text COLLATE "C" UNIQUE,
    status        text NOT NULL CHECK (status IN ('open', 'in_review', 'closed', 'merged')),
    assignee      text,
    claimed_at    timestamptz,
    snoozed_until timestamptz,
    -- The regions of the alerts that opened the case (and of the cases merged into it).
    regions       text[] NOT NULL DEFAULT '{}',
    -- When the oldest alert of the current run of work was raised (the run begins when a ring with
    -- no open alert gets one), and when the case is due: that plus the region's review SLA.
    opened_at     timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    -- The ring's size at the last decision: new accounts since then are size - decided_size.
    decided_size  integer,
    decided_at    timestamptz,
    merged_into   uuid REFERENCES cases,
    split_from    uuid REFERENCES cases,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The queue: the cases with work to do, by status then due time (GET /v1/cases, the console).
CREATE INDEX cases_queue_idx ON cases (status, due_at, case_id) WHERE status IN ('open', 'in_review');
-- ?status=closed: the closed cases, newest first (they only grow; the queue's order is for work).
CREATE INDEX cases_closed_idx ON cases (opened_at, case_id) WHERE status = 'closed';
-- The cap on claimed cases and ?assignee=: an analyst's cases.
CREATE INDEX cases_assignee_idx ON cases (assignee, status) WHERE assignee IS NOT NULL;

-- A case's history: notes (kind note) and what happened to it (claimed, assigned, snoozed,
-- decided, merged, split), each with the person and the time. Append-only; a merge moves the
-- absorbed case's rows to the survivor (from_case_id keeps where each was written).
CREATE TABLE case_events (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id      uuid NOT NULL REFERENCES cases,
    from_case_id uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('note', 'opened', 'claimed', 'assigned', 'snoozed', 'decided', 'merged', 'split', 'closed', 'reopened')),
    author       text NOT NULL,
    text         text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_events_case_idx ON case_events (case_id, event_id);

-- A merge: each ring from_keys[i] was absorbed by to_keys[i]. Called in the transaction that
-- writes the ring index, before the absorbed rings' rows are retired.
CREATE FUNCTION doppel_merge_cases(from_keys text[], to_keys text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    f text;
    t text;
    fc cases;
    tc cases;
BEGIN
    FOR f, t IN SELECT * FROM unnest(from_keys, to_keys) LOOP
        SELECT * INTO fc FROM cases WHERE ring_key = f;
        CONTINUE WHEN NOT FOUND;
        SELECT * INTO tc FROM cases WHERE ring_key = t;
        IF NOT FOUND THEN
            UPDATE cases SET ring_key = t WHERE case_id = fc.case_id;
            INSERT INTO case_events (case_id, from_case_id, kind, author, text)
            VALUES (fc.case_id, fc.case_id, 'merged', 'doppel', 'its ring absorbed another ring; the case follows the merged ring');
            CONTINUE;
        END IF;
        UPDATE case_events SET case_id = tc.case_id WHERE case_id = fc.case_id;
        UPDATE cases SET ring_key = NULL, status = 'merged', merged_into = tc.case_id WHERE case_id = fc.case_id;
        UPDATE cases SET
            assignee = coalesce(tc.assignee, fc.assignee),
            claimed_at = CASE WHEN tc.assignee IS NULL THEN fc.claimed_at ELSE tc.claimed_at END,
            status = CASE
                WHEN tc.status = 'closed' AND fc.status = 'closed' THEN 'closed'
                WHEN coalesce(tc.assignee, fc.assignee) IS NOT NULL THEN 'in_review'
                ELSE 'open' END,
            snoozed_until = CASE WHEN tc.snoozed_until IS NULL OR fc.snoozed_until IS NULL THEN NULL
                                 ELSE least(tc.snoozed_until, fc.snoozed_until) END,
            regions = (SELECT coalesce(array_agg(DISTINCT r ORDER BY r), '{}') FROM unnest(tc.regions || fc.regions) AS r),
            opened_at = CASE WHEN fc.status = 'closed' THEN tc.opened_at WHEN tc.status = 'closed' THEN fc.opened_at
                             ELSE least(tc.opened_at, fc.opened_at) END,
            due_at = CASE WHEN fc.status = 'closed' THEN tc.due_at WHEN tc.status = 'closed' THEN fc.due_at
                          ELSE least(tc.due_at, fc.due_at) END,
            decided_size = CASE WHEN tc.decided_size IS NULL AND fc.decided_size IS NULL THEN NULL
                                ELSE coalesce(tc.decided_size, 0) + coalesce(fc.decided_size, 0) END
        WHERE case_id = tc.case_id;
        INSERT INTO case_events (case_id, from_case_id, kind, author, text)
        VALUES (tc.case_id, fc.case_id, 'merged', 'doppel', format('case %s merged into this case (their rings joined)', fc.case_id));
    END LOOP;
END
$$;

-- A split of the ring keyed old_key into rings part_key and rest_key ('' for a side that is no
-- ring: one account). Called once the two rings' summaries are written.
CREATE FUNCTION doppel_split_case(old_key text, part_key text, rest_key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    oc cases;
    other text;
    new_id uuid;
BEGIN
    SELECT * INTO oc FROM cases WHERE ring_key = old_key;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    other := CASE WHEN part_key = old_key THEN rest_key WHEN rest_key = old_key THEN part_key
                  WHEN part_key <> '' THEN part_key ELSE rest_key END;
    IF old_key NOT IN (part_key, rest_key) THEN
        -- The side holding the key is one account now: the case follows the other side, if any.
        UPDATE cases SET ring_key = NULLIF(other, ''),
            status = CASE WHEN other = '' OR NOT EXISTS (SELECT 1 FROM rings r WHERE r.ring_key = other AND r.open_alerts > 0)
                          THEN 'closed' ELSE status END
        WHERE case_id = oc.case_id;
        INSERT INTO case_events (case_id, from_case_id, kind, author, text)
        VALUES (oc.case_id, oc.case_id, 'split', 'doppel', CASE WHEN other = '' THEN 'its ring dissolved'
                ELSE 'its ring split; the case follows the part that is still a ring' END);
        RETURN;
    END IF;
    -- The part that kept the case may have no open alert left (they were the other part's).
    UPDATE cases c SET status = 'closed', snoozed_until = NULL
    FROM rings r
    WHERE c.case_id = oc.case_id AND r.ring_key = old_key AND r.open_alerts = 0 AND c.status IN ('open', 'in_review');
    IF other = '' THEN
        RETURN;
    END IF;
    new_id := gen_random_uuid();
    INSERT INTO cases (case_id, ring_key, status, regions, opened_at, due_at, split_from)
    SELECT new_id, other, CASE WHEN r.open_alerts > 0 THEN 'open' ELSE 'closed' END, oc.regions, oc.opened_at, oc.due_at, oc.case_id
    FROM rings r WHERE r.ring_key = other
    ON CONFLICT (ring_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO case_events (case_id, from_case_id, kind, author, text) VALUES
        (new_id, new_id, 'split', 'doppel', format('split from case %s', oc.case_id)),
        (oc.case_id, oc.case_id, 'split', 'doppel', format('its ring split: the other part is case %s', new_id));
END
$$;

-- The rings that have open alerts today become cases (one statement: the rings with open alerts
-- are few next to the checks; their alerts are found by alerts_user_id_idx).
INSERT INTO cases (case_id, ring_key, status, regions, opened_at, due_at)
SELECT gen_random_uuid(), r.ring_key, 'open', coalesce(a.regions, '{}'), coalesce(a.oldest, now()), coalesce(a.oldest, now()) + interval '24 hours'
FROM rings r
CROSS JOIN LATERAL (
    SELECT array_agg(DISTINCT x.region ORDER BY x.region) AS regions, min(x.detected_at) AS oldest
    FROM ring_members m JOIN alerts x ON x.user_id = m.user_id AND x.open
    WHERE m.ring_key = r.ring_key
) a
WHERE r.open_alerts > 0;

COMMENT ON TABLE cases IS 'A ring with work to do, following its ring (ring_key) through merges and splits.';
COMMENT ON TABLE case_events IS 'Append-only history of a case: notes, claims, assignments, decisions, merges, splits.';
