-- Accounts: persons and things, with their password hashes.
CREATE TABLE accounts (
    name      TEXT PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('person', 'thing')),
    pass_hash TEXT NOT NULL,
    created   INTEGER NOT NULL
) WITHOUT ROWID;

-- Devices: a client id bound to one account for good.
CREATE TABLE devices (
    device     TEXT PRIMARY KEY,
    account    TEXT NOT NULL REFERENCES accounts (name),
    pubkey     TEXT NOT NULL DEFAULT '',
    addrs      TEXT NOT NULL DEFAULT '[]',
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX devices_account ON devices (account);

-- Relations between two accounts, one row a pair with a < b.
-- kind: friend, bound (person a or b owns the thing), associated (two things).
-- state: pending (asked by actor), active, recycled (removed by actor, restorable until expires).
CREATE TABLE relations (
    a       TEXT NOT NULL,
    b       TEXT NOT NULL,
    kind    TEXT NOT NULL,
    state   TEXT NOT NULL,
    actor   TEXT NOT NULL,
    since   INTEGER NOT NULL,
    expires INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE INDEX relations_b ON relations (b);

-- Groups (g: feeds) and their members; state member or applied.
CREATE TABLE groups (
    feeds   TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    owner   TEXT NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE group_members (
    feeds   TEXT NOT NULL,
    account TEXT NOT NULL,
    state   TEXT NOT NULL,
    since   INTEGER NOT NULL,
    PRIMARY KEY (feeds, account)
) WITHOUT ROWID;
CREATE INDEX group_members_account ON group_members (account);

-- Conversations: one row each, written once when the first message comes;
-- a and b are the two accounts of a dm. The last SeqId is the largest seq
-- in messages, so a commit writes no row here.
CREATE TABLE conversations (
    feeds TEXT PRIMARY KEY,
    a     TEXT NOT NULL DEFAULT '',
    b     TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX conversations_a ON conversations (a) WHERE a != '';
CREATE INDEX conversations_b ON conversations (b) WHERE b != '';

-- Messages, clustered by conversation and SeqId: a conversation's history
-- is one range of the table, and appending writes the end of that range.
-- MsgIds are time-ordered (ULID), so their index grows at its end too.
CREATE TABLE messages (
    feeds       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    msg_id      TEXT NOT NULL,
    msg_type    TEXT NOT NULL,
    sender      TEXT NOT NULL,
    payload     BLOB NOT NULL,
    time_create INTEGER NOT NULL,
    device      TEXT NOT NULL,
    sig         TEXT NOT NULL,
    PRIMARY KEY (feeds, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_msg_id ON messages (msg_id);

-- Delivery cursors: the last SeqId a device acknowledged in a conversation.
CREATE TABLE cursors (
    device TEXT NOT NULL,
    feeds  TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (device, feeds)
) WITHOUT ROWID;

-- One-time pairing codes that let a person bind a thing.
CREATE TABLE pairing_codes (
    code    TEXT PRIMARY KEY,
    thing   TEXT NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;

-- Bearer tokens for the HTTP API (sha256 of the token).
CREATE TABLE tokens (
    hash    TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
