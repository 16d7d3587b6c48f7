DROP VIEW IF EXISTS duplicate_accounts;
DROP TABLE IF EXISTS alerts;
DROP TABLE IF EXISTS duplicate_links;
DROP TABLE IF EXISTS idv_checks;
