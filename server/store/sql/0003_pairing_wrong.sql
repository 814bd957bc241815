-- Wrong pairing codes tried at a thing since each of its codes was made:
-- a code that has had too many is invalidated (kept, to say so, until it
-- expires).
ALTER TABLE pairing_codes ADD COLUMN wrong INTEGER NOT NULL DEFAULT 0;
CREATE INDEX pairing_codes_thing ON pairing_codes (thing);
