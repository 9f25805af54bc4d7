-- C-MOVE destinations, SQLite dialect. Keep in step with
-- ../postgres/0006_move_destinations.sql.
--
-- A user's C-MOVE may only go to an AE title registered for the user's own
-- facility (`pacs-gateway device add FACILITY AE HOST:PORT [--tls]`); any other
-- destination is unknown (0xA801).
CREATE TABLE move_destinations (
    id INTEGER PRIMARY KEY,
    facility_id INTEGER NOT NULL REFERENCES facilities(id),
    -- 1 to 16 printable ASCII characters, no backslash, no leading/trailing spaces.
    ae_title TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    tls INTEGER NOT NULL DEFAULT 0 CHECK (tls IN (0, 1)),
    created_at INTEGER NOT NULL,
    UNIQUE (facility_id, ae_title)
);
