-- The (pseudonymous) SOP Instance UID the study's sealed identity is bound to: the
-- envelope's associated data includes it, so the facility client needs it to unseal.
ALTER TABLE studies ADD COLUMN sealed_sop_instance_uid TEXT;
