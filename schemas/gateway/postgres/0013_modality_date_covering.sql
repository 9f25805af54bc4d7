-- Modalities in Study with a Study Date range as a covering index, PostgreSQL dialect.
-- Keep in step with ../sqlite/0013_modality_date_covering.sql. (Numbered 0013: 0012 is
-- the lifecycle migration.) Found with scripts/bench-dicomweb.sh (1,000,000 instances)
-- and EXPLAIN (ANALYZE, BUFFERS) of QIDO-RS /studies?ModalitiesInStudy=CT&StudyDate=
-- FROM-TO on PostgreSQL.
--
-- The subquery "study_uid IN (SELECT m.study_uid FROM study_modalities m WHERE
-- m.facility_id = ? AND m.modality = ? AND m.study_date BETWEEN ...)" ranged over
-- (facility_id, modality, study_date), then read one table page per matching study
-- for its study_uid (about 40 pages for a 30-day range at 1,000,000 instances, 0.4 of
-- its 2.3 ms cold). With study_uid as fourth column the index alone answers it
-- (PostgreSQL: Index Only Scan, 4 pages; SQLite: COVERING INDEX). The new index
-- serves everything the old one did, so the old one goes.
CREATE INDEX study_modalities_by_date_uid ON study_modalities (facility_id, modality, study_date, study_uid);
DROP INDEX study_modalities_by_date;
