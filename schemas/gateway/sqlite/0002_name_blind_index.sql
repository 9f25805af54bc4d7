-- Patient name pseudonym and the name blind index (from the facility client's
-- private block), for name search without the gateway ever seeing a name.
ALTER TABLE studies ADD COLUMN patient_name TEXT;
ALTER TABLE studies ADD COLUMN name_blind_index TEXT;
CREATE INDEX studies_by_name_blind_index ON studies (facility_id, name_blind_index);
