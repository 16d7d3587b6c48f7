DELETE FROM console_sessions WHERE analyst IS NOT NULL;
ALTER TABLE console_sessions DROP CONSTRAINT console_sessions_one_signer;
ALTER TABLE console_sessions DROP COLUMN analyst;
ALTER TABLE console_sessions ALTER COLUMN key_name SET NOT NULL;
DROP TABLE console_sign_in_failures;
DROP TABLE analysts;
