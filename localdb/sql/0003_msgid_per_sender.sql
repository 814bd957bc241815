-- A MsgId is unique per sender, not overall: alice's and bob's messages may
-- carry the same MsgId and are two messages, and one sender's MsgId names
-- one message. msg_id comes first so that inserts still append to the
-- index's end (MsgIds are time-ordered) and a look-up by MsgId alone still
-- uses it.
DROP INDEX messages_msg_id;
CREATE UNIQUE INDEX messages_msg_id_sender ON messages (msg_id, sender);

-- Refused messages are keyed the same way; those recorded before this
-- migration have no sender.
CREATE TABLE refused_new (
    sender TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    feeds  TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL, -- unix ms
    PRIMARY KEY (msg_id, sender)
) WITHOUT ROWID;
INSERT INTO refused_new (sender, msg_id, feeds, seq, reason, at)
    SELECT '', msg_id, feeds, seq, reason, at FROM refused;
DROP TABLE refused;
ALTER TABLE refused_new RENAME TO refused;
CREATE INDEX refused_feeds ON refused (feeds);

-- Messages held here that the server answered "conflict" for: their
-- (sender, MsgId) names another message on the server. They stay stored,
-- unsequenced, but are never pushed or sent again.
CREATE TABLE conflicted (
    sender TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    feeds  TEXT NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL, -- unix ms
    PRIMARY KEY (msg_id, sender)
) WITHOUT ROWID;
