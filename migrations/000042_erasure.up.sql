-- Erasure (issue 24): a person's data removed on request, a tombstone so that the vendor's memory
-- of them is not linked again, and the erasure's own record.

-- One row per erasure request: the job (a restart finishes what is not done) and its audit record.
-- user_id is in clear only while the job needs it (to remove the rows, then to publish the
-- subject_erased event); once done it is NULL and only user_pseudonym ('erased:' + the keyed hash,
-- DOPPEL_PSEUDONYM_KEY) is left. The reason is stored with the userId replaced by the pseudonym.
CREATE TABLE erasures (
    erasure_id           uuid PRIMARY KEY,
    user_id              text COLLATE "C",
    user_pseudonym       text NOT NULL,
    reason               text NOT NULL,
    region               text,
    requested_by         text NOT NULL,
    requested_at         timestamptz NOT NULL,
    legal_hold_override  text,
    status               text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'removed', 'done')),
    removed_at           timestamptz,
    done_at              timestamptz,
    removed              jsonb NOT NULL DEFAULT '{}',
    vendor_signature_ids text[] NOT NULL DEFAULT '{}',
    vendor_signature_regions text[] NOT NULL DEFAULT '{}',
    vendor_cleared       text[] NOT NULL DEFAULT '{}',
    attempts             integer NOT NULL DEFAULT 0,
    last_error           text,
    CHECK (status <> 'done' OR user_id IS NULL)
);

CREATE INDEX erasures_pseudonym_idx ON erasures (user_pseudonym, requested_at DESC);
CREATE INDEX erasures_unfinished_idx ON erasures (requested_at) WHERE status <> 'done';

COMMENT ON TABLE erasures IS 'Erasure requests (POST /v1/erasures, doppel erase): the job and its audit record; user_id is NULL once done.';
COMMENT ON COLUMN erasures.legal_hold_override IS 'The legal hold the request overrode ("override": "legal_hold"), NULL when the person was not held.';
COMMENT ON COLUMN erasures.vendor_signature_ids IS 'The person''s signatureIds: cleared at the vendor (DOPPEL_ADVANCE_CLEAR_DATA_PATH) or to be asked for by the operator.';

-- Tombstones: the keyed hash of each erased userId and of each of their signatureIds.
CREATE TABLE erased_users (
    user_hash  text PRIMARY KEY,
    erased_at  timestamptz NOT NULL,
    erasure_id uuid NOT NULL
);

CREATE TABLE erased_signatures (
    signature_hash text PRIMARY KEY,
    erased_at      timestamptz NOT NULL
);

COMMENT ON TABLE erased_users IS 'Tombstones of erased people (HMAC-SHA-256 of the userId): a later face-search answer naming them is linked without them; a check of theirs that completed before erased_at is not stored.';
COMMENT ON TABLE erased_signatures IS 'Tombstones of erased verifications (HMAC-SHA-256 of the signatureId): an event for one is skipped, with no vendor call and nothing stored.';

-- Reviews stay append-only, except for what an erasure does: inside a transaction that set
-- doppel.erasure to the pseudonym and doppel.erasure_subject to the erased userId (both
-- transaction-local, never stored), that userId may become the pseudonym in the pair (kept in
-- canonical order) and in the note; nothing else may change, and no row may be deleted.
CREATE OR REPLACE FUNCTION link_reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p text := current_setting('doppel.erasure', true);
    u text := current_setting('doppel.erasure_subject', true);
BEGIN
    IF TG_OP = 'UPDATE' AND p LIKE 'erased:%' AND coalesce(u, '') <> ''
       AND NEW.review_id = OLD.review_id AND NEW.decision = OLD.decision
       AND NEW.reviewed_by = OLD.reviewed_by AND NEW.reviewed_at = OLD.reviewed_at
       AND NEW.note = replace(OLD.note, u, p)
       AND ((NEW.user_id_low = OLD.user_id_low AND NEW.user_id_high = OLD.user_id_high)
            OR (OLD.user_id_low = u AND NEW.user_id_low = least(OLD.user_id_high, p COLLATE "C")
                AND NEW.user_id_high = greatest(OLD.user_id_high, p COLLATE "C"))
            OR (OLD.user_id_high = u AND NEW.user_id_low = least(OLD.user_id_low, p COLLATE "C")
                AND NEW.user_id_high = greatest(OLD.user_id_low, p COLLATE "C"))) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'link_reviews is append-only: record a new review instead of changing one';
END
$$;
