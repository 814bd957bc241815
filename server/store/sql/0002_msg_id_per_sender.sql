-- A MsgId is unique per sender, not across the server: otherwise whoever saw
-- a MsgId (a recipient, on a direct stream) could store a message of its own
-- under it first, and the real sender's message would be taken for a retry
-- of it. The key is (msg_id, sender) rather than (sender, msg_id): MsgIds are
-- time-ordered, so with the MsgId first a new row still goes to the end of
-- the index (appends stay append-mostly), and the MsgId alone still finds a
-- row's few candidates.
DROP INDEX messages_msg_id;
CREATE UNIQUE INDEX messages_msg_id_sender ON messages (msg_id, sender);
