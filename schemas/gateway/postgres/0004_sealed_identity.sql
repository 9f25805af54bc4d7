-- The sealed identity of a study (the Encrypted Content of the first stored
-- instance's Encrypted Attributes Sequence item, Explicit VR Little Endian plaintext),
-- returned by study-level C-FIND so that the facility client can show real names.
-- Filled at ingest; NULL for studies indexed before this column existed.
ALTER TABLE studies ADD COLUMN sealed_identity BYTEA;
