-- Before 000003 a verdict still to come was stored as 'not_passed'.
UPDATE idv_checks SET outcome = 'not_passed' WHERE outcome = 'incomplete';
ALTER TABLE idv_checks DROP CONSTRAINT idv_checks_outcome_check;
ALTER TABLE idv_checks ADD CONSTRAINT idv_checks_outcome_check CHECK (outcome IN
    ('duplicates_found', 'no_duplicates', 'skipped', 'not_passed', 'failed'));
COMMENT ON COLUMN idv_checks.outcome IS NULL;
