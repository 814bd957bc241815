-- A message may come by gossip (GossipSub among a group's members) or as
-- a direct frame over a relayed connection: via says so. SQLite cannot change a CHECK constraint in place, so the table
-- is rebuilt, with its rows (local_order kept) and its indexes.
CREATE TABLE messages_new (
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
    via         TEXT NOT NULL CHECK (via IN ('local', 'p2p', 'server', 'sync', 'gossip', 'relayed'))
);
INSERT INTO messages_new (local_order, feeds, seq, msg_id, msg_type, sender, payload, time_create, device, sig, via)
    SELECT local_order, feeds, seq, msg_id, msg_type, sender, payload, time_create, device, sig, via FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE UNIQUE INDEX messages_msg_id_sender ON messages (msg_id, sender);
CREATE INDEX messages_feeds_seq ON messages (feeds, seq, local_order);
CREATE INDEX messages_unsequenced ON messages (local_order) WHERE seq = 0;
CREATE INDEX messages_commands ON messages (time_create) WHERE msg_type = 'command';
