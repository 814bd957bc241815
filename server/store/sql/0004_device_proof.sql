-- A device whose id is a libp2p peer id is bound for good only once it
-- proved its key (register_device with a signature): until then another
-- account's CONNECT that proves the key may take the id over.
ALTER TABLE devices ADD COLUMN proven INTEGER NOT NULL DEFAULT 0;
