-- How much of each conversation this device holds: cursors.seq is the last
-- SeqId held without a gap, last_seq the conversation's last SeqId as the
-- server last said. A conversation is complete when the two meet and no
-- message of it was refused.
ALTER TABLE cursors ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;

-- Messages the server returned that did not check out (a broken signature,
-- a device of someone else): never shown, kept here to be reported.
CREATE TABLE refused (
    msg_id TEXT PRIMARY KEY,
    feeds  TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL -- unix ms
) WITHOUT ROWID;
CREATE INDEX refused_feeds ON refused (feeds);
