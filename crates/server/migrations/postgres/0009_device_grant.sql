-- PostgreSQL copy of sqlite/0009_device_grant.sql (types per the pg conventions: BYTEA, TEXT
-- COLLATE "C", BIGINT, BOOLEAN).
-- Signing in with the browser (RFC 8628 device authorization grant) and two-factor sign-in a
-- person sets up and recovers from themselves (issue 15).

-- One row per device code handed out. The device code itself is never stored, only its
-- SHA-256; the user code (8 letters of BCDFGHJKLMNPQRSTVWXZ, no dash) is a short-lived,
-- low-entropy value a person types, kept as it is so the page can find it.
CREATE TABLE device_grants (
    device_digest      BYTEA PRIMARY KEY,
    user_code          TEXT COLLATE "C" NOT NULL UNIQUE,
    client_id          TEXT COLLATE "C" NOT NULL,
    scope              TEXT COLLATE "C",
    client_name        TEXT COLLATE "C",
    device_name        TEXT COLLATE "C",
    os                 TEXT COLLATE "C",
    -- Where the device asked from, and when: shown on the confirmation page.
    requested_address  TEXT COLLATE "C" NOT NULL,
    requested_at       BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    -- The polling interval in force (seconds); slow_down adds 5 (RFC 8628 §3.5).
    interval_s         BIGINT NOT NULL,
    last_poll_at       BIGINT,
    -- Whether the last poll came sooner than the interval (set by the poll's own UPDATE).
    slowed             BOOLEAN NOT NULL DEFAULT FALSE,
    -- 'pending', 'approved', 'denied' or 'used' (its session was handed out).
    status             TEXT COLLATE "C" NOT NULL,
    -- The account that approved or denied it.
    user_id            TEXT COLLATE "C" REFERENCES users(id) ON DELETE CASCADE,
    decided_at         BIGINT
);
CREATE INDEX device_grants_expires ON device_grants(expires_at);

-- A TOTP enrolment started and not yet confirmed with a first code: not in force.
ALTER TABLE users ADD COLUMN totp_pending_sealed TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN totp_pending_expires BIGINT;

-- Single-use recovery codes: SHA-256 of (user id, code); 80 random bits each.
CREATE TABLE recovery_codes (
    digest             BYTEA PRIMARY KEY,
    user_id            TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    used_at            BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
