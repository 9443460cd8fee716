-- A token's latest use moves out of access_tokens into a table of its own: the usage flush
-- writes up to 200 000 of these every 2 s, and doing it in the big table the token check reads
-- stalled the check (6-9 s per flush with a million tokens). Written in batched upserts, the
-- latest use winning; deleted with its token.
CREATE TABLE token_last_used (
    token_uuid         TEXT PRIMARY KEY REFERENCES access_tokens(uuid) ON DELETE CASCADE,
    last_used          BIGINT NOT NULL
);
INSERT INTO token_last_used (token_uuid, last_used)
    SELECT uuid, last_used FROM access_tokens WHERE last_used IS NOT NULL;
ALTER TABLE access_tokens DROP COLUMN last_used;
