DROP FUNCTION IF EXISTS doppel_split_case(text, text, text);
DROP FUNCTION IF EXISTS doppel_merge_cases(text[], text[]);
DROP TABLE IF EXISTS case_events;
DROP TABLE IF EXISTS cases;
