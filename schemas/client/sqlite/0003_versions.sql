-- Versioned outbox: each received version of a SOP Instance is its own row (a modality
-- that re-sends a correction with the same SOP Instance UID adds version 2, 3, ...), with
-- its own spool file. Versions of one instance are sent in order of receipt, and a row
-- is marked delivered only for the bytes it holds.
--
-- States: pending | sending | delivered | local | dead | refused (the gateway's
-- duplicate policy declined this version: it keeps another one) | superseded (an older
-- version the gateway, or the local store, has replaced with a newer one).
CREATE TABLE outbox_versions (
    id INTEGER PRIMARY KEY,
    sop_instance_uid TEXT NOT NULL,
    version INTEGER NOT NULL,
    sop_class_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    modality TEXT,
    study_description TEXT,
    calling_ae TEXT NOT NULL,
    spool_path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at INTEGER,
    purged_at INTEGER,
    UNIQUE (sop_instance_uid, version)
);
INSERT INTO outbox_versions (id, sop_instance_uid, version, sop_class_uid, study_uid,
    transfer_syntax, modality, study_description, calling_ae, spool_path, sha256,
    size_bytes, received_at, state, attempts, next_attempt_at, last_error, delivered_at,
    purged_at)
SELECT id, sop_instance_uid, 1, sop_class_uid, study_uid, transfer_syntax, modality,
    study_description, calling_ae, spool_path, sha256, size_bytes, received_at, state,
    attempts, next_attempt_at, last_error, delivered_at, purged_at
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_versions RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_study ON outbox (study_uid);
