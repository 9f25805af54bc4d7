-- Pixel privacy (burned-in text). Held instances use outbox.state = 'held' with the
-- reason in outbox.last_error; these tables record what people decided about them.

-- A person released a held instance to be sent as it is: bound to the outbox row
-- and the SHA-256 of the bytes they released, so a corrected re-send is screened again.
CREATE TABLE pixel_releases (
    outbox_id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    released_at INTEGER NOT NULL
);

-- Local audit of held-instance decisions (append-only): when, which OS user, what
-- (release | keep-local), which instance, and the hold reason at that moment.
CREATE TABLE pixel_audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    os_user TEXT NOT NULL,
    action TEXT NOT NULL,
    outbox_id INTEGER NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    reason TEXT NOT NULL
);
