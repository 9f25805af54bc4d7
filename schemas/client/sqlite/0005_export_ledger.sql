-- Export ledger (`pacs-client export`): one row per study written to a returnable
-- medium (CD, DVD, USB or a folder), so the same study is not exported twice by
-- mistake (a second export needs `--again`, which adds another row). Append-only.
CREATE TABLE export_ledger (
    id INTEGER PRIMARY KEY,
    -- Original Study Instance UID.
    study_uid TEXT NOT NULL,
    -- cd | dvd | usb | folder
    medium TEXT NOT NULL,
    -- Milliseconds since the epoch.
    exported_at INTEGER NOT NULL,
    -- The output folder given to the command.
    out_dir TEXT NOT NULL,
    -- Instances of the study written to the medium.
    instances INTEGER NOT NULL,
    -- The OS user who ran the export.
    os_user TEXT NOT NULL
);
CREATE INDEX export_ledger_study ON export_ledger (study_uid);
