-- The closed commands of a thing by age, so that keeping the newest
-- MaxCommandsPerThing of them costs a walk of that many index entries at
-- each close, not a scan of the table.
CREATE INDEX commands_closed ON commands (thing, created) WHERE final_by != '';
