-- The matched accounts of a check past the first 100 its face search named (duplicate.MaxPairsPerCheck),
-- stored once per check in the vendor's order. A face farm's answer names every earlier member: one
-- duplicate_links row per pair made K(K-1)/2 rows for a farm of K accounts. Past the bound an account
-- has no link row with the check's user; it joins that user's ring (rings, ring_members count every
-- member) and is kept here, so no match is lost. Only checks that name more than 100 accounts have a row.
-- Migrating down past 000005 and up again rebuilds the ring index from duplicate_links alone: the
-- accounts only an overflow joined to a ring are then in no ring until they are named again.
CREATE TABLE check_overflow (
    signature_id text PRIMARY KEY REFERENCES idv_checks (signature_id),
    user_ids     text[] NOT NULL
);

COMMENT ON TABLE check_overflow IS 'Matched userIds of a check past its first 100 (which are linked pair by pair in duplicate_links), in the vendor''s order: they joined the user''s ring without a link row each.';
