-- The person side of the thing model: the commands this account sent, how
-- each went (as its thing reported, or a local timeout), the feedback of
-- other things that a command's chain caused, and what each thing last
-- reported: its properties, its description and its recent events.

-- final_by is '' while a command is open, 'thing' once its thing answered
-- it for good (a result, or a rejecting ack), 'local' once it timed out
-- here without one. expires is 0 for a row made by feedback that arrived
-- before the command itself (a stub, filled in when the command comes).
CREATE TABLE commands (
    msg_id   TEXT PRIMARY KEY,
    thing    TEXT NOT NULL,
    action   TEXT NOT NULL DEFAULT '',
    input    TEXT NOT NULL DEFAULT '', -- JSON, or '' for none
    write    TEXT NOT NULL DEFAULT '', -- JSON object, or '' for none
    expires  INTEGER NOT NULL,         -- unix ms
    trace    TEXT NOT NULL DEFAULT '', -- JSON thing.Trace
    state    TEXT NOT NULL,
    output   TEXT NOT NULL DEFAULT '', -- JSON, or ''
    error    TEXT NOT NULL DEFAULT '',
    final_by TEXT NOT NULL DEFAULT '',
    created  INTEGER NOT NULL,         -- unix ms
    updated  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX commands_thing ON commands (thing, created);
CREATE INDEX commands_open ON commands (final_by, expires);

-- Feedback whose trace names one of our commands as its origin, from any
-- thing of the chain: what the command caused downstream.
CREATE TABLE command_chain (
    origin_msg TEXT NOT NULL,
    msg_id     TEXT NOT NULL, -- the feedback message
    thing      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    cmd        TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT '',
    event      TEXT NOT NULL DEFAULT '',
    body       TEXT NOT NULL DEFAULT '', -- JSON output, data or props, or ''
    error      TEXT NOT NULL DEFAULT '',
    hops       INTEGER NOT NULL DEFAULT 0,
    at         INTEGER NOT NULL,
    PRIMARY KEY (origin_msg, thing, msg_id)
) WITHOUT ROWID;
CREATE TRIGGER commands_gone AFTER DELETE ON commands BEGIN
    DELETE FROM command_chain WHERE origin_msg = old.msg_id;
END;

-- The last value each thing reported for each property: a report with a
-- lower rev never replaces one with a higher.
CREATE TABLE thing_props (
    thing TEXT NOT NULL,
    prop  TEXT NOT NULL,
    value TEXT NOT NULL, -- JSON
    rev   INTEGER NOT NULL,
    at    INTEGER NOT NULL, -- unix ms, the thing's clock
    cause TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (thing, prop)
) WITHOUT ROWID;

-- The highest version of each thing's description seen here.
CREATE TABLE thing_descriptions (
    thing   TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL, -- JSON thing.Description
    at      INTEGER NOT NULL
) WITHOUT ROWID;

-- Each thing's recent events, a few per thing.
CREATE TABLE thing_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    thing  TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    event  TEXT NOT NULL,
    data   TEXT NOT NULL DEFAULT '',
    cause  TEXT NOT NULL DEFAULT '',
    at     INTEGER NOT NULL
);
CREATE INDEX thing_events_thing ON thing_events (thing, id);
