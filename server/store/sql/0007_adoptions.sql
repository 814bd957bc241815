-- Firmware adapters: a thing account whose device runs stock firmware
-- (Tasmota, a Zigbee2MQTT bridge, …) is adopted through a profile, which
-- maps the firmware's MQTT dialect onto commands and feedback. One row per
-- adopted thing. A thing behind a bridge (a Zigbee device) names the
-- bridge's account in bridge and its name there in topic; others have
-- bridge ''.
CREATE TABLE adoptions (
    thing   TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    topic   TEXT NOT NULL,
    bridge  TEXT NOT NULL DEFAULT '',
    updated INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX adoptions_behind ON adoptions (bridge, topic) WHERE bridge != '';
