-- Gateway index, PostgreSQL dialect. Keep in step with ../sqlite/0001_index.sql.
CREATE TABLE facilities (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    accept_identified BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- A device is how a facility shows up on the network: a client certificate
-- (TLS port) or a calling AE title (plain port, mirrored from the config).
CREATE TABLE devices (
    id BIGSERIAL PRIMARY KEY,
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    kind TEXT NOT NULL,
    ae_title TEXT,
    cert_fingerprint TEXT UNIQUE,
    cert_subject TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE studies (
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    study_uid TEXT NOT NULL,
    patient_id TEXT,
    study_date TEXT,
    study_time TEXT,
    accession_number TEXT,
    study_description TEXT,
    modalities TEXT NOT NULL DEFAULT '',
    num_series BIGINT NOT NULL DEFAULT 0,
    num_instances BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (facility_id, study_uid)
);
CREATE INDEX studies_by_patient ON studies (facility_id, patient_id);
CREATE INDEX studies_by_date ON studies (facility_id, study_date);

CREATE TABLE study_modalities (
    facility_id BIGINT NOT NULL,
    study_uid TEXT NOT NULL,
    modality TEXT NOT NULL,
    study_date TEXT,
    PRIMARY KEY (facility_id, study_uid, modality)
);
CREATE INDEX study_modalities_by_date ON study_modalities (facility_id, modality, study_date);

CREATE TABLE series (
    facility_id BIGINT NOT NULL,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    modality TEXT,
    series_description TEXT,
    series_number BIGINT,
    num_instances BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (facility_id, series_uid)
);
CREATE INDEX series_by_study ON series (facility_id, study_uid);

CREATE TABLE instances (
    facility_id BIGINT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    instance_number BIGINT,
    number_of_frames BIGINT,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (facility_id, sop_instance_uid)
);
CREATE INDEX instances_by_series ON instances (facility_id, series_uid);
