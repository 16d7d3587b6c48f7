-- The lists of userIds (a check's matches and overflow, an alert's matches) are compressed with lz4
-- instead of pglz where the server has it. A face farm's overflow lists hold thousands of ids each:
-- erasing one farm member rewrites every list naming them, and pglz's compression was most of that
-- cost (a farm of 5,000: 1.46 s with pglz, 0.49 s with lz4; writing the lists is faster too). Only
-- values written from now on are compressed this way; nothing is rewritten, so this is safe on a
-- large table. A server built without lz4 keeps pglz and says so.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE check_overflow ALTER COLUMN user_ids SET COMPRESSION lz4;
        ALTER TABLE idv_checks ALTER COLUMN similar_user_ids SET COMPRESSION lz4,
                               ALTER COLUMN matched_user_ids SET COMPRESSION lz4;
        ALTER TABLE alerts ALTER COLUMN matched_user_ids SET COMPRESSION lz4,
                           ALTER COLUMN new_matched_user_ids SET COMPRESSION lz4,
                           ALTER COLUMN matched_failed_user_ids SET COMPRESSION lz4;
    ELSE
        RAISE NOTICE 'this PostgreSQL has no lz4: the lists of userIds stay compressed with pglz';
    END IF;
END
$$;
