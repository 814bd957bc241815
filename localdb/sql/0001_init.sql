-- Messages: the node's whole history, whatever path each message took.
-- local_order is the rowid, so every insert appends to the table; messages
-- are never deleted, so it only grows, also across restarts. MsgIds are
-- time-ordered (ULID), so their unique index grows at its end too.
-- via: how this device first got the message (local = sent from here).
CREATE TABLE messages (
    local_order INTEGER PRIMARY KEY,
    feeds       TEXT NOT NULL,
    seq         INTEGER NOT NULL DEFAULT 0, -- 0 until the server sequences it
    msg_id      TEXT NOT NULL,
    msg_type    TEXT NOT NULL,
    sender      TEXT NOT NULL,
    payload     BLOB NOT NULL,
    time_create INTEGER NOT NULL,
    device      TEXT NOT NULL,
    sig         TEXT NOT NULL,
    via         TEXT NOT NULL CHECK (via IN ('local', 'p2p', 'server', 'sync'))
);
CREATE UNIQUE INDEX messages_msg_id ON messages (msg_id);
-- A conversation's history: sequenced by seq, unsequenced (seq 0) by
-- local_order. A pull appends at the end of its conversation's range.
CREATE INDEX messages_feeds_seq ON messages (feeds, seq, local_order);
-- What still has to go up with history_push; small, since rows leave it
-- once sequenced.
CREATE INDEX messages_unsequenced ON messages (local_order) WHERE seq = 0;

-- Outbox: own messages not yet delivered by any path. queued is the
-- message's local_order, so pending rows come out in send order.
CREATE TABLE outbox (
    msg_id       TEXT PRIMARY KEY,
    queued       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    last_attempt INTEGER NOT NULL DEFAULT 0 -- unix ms
) WITHOUT ROWID;
CREATE INDEX outbox_queued ON outbox (queued);

-- Relations of this account, as the server last told them.
CREATE TABLE relations (
    user    TEXT PRIMARY KEY,
    kind    TEXT NOT NULL,
    state   TEXT NOT NULL,
    since   INTEGER NOT NULL,
    expires INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Devices of related accounts, as the server last told them, so streams
-- from them are accepted while the server is down.
CREATE TABLE peers (
    device  TEXT PRIMARY KEY,
    user    TEXT NOT NULL,
    status  TEXT NOT NULL,
    addrs   TEXT NOT NULL DEFAULT '[]', -- JSON array of multiaddrs
    updated INTEGER NOT NULL            -- unix ms
) WITHOUT ROWID;
CREATE INDEX peers_user ON peers (user);

-- Pull cursors: the last SeqId this device holds without gaps, per conversation.
CREATE TABLE cursors (
    feeds TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL
) WITHOUT ROWID;

-- Small node state (key/value).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
