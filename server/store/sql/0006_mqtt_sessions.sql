-- Persistent MQTT sessions (docs/protocol.md, "Subscriptions"): a client
-- that connected with clean session false (MQTT 3.1.1) or a Session Expiry
-- Interval (MQTT 5) keeps its subscriptions across connections. One row a
-- client id, owned by the account that opened it; what it missed comes
-- from the device's delivery cursors, not from here.
CREATE TABLE mqtt_sessions (
    client_id TEXT PRIMARY KEY,
    account   TEXT NOT NULL,
    keep_ms   INTEGER NOT NULL, -- how long the session outlives a connection
    expires   INTEGER NOT NULL, -- unix ms when it ends; 0 while connected
    opened    INTEGER NOT NULL  -- which connection holds it (unix ns of its CONNECT)
) WITHOUT ROWID;
CREATE INDEX mqtt_sessions_account ON mqtt_sessions (account);

-- The subscriptions of a stored session. expires is 0 for a permanent
-- subscription, else the unix ms at which a temporary one ends; made is 1
-- when the SUBSCRIBE itself asked for its relation (a friend request, or
-- the restore of one), which the end of a temporary subscription undoes.
CREATE TABLE mqtt_session_subs (
    client_id TEXT NOT NULL,
    filter    TEXT NOT NULL,
    qos       INTEGER NOT NULL,
    expires   INTEGER NOT NULL,
    made      INTEGER NOT NULL,
    PRIMARY KEY (client_id, filter)
) WITHOUT ROWID;
CREATE INDEX mqtt_session_subs_expires ON mqtt_session_subs (expires) WHERE expires > 0;
