-- Users and the shared lockout state, PostgreSQL dialect. Keep in step with
-- ../sqlite/0003_users.sql.
--
-- Each user belongs to one facility; everything a user queries or retrieves is
-- scoped to it. Passwords are stored only as argon2id PHC strings. Failure counters
-- and locks live here, not in a process's memory, so that several gateway processes
-- on one database enforce the same lockout.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    facility_id BIGINT NOT NULL REFERENCES facilities(id),
    -- [A-Za-z0-9._@-]{1,64}, unique across facilities, case-sensitive.
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('clinician', 'facility-admin', 'operator')),
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    -- Consecutive failed logins since the last successful one.
    failed_count BIGINT NOT NULL DEFAULT 0,
    -- Refused until this time (ms since the epoch), whatever the password.
    locked_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX users_by_facility ON users (facility_id, username);

-- Failed logins per peer address (IPv4 address, or IPv6 /64 prefix), across user
-- names. A counter whose last failure is older than the lockout time starts over.
CREATE TABLE auth_failures_by_peer (
    peer TEXT PRIMARY KEY,
    failed_count BIGINT NOT NULL,
    locked_until BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX auth_failures_by_peer_by_time ON auth_failures_by_peer (updated_at);
