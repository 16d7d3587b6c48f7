DROP TABLE IF EXISTS reconcile_alerts;
ALTER TABLE alerts DROP COLUMN IF EXISTS matched_failed_user_ids;
ALTER TABLE duplicate_links DROP COLUMN IF EXISTS reaches_failed_attempt;
DROP INDEX IF EXISTS idv_checks_enroll_idx;
ALTER TABLE idv_checks DROP COLUMN IF EXISTS enroll_error, DROP COLUMN IF EXISTS enrolled_at, DROP COLUMN IF EXISTS found_by;
DROP TABLE IF EXISTS started_verifications;
