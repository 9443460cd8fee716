-- Sessions that cannot be stolen for long (issue 14 items 5 and 13), and accounts that can be
-- contained (item 6).

-- The rotated-away refresh token may be presented once more (a lost answer): whether it was.
ALTER TABLE sessions ADD COLUMN grace_used BOOLEAN NOT NULL DEFAULT FALSE;
-- Why a session was revoked: 'refresh_reuse' is told to the client (code session_revoked).
ALTER TABLE sessions ADD COLUMN revoked_reason TEXT;
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX sessions_revoked ON sessions(revoked_at);

-- Every refresh token a session handed out and no longer accepts: presenting one again is
-- reuse (OAuth 2.0 Security BCP 4.14), and revokes the session. Kept as long as the session.
CREATE TABLE spent_refresh_tokens (
    digest             TEXT PRIMARY KEY,
    session_id         TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE
);
CREATE INDEX spent_refresh_tokens_session ON spent_refresh_tokens(session_id);
INSERT INTO spent_refresh_tokens (digest, session_id)
    SELECT previous_refresh_digest, id FROM sessions WHERE previous_refresh_digest IS NOT NULL;

-- A disabled account signs in nowhere, its tokens and sessions are refused (Unix ms, or NULL).
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- What happened to an account's security, for GET /v2/users/security-events.
CREATE TABLE account_events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind               TEXT NOT NULL,
    address            TEXT,
    user_agent         TEXT,
    at                 BIGINT NOT NULL
);
CREATE INDEX account_events_user ON account_events(user_id, id);

CREATE INDEX mfa_challenges_expires ON mfa_challenges(expires_at);
