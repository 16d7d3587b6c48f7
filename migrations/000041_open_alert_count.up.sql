-- The console's overview shows how many alerts are open. Counted, that is an index scan of every
-- open alert: 600,000 of them at 10,000,000 checks when few are reviewed (58 ms). It is kept here
-- instead, by triggers on alerts, so every writer keeps it (the pipeline's batch, a review closing
-- alerts, an erasure or a retention sweep deleting them): one row update per statement that inserts
-- or deletes alerts, and per alert whose open state an update changes.
CREATE TABLE counters (
    name  text PRIMARY KEY,
    value bigint NOT NULL
);

COMMENT ON TABLE counters IS 'Counts a page shows, kept by triggers instead of counted per request: open_alerts.';

CREATE FUNCTION alerts_count_open() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta bigint := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM new_alerts WHERE open;
    ELSE
        SELECT -count(*) INTO delta FROM old_alerts WHERE open;
    END IF;
    IF delta <> 0 THEN
        UPDATE counters SET value = value + delta WHERE name = 'open_alerts';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_count_open_insert AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS new_alerts FOR EACH STATEMENT EXECUTE FUNCTION alerts_count_open();
-- An update counts only when it changes open (a review closing alerts, an erasure): a row trigger
-- on that column, so the relay's update of published_at on every alert costs nothing here.
CREATE FUNCTION alerts_count_open_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE counters SET value = value + CASE WHEN NEW.open THEN 1 ELSE -1 END WHERE name = 'open_alerts';
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_count_open_update AFTER UPDATE OF open ON alerts
    FOR EACH ROW WHEN (OLD.open IS DISTINCT FROM NEW.open) EXECUTE FUNCTION alerts_count_open_row();
CREATE TRIGGER alerts_count_open_delete AFTER DELETE ON alerts
    REFERENCING OLD TABLE AS old_alerts FOR EACH STATEMENT EXECUTE FUNCTION alerts_count_open();

INSERT INTO counters (name, value) SELECT 'open_alerts', count(*) FROM alerts WHERE open;
