-- The changes feed, PostgreSQL dialect. Keep in step with ../sqlite/0011_changes.sql.
--
-- Per facility, an append-only sequence of study-level events, written in the same
-- transaction as the change itself (gateway/src/db/changes.rs). Readers page by
-- seq: GET /api/v1/changes?after=SEQ.

-- The last seq handed out for the facility. Writers add to it in their own
-- transaction (the facility row is the per-facility counter): the row lock the
-- UPDATE takes is held until commit, so writers of one facility are serialised and
-- seq order is commit order; a reader that has seen seq N never later sees an event
-- with seq <= N appear (a sequence or BIGSERIAL could not promise that: values are
-- handed out before commit, and transactions commit in any order).
ALTER TABLE facilities ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE changes (
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    -- 1, 2, 3, ... per facility, without gaps.
    seq BIGINT NOT NULL,
    -- stored | series-added | updated | deleted; later kinds (hidden, restored,
    -- purged, archived, expiring, shared, statement-issued, suspended) are new
    -- words here, not a migration.
    kind TEXT NOT NULL,
    -- Study Instance UID as stored (pseudonymous).
    study_uid TEXT NOT NULL,
    -- The series concerned, when the event concerns exactly one.
    series_uid TEXT,
    -- Instances and series of the study after the change.
    num_instances BIGINT NOT NULL DEFAULT 0,
    num_series BIGINT NOT NULL DEFAULT 0,
    -- ms since the epoch
    created_at BIGINT NOT NULL,
    -- Kind-specific detail (JSON text) for later kinds; NULL for the first four.
    detail TEXT,
    PRIMARY KEY (facility_id, seq)
);
CREATE INDEX changes_by_study ON changes (facility_id, study_uid);
CREATE FUNCTION changes_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'changes is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER changes_no_update BEFORE UPDATE ON changes
    FOR EACH ROW EXECUTE FUNCTION changes_append_only();
