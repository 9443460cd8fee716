-- Sign-in attempts in flight, shared by every instance on the database: an attempt takes a
-- slot of each of its subjects' limits here before its password or code is checked, in the
-- transaction that counts the subject's recent failures and live slots (so a limit of N
-- evaluates at most N guesses across instances). Its outcome turns the row into a failure or
-- deletes it; `expires_at` frees the slot of an instance that died meanwhile.
CREATE TABLE login_reservations (
    subject            BLOB NOT NULL,
    attempt            BLOB NOT NULL,
    expires_at         BIGINT NOT NULL,
    PRIMARY KEY (subject, attempt)
) WITHOUT ROWID;

-- The reservation counts one subject's failures in its window.
CREATE INDEX login_failures_subject_at ON login_failures(subject, at);
