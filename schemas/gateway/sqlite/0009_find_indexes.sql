-- Indexes for C-FIND at scale, SQLite dialect. Keep in step with
-- ../postgres/0009_find_indexes.sql. Found with scripts/bench-find.sh (1,000,000 instances,
-- 50,000 studies) and EXPLAIN QUERY PLAN.

-- Study-level match on Patient ID orders by study_uid. With (facility_id, patient_id)
-- alone, SQLite (no ANALYZE statistics) chose the primary key to skip the sort and
-- scanned every study of the facility (p99 0.3-0.8 s); with study_uid as third column
-- this one index both matches and orders.
DROP INDEX studies_by_patient;
CREATE INDEX studies_by_patient ON studies (facility_id, patient_id, study_uid);

-- Modalities in Study is matched as "study_uid IN (SELECT study_uid FROM
-- study_modalities WHERE facility_id = ? AND modality = ?)": a covering index for that
-- subquery, instead of reading every study_modalities row of the facility.
CREATE INDEX study_modalities_by_modality ON study_modalities (facility_id, modality, study_uid);
