DROP TRIGGER alerts_count_open_delete ON alerts;
DROP TRIGGER alerts_count_open_update ON alerts;
DROP TRIGGER alerts_count_open_insert ON alerts;
DROP FUNCTION alerts_count_open_row();
DROP FUNCTION alerts_count_open();
DROP TABLE counters;
