-- hubkeyd schema, version 1. Never edit an applied migration: add a new file.
-- Times are Unix milliseconds (BIGINT) so the SQL stays the same on PostgreSQL.

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    username           TEXT NOT NULL UNIQUE,
    password_hash      TEXT NOT NULL,
    -- TOTP secret sealed with the server key (ChaCha20-Poly1305); NULL while 2FA is off.
    totp_sealed        TEXT,
    -- The last TOTP time step accepted: a code of that step or earlier is a replay.
    totp_last_step     BIGINT,
    -- The account's token clock (Unix ms), advanced first in every transaction that changes
    -- its tokens: such transactions of one account run one after another, and their times
    -- follow commit order (pruning and the events feed rely on it).
    token_clock        BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL
);

CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- 'password' or 'pat': a session from a PAT may not manage PATs.
    source             TEXT NOT NULL,
    -- SHA-256 of the refresh token; NULL for sessions without one.
    refresh_digest     TEXT UNIQUE,
    created_at         BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    revoked_at         BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE mfa_challenges (
    digest             TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at         BIGINT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE access_tokens (
    uuid               TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- SHA-256 of the token: the only form of the secret the server keeps.
    digest             TEXT NOT NULL UNIQUE,
    hint               TEXT NOT NULL,
    label              TEXT NOT NULL,
    scopes             TEXT NOT NULL,
    origin             TEXT NOT NULL,
    client_id          TEXT NOT NULL,
    creator_ip         TEXT NOT NULL,
    creator_ua         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    last_used          BIGINT,
    expires_at         BIGINT,
    is_active          BOOLEAN NOT NULL,
    -- Whether the 'expired' event was recorded.
    expiry_noted       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX access_tokens_user ON access_tokens(user_id, created_at);

CREATE TABLE token_events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind               TEXT NOT NULL,
    token_uuid         TEXT NOT NULL,
    label              TEXT NOT NULL,
    origin             TEXT NOT NULL,
    client_id          TEXT NOT NULL,
    last_used          BIGINT,
    at                 BIGINT NOT NULL
);
CREATE INDEX token_events_user ON token_events(user_id, id);

-- Failed sign-in attempts, per subject ('user:NAME' or 'ip:ADDR'), for throttling.
CREATE TABLE login_failures (
    subject            TEXT NOT NULL,
    at                 BIGINT NOT NULL
);
CREATE INDEX login_failures_subject ON login_failures(subject, at);
