-- A verification whose get-result has no final verdict yet is stored as 'incomplete', not as
-- 'not_passed': only a final vendor state (a face search that ran, a FAIL verdict) stops a later
-- COMPLETED from being checked (see duplicate.Outcome.Final).
ALTER TABLE idv_checks DROP CONSTRAINT idv_checks_outcome_check;
ALTER TABLE idv_checks ADD CONSTRAINT idv_checks_outcome_check CHECK (outcome IN
    ('duplicates_found', 'no_duplicates', 'skipped', 'not_passed', 'incomplete', 'failed'));

-- Checks stored before this migration as 'not_passed' with a verdict other than FAIL were waiting
-- for a verdict, not refused: the next COMPLETED of each is checked again.
UPDATE idv_checks SET outcome = 'incomplete'
WHERE outcome = 'not_passed' AND overall_result IS DISTINCT FROM 'FAIL';

COMMENT ON COLUMN idv_checks.outcome IS 'duplicates_found, no_duplicates and not_passed (a FAIL verdict) are final; skipped (a notice such as SUBMIT_COMPLETED), incomplete (no final verdict yet) and failed are replaced by the next event of the verification.';
