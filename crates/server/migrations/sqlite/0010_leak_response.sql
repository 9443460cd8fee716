-- When a token leaks or misbehaves (issue 16): secret-scanning reports, public revocation,
-- rotation with an overlap and reuse detection, and the per-token access log.

-- What an event says beyond its kind: for `leaked`, where the token was found (`url`) and by
-- what (`source`); for `rotated` and `reuse_detected`, the other token (`related_uuid`); for
-- `reuse_detected`, the request's `address` and `user_agent`.
ALTER TABLE token_events ADD COLUMN url TEXT;
ALTER TABLE token_events ADD COLUMN source TEXT;
ALTER TABLE token_events ADD COLUMN address TEXT;
ALTER TABLE token_events ADD COLUMN user_agent TEXT;
ALTER TABLE token_events ADD COLUMN related_uuid TEXT;
-- Finds an earlier report of the same leak (idempotence) and the last reuse event.
CREATE INDEX token_events_token_kind ON token_events(token_uuid, kind, id);

-- Rotation: the token this one replaced, the token that replaced it, and until when (Unix
-- ms) the replaced token still works. After `overlap_until` a rotated-away token is refused.
ALTER TABLE access_tokens ADD COLUMN rotated_from TEXT;
ALTER TABLE access_tokens ADD COLUMN rotated_to TEXT;
ALTER TABLE access_tokens ADD COLUMN overlap_until BIGINT;

-- The token a session was made from (`/v2/auth/token` with a PAT): its bearer is refused as
-- soon as the token no longer works (deactivated, deleted, expired, rotated away).
ALTER TABLE sessions ADD COLUMN token_uuid TEXT;

-- Account setting: a reused rotated-away token also deactivates its successor.
ALTER TABLE users ADD COLUMN revoke_on_reuse BOOLEAN NOT NULL DEFAULT FALSE;

-- Every accepted use of a token, coalesced per token, address, agent, what it did and UTC
-- day (days since the epoch); deleted after the retention (`--access-log-days`).
CREATE TABLE token_access (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    token_uuid         TEXT NOT NULL REFERENCES access_tokens(uuid) ON DELETE CASCADE,
    day                BIGINT NOT NULL,
    address            TEXT NOT NULL,
    user_agent         TEXT NOT NULL,
    action             TEXT NOT NULL,
    first_at           BIGINT NOT NULL,
    last_at            BIGINT NOT NULL,
    uses               BIGINT NOT NULL
);
CREATE UNIQUE INDEX token_access_key ON token_access(token_uuid, day, address, user_agent, action);
CREATE INDEX token_access_feed ON token_access(token_uuid, id);
CREATE INDEX token_access_day ON token_access(day);
