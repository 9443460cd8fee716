-- Failure limits shared and exact across instances. An attempt at a password or code takes
-- its slot by inserting its failure row before the guess is checked, in the transaction that
-- counts the subject's failures in the window (so a limit of N evaluates at most N guesses,
-- however many are in flight on however many instances). A right guess deletes its row again
-- by `attempt`; a wrong one leaves it as it is (nothing more to write). Failures counted
-- without a slot (a wrong token) have no `attempt`.
ALTER TABLE login_failures ADD COLUMN attempt BIGINT;

-- The reservation counts one subject's failures in its window.
CREATE INDEX login_failures_subject_at ON login_failures(subject, at);
