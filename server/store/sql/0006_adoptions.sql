-- Firmware adapters: a thing account whose device runs stock firmware
-- (Tasmota, …) is adopted through a profile, which maps the firmware's
-- MQTT dialect onto commands and feedback. One row per adopted thing.
CREATE TABLE adoptions (
    thing   TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    topic   TEXT NOT NULL,
    updated INTEGER NOT NULL
) WITHOUT ROWID;
