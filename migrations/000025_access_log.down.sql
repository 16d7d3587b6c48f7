DROP TABLE IF EXISTS access_log;
DROP FUNCTION IF EXISTS access_log_append_only();
