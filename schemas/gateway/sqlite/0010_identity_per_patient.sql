-- Identity per patient and the identity summary, SQLite dialect. Keep in step
-- with ../postgres/0010_identity_per_patient.sql.
--
-- A study can hold instances of several patients (a mis-registered acquisition, a
-- merged worklist entry): the patient columns of the studies row hold its first
-- patient only. study_patients holds every patient of a study, with that patient's
-- own sealed identity, so that a study is found by any of its patients' IDs and
-- names; series and instances carry the patient of their own (first) instance.
CREATE TABLE study_patients (
    facility_id INTEGER NOT NULL,
    study_uid TEXT NOT NULL,
    -- patient_id, or '' when the instances carry none (a key cannot be NULL).
    patient_key TEXT NOT NULL,
    patient_id TEXT,
    patient_name TEXT,
    name_blind_index TEXT,
    sealed_identity BLOB,
    sealed_sop_instance_uid TEXT,
    sealed_kind TEXT,
    num_instances INTEGER NOT NULL DEFAULT 0,
    -- ms since the epoch; the first patient of a study answers when no patient key
    -- narrows the match.
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (facility_id, study_uid, patient_key)
);
CREATE INDEX study_patients_by_patient ON study_patients (facility_id, patient_id, study_uid);
CREATE INDEX study_patients_by_name_blind_index ON study_patients (facility_id, name_blind_index);
INSERT INTO study_patients (facility_id, study_uid, patient_key, patient_id, patient_name,
    name_blind_index, sealed_identity, sealed_sop_instance_uid, num_instances, first_seen)
SELECT facility_id, study_uid, COALESCE(patient_id, ''), patient_id, patient_name,
    name_blind_index, sealed_identity, sealed_sop_instance_uid, num_instances, updated_at
FROM studies;

ALTER TABLE series ADD COLUMN patient_id TEXT;
ALTER TABLE series ADD COLUMN patient_name TEXT;
ALTER TABLE series ADD COLUMN name_blind_index TEXT;
UPDATE series SET
    patient_id = (SELECT s.patient_id FROM studies s
        WHERE s.facility_id = series.facility_id AND s.study_uid = series.study_uid),
    patient_name = (SELECT s.patient_name FROM studies s
        WHERE s.facility_id = series.facility_id AND s.study_uid = series.study_uid),
    name_blind_index = (SELECT s.name_blind_index FROM studies s
        WHERE s.facility_id = series.facility_id AND s.study_uid = series.study_uid);
ALTER TABLE instances ADD COLUMN patient_id TEXT;
ALTER TABLE instances ADD COLUMN patient_name TEXT;
ALTER TABLE instances ADD COLUMN name_blind_index TEXT;
UPDATE instances SET
    patient_id = (SELECT s.patient_id FROM studies s
        WHERE s.facility_id = instances.facility_id AND s.study_uid = instances.study_uid),
    patient_name = (SELECT s.patient_name FROM studies s
        WHERE s.facility_id = instances.facility_id AND s.study_uid = instances.study_uid),
    name_blind_index = (SELECT s.name_blind_index FROM studies s
        WHERE s.facility_id = instances.facility_id AND s.study_uid = instances.study_uid);

-- What the sealed_identity columns hold: NULL for the full record (the instance's
-- Encrypted Content, up to 256 KiB; rows indexed before this migration), 'summary'
-- for the identity summary envelope (0013,1011) the facility client adds, a few KiB
-- whatever the size of the instance's full record.
ALTER TABLE studies ADD COLUMN sealed_kind TEXT;
ALTER TABLE series ADD COLUMN sealed_kind TEXT;
ALTER TABLE instances ADD COLUMN sealed_kind TEXT;

-- Name search tokens of each study patient (16-bit blind values of the prefixes of
-- every component group of the name, padded to a fixed count by the facility client;
-- schemas/sealed-identity.md §4). A query carries the token of what the user typed.
CREATE TABLE name_tokens (
    facility_id INTEGER NOT NULL,
    study_uid TEXT NOT NULL,
    patient_key TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (facility_id, study_uid, patient_key, token)
);
CREATE INDEX name_tokens_by_token ON name_tokens (facility_id, token);
-- Patients indexed before tokens existed stay findable by their full-name blind
-- index, which the client sends as the token 'legacy:<index>'.
INSERT INTO name_tokens (facility_id, study_uid, patient_key, token)
SELECT facility_id, study_uid, COALESCE(patient_id, ''), 'legacy:' || name_blind_index
FROM studies WHERE name_blind_index IS NOT NULL AND name_blind_index <> '';
