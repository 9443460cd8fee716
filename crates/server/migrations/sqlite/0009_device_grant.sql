-- Signing in with the browser (RFC 8628 device authorization grant) and two-factor sign-in a
-- person sets up and recovers from themselves (issue 15).

-- One row per device code handed out. The device code itself is never stored, only its
-- SHA-256; the user code (8 letters of BCDFGHJKLMNPQRSTVWXZ, no dash) is a short-lived,
-- low-entropy value a person types, kept as it is so the page can find it.
CREATE TABLE device_grants (
    device_digest      BLOB PRIMARY KEY,
    user_code          TEXT NOT NULL UNIQUE,
    client_id          TEXT NOT NULL,
    scope              TEXT,
    client_name        TEXT,
    device_name        TEXT,
    os                 TEXT,
    -- Where the device asked from, and when: shown on the confirmation page.
    requested_address  TEXT NOT NULL,
    requested_at       BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    -- The polling interval in force (seconds); slow_down adds 5 (RFC 8628 §3.5).
    interval_s         BIGINT NOT NULL,
    last_poll_at       BIGINT,
    -- Whether the last poll came sooner than the interval (set by the poll's own UPDATE).
    slowed             BOOLEAN NOT NULL DEFAULT FALSE,
    -- 'pending', 'approved', 'denied' or 'used' (its session was handed out).
    status             TEXT NOT NULL,
    -- The account that approved or denied it.
    user_id            TEXT REFERENCES users(id) ON DELETE CASCADE,
    decided_at         BIGINT
);
CREATE INDEX device_grants_expires ON device_grants(expires_at);

-- A TOTP enrolment started and not yet confirmed with a first code: not in force.
ALTER TABLE users ADD COLUMN totp_pending_sealed TEXT;
ALTER TABLE users ADD COLUMN totp_pending_expires BIGINT;

-- Single-use recovery codes: SHA-256 of (user id, code); 80 random bits each.
CREATE TABLE recovery_codes (
    digest             BLOB PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    used_at            BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);
