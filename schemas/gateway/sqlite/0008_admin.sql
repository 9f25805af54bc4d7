-- Admin API, quotas, soft delete and the audit trail, SQLite dialect. Keep in step
-- with ../postgres/0008_admin.sql.

-- Bearer tokens of the HTTPS admin API. Only the SHA-256 (hex) of a token is kept;
-- the token itself is shown once, at login.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    -- Peer address the token was issued to (for the audit trail).
    peer TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

-- Storage quota per facility (NULL: unlimited). C-STORE fails with "out of
-- resources" once stored_bytes would exceed quota_bytes; a warning is logged and
-- audited when it crosses quota_warn_percent. stored_bytes is kept up to date by the
-- index writer in the same transaction as the instance rows.
ALTER TABLE facilities ADD COLUMN quota_bytes INTEGER;
ALTER TABLE facilities ADD COLUMN quota_warn_percent INTEGER NOT NULL DEFAULT 90
    CHECK (quota_warn_percent BETWEEN 1 AND 100);
ALTER TABLE facilities ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE facilities SET stored_bytes = (
    SELECT COALESCE(SUM(size_bytes), 0) FROM instances WHERE instances.facility_id = facilities.id
);

-- Soft delete: a deleted study (ms since the epoch) is no longer found nor
-- retrieved; its blobs stay until purged, and keep counting against the quota.
ALTER TABLE studies ADD COLUMN deleted_at INTEGER;

-- The audit trail: append-only, after the DICOM PS3.15 A.5 audit messages. Never a
-- plaintext patient identifier: pseudonymous values and counts only.
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- ms since the epoch
    occurred_at INTEGER NOT NULL,
    -- instances-transferred | query | begin-transferring | login | logout |
    -- authentication-failure | instances-deleted | security-alert | admin-change
    kind TEXT NOT NULL,
    -- PS3.15 A.5 EventOutcomeIndicator: success (0), minor-failure (4),
    -- serious-failure (8), major-failure (12)
    outcome TEXT NOT NULL,
    -- NULL when the facility is not known (e.g. an unenrolled certificate).
    facility_id INTEGER REFERENCES facilities(id),
    username TEXT,
    -- IP address of the peer.
    peer TEXT,
    -- dicom | https | cli
    protocol TEXT NOT NULL,
    -- Short free text without identifiers (level, destination AE, reason, ...).
    detail TEXT NOT NULL DEFAULT '',
    object_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_events_by_facility_time ON audit_events (facility_id, occurred_at);
CREATE INDEX audit_events_by_time ON audit_events (occurred_at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
