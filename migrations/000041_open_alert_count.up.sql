-- The console's overview shows how many alerts are open. Counted, that is an index scan of every
-- open alert: 600,000 of them at 10,000,000 checks when few are reviewed (58 ms). It is kept here
-- instead, by statement-level triggers on alerts, so every writer keeps it (the pipeline's batch,
-- a review closing alerts, an erasure or a retention sweep deleting them) at one row update per
-- statement that changes an alert's open state.
CREATE TABLE counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);

COMMENT ON TABLE counters IS 'Counts a page shows, kept by triggers instead of counted per request: open_alerts.';

CREATE FUNCTION alerts_count_open() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT delta + count(*) INTO delta FROM new_alerts WHERE open;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT delta - count(*) INTO delta FROM old_alerts WHERE open;
    END IF;
    IF delta <> 0 THEN
        UPDATE counters SET value = value + delta WHERE name = 'open_alerts';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_count_open_insert AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS new_alerts FOR EACH STATEMENT EXECUTE FUNCTION alerts_count_open();
CREATE TRIGGER alerts_count_open_update AFTER UPDATE ON alerts
    REFERENCING OLD TABLE AS old_alerts NEW TABLE AS new_alerts FOR EACH STATEMENT EXECUTE FUNCTION alerts_count_open();
CREATE TRIGGER alerts_count_open_delete AFTER DELETE ON alerts
    REFERENCING OLD TABLE AS old_alerts FOR EACH STATEMENT EXECUTE FUNCTION alerts_count_open();

INSERT INTO counters (name, value) SELECT 'open_alerts', count(*) FROM alerts WHERE open;
