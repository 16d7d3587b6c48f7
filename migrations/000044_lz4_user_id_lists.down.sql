ALTER TABLE check_overflow ALTER COLUMN user_ids SET COMPRESSION default;
ALTER TABLE idv_checks ALTER COLUMN similar_user_ids SET COMPRESSION default,
                       ALTER COLUMN matched_user_ids SET COMPRESSION default;
ALTER TABLE alerts ALTER COLUMN matched_user_ids SET COMPRESSION default,
                   ALTER COLUMN new_matched_user_ids SET COMPRESSION default,
                   ALTER COLUMN matched_failed_user_ids SET COMPRESSION default;
