-- Sealed identities below study level, PostgreSQL dialect. Keep in step with
-- ../sqlite/0007_sealed_levels.sql.
--
-- Series- and image-level C-FIND return the sealed identity of the series (that of
-- its first stored instance) and of each instance, so that the facility client can
-- restore original Series and SOP Instance UIDs for its viewers. Each envelope is
-- bound to the pseudonymous SOP Instance UID it was sealed for; for an instance that
-- is its own UID. NULL for rows indexed before these columns existed.
ALTER TABLE series ADD COLUMN sealed_identity BYTEA;
ALTER TABLE series ADD COLUMN sealed_sop_instance_uid TEXT;
ALTER TABLE instances ADD COLUMN sealed_identity BYTEA;
