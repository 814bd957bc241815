-- The thing model: the latest description each thing published, and the
-- rules persons made between two associated things they are bound to.

-- One row a thing: its latest description, as the JSON it was given in.
CREATE TABLE descriptions (
    thing   TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body    BLOB NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;

-- Rules: when thing a reports an event, thing b runs an action. id is
-- chosen by the maker and unique across the server; body is the signed
-- rule as JSON. A rule lives while its maker is bound to a and b and the
-- two are associated: unbind_thing and dissociate delete the rules that
-- depended on them.
CREATE TABLE rules (
    id      TEXT PRIMARY KEY,
    a       TEXT NOT NULL,
    b       TEXT NOT NULL,
    maker   TEXT NOT NULL,
    body    BLOB NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rules_a ON rules (a);
CREATE INDEX rules_b ON rules (b);
CREATE INDEX rules_maker ON rules (maker);
