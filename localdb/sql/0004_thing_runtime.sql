-- The commands this account (a thing) received, so that each runs at most
-- once whatever path brings it and whatever the process goes through:
-- received (seen, not handed to the device program yet), running (handed
-- to it: marked before it is), answered (a result, or a refusal, went
-- out). A command left running by a crash is answered failed, never run
-- again. Keyed like messages: a MsgId is unique per sender.
CREATE TABLE thing_commands (
    msg_id   TEXT NOT NULL,
    sender   TEXT NOT NULL,
    payload  BLOB NOT NULL,           -- the command (thing.Command JSON)
    state    TEXT NOT NULL,           -- received | running | answered
    outcome  TEXT NOT NULL DEFAULT '', -- the status it was answered with
    received INTEGER NOT NULL,        -- unix ms
    updated  INTEGER NOT NULL,        -- unix ms
    PRIMARY KEY (msg_id, sender)
) WITHOUT ROWID;
CREATE INDEX thing_commands_open ON thing_commands (state) WHERE state <> 'answered';

-- The commands among the messages, by when they were made: a restart
-- finds those stored but not yet recorded above (a crash between the
-- two) in the window a command may still be valid.
CREATE INDEX messages_commands ON messages (time_create) WHERE msg_type = 'command';
