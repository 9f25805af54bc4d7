-- The life of a stored study, PostgreSQL dialect. Keep in step with ../sqlite/0012_lifecycle.sql.
--
-- Labels (facility-defined classifications, opaque names), retention policies per
-- facility and per modality / label, the lifecycle state of each study
-- (active -> expiring -> hidden -> purged), and tombstones of purged studies
-- (gateway/src/db/lifecycle.rs, gateway/src/lifecycle/).

-- active | expiring (notice given) | hidden (not queryable, restorable until purge)
ALTER TABLE studies ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'active';
-- First receipt (ms since the epoch); set when the study row is created.
ALTER TABLE studies ADD COLUMN received_at BIGINT;
-- An answer "keep" (or a restore) moved the end of the storage period to here.
ALTER TABLE studies ADD COLUMN keep_until BIGINT;
-- When the notice was given (expiring) and when it was hidden.
ALTER TABLE studies ADD COLUMN notice_at BIGINT;
ALTER TABLE studies ADD COLUMN hidden_at BIGINT;
-- When the facility acknowledged an export to a returnable medium.
ALTER TABLE studies ADD COLUMN exported_at BIGINT;
UPDATE studies SET received_at = (
    SELECT MIN(i.received_at) FROM series se JOIN instances i
        ON i.facility_id = se.facility_id AND i.series_uid = se.series_uid
    WHERE se.facility_id = studies.facility_id AND se.study_uid = studies.study_uid);
UPDATE studies SET received_at = updated_at WHERE received_at IS NULL;
CREATE INDEX studies_by_lifecycle ON studies (facility_id, lifecycle);

CREATE TABLE study_labels (
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    study_uid TEXT NOT NULL,
    -- An opaque name the facility chose (never a patient's name).
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (facility_id, study_uid, label)
);
CREATE INDEX study_labels_by_label ON study_labels (facility_id, label);

CREATE TABLE retention_policies (
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    -- operator (the gateway's default for the facility) | facility (its override)
    set_by TEXT NOT NULL,
    -- '' = any
    modality TEXT NOT NULL DEFAULT '',
    label TEXT NOT NULL DEFAULT '',
    period_days BIGINT NOT NULL,
    -- receipt | study-date
    counted_from TEXT NOT NULL,
    notice_days BIGINT NOT NULL,
    grace_days BIGINT NOT NULL,
    -- notify (notice only) | hide-purge
    action TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (facility_id, set_by, modality, label)
);

CREATE TABLE tombstones (
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    study_uid TEXT NOT NULL,
    purged_at BIGINT NOT NULL,
    num_instances BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    -- retention | deleted-now
    reason TEXT NOT NULL,
    PRIMARY KEY (facility_id, study_uid)
);
