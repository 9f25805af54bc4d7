-- Gateway index, SQLite dialect. Keep in step with ../postgres/0001_index.sql.
CREATE TABLE facilities (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    accept_identified INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

-- A device is how a facility shows up on the network: a client certificate
-- (TLS port) or a calling AE title (plain port, mirrored from the config).
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    facility_id INTEGER NOT NULL REFERENCES facilities(id),
    kind TEXT NOT NULL,
    ae_title TEXT,
    cert_fingerprint TEXT UNIQUE,
    cert_subject TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE studies (
    facility_id INTEGER NOT NULL REFERENCES facilities(id),
    study_uid TEXT NOT NULL,
    patient_id TEXT,
    study_date TEXT,
    study_time TEXT,
    accession_number TEXT,
    study_description TEXT,
    modalities TEXT NOT NULL DEFAULT '',
    num_series INTEGER NOT NULL DEFAULT 0,
    num_instances INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (facility_id, study_uid)
);
CREATE INDEX studies_by_patient ON studies (facility_id, patient_id);
CREATE INDEX studies_by_date ON studies (facility_id, study_date);

CREATE TABLE study_modalities (
    facility_id INTEGER NOT NULL,
    study_uid TEXT NOT NULL,
    modality TEXT NOT NULL,
    study_date TEXT,
    PRIMARY KEY (facility_id, study_uid, modality)
);
CREATE INDEX study_modalities_by_date ON study_modalities (facility_id, modality, study_date);

CREATE TABLE series (
    facility_id INTEGER NOT NULL,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    modality TEXT,
    series_description TEXT,
    series_number INTEGER,
    num_instances INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (facility_id, series_uid)
);
CREATE INDEX series_by_study ON series (facility_id, study_uid);

CREATE TABLE instances (
    facility_id INTEGER NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    instance_number INTEGER,
    number_of_frames INTEGER,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (facility_id, sop_instance_uid)
);
CREATE INDEX instances_by_series ON instances (facility_id, series_uid);
