-- How many closed commands each thing has, kept by triggers, so that a
-- close prunes (a walk of MaxCommandsPerThing index entries) only when the
-- count went past the bound, and then down to some room below it: once
-- every pruneRoom closes, not at each one.
CREATE TABLE commands_closed_count (
    thing TEXT PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO commands_closed_count (thing, n)
    SELECT thing, count(*) FROM commands WHERE final_by != '' GROUP BY thing;
CREATE TRIGGER commands_closed_insert AFTER INSERT ON commands WHEN new.final_by != '' BEGIN
    INSERT INTO commands_closed_count (thing, n) VALUES (new.thing, 1)
        ON CONFLICT (thing) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER commands_closed_close AFTER UPDATE OF final_by ON commands
    WHEN old.final_by = '' AND new.final_by != '' BEGIN
    INSERT INTO commands_closed_count (thing, n) VALUES (new.thing, 1)
        ON CONFLICT (thing) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER commands_closed_delete AFTER DELETE ON commands WHEN old.final_by != '' BEGIN
    UPDATE commands_closed_count SET n = n - 1 WHERE thing = old.thing;
END;
