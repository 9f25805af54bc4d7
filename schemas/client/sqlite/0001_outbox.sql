-- Facility client: the outbox (one row per received instance) and per-study flags.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    sop_instance_uid TEXT NOT NULL UNIQUE,
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
    -- pending | sending | delivered | local | dead
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_study ON outbox (study_uid);

-- Administrator's per-study decision: share = 1 forward, 0 keep local.
CREATE TABLE study_flags (
    study_uid TEXT PRIMARY KEY,
    share INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
