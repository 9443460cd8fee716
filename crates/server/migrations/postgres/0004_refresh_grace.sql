-- The refresh token a rotation replaced, and when: for a short while it still works once more,
-- so a client whose refresh answer was lost on the way is not signed out.
ALTER TABLE sessions ADD COLUMN previous_refresh_digest TEXT COLLATE "C";
ALTER TABLE sessions ADD COLUMN rotated_at BIGINT;
CREATE INDEX sessions_previous_refresh ON sessions(previous_refresh_digest);
