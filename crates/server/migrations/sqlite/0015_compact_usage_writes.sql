-- Fewer B-trees for the usage and access-log flushes to write (issue 13, the hot path: with
-- 200 000 distinct tokens in the load a flush writes a row for each of tens of thousands of
-- tokens in each of these tables, and that was a fifth of hubkeyd's CPU).
--
-- `token_last_used` and `token_usage` become WITHOUT ROWID tables: each row lives in its
-- primary key's B-tree alone, instead of in the table and again in the key's index.
CREATE TABLE token_last_used_compact (
    token_uuid         TEXT PRIMARY KEY REFERENCES access_tokens(uuid) ON DELETE CASCADE,
    last_used          BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO token_last_used_compact (token_uuid, last_used)
    SELECT token_uuid, last_used FROM token_last_used;
DROP TABLE token_last_used;
ALTER TABLE token_last_used_compact RENAME TO token_last_used;

CREATE TABLE token_usage_compact (
    token_uuid         TEXT NOT NULL REFERENCES access_tokens(uuid) ON DELETE CASCADE,
    day                BIGINT NOT NULL,
    uses               BIGINT NOT NULL,
    PRIMARY KEY (token_uuid, day)
) WITHOUT ROWID;
INSERT INTO token_usage_compact (token_uuid, day, uses)
    SELECT token_uuid, day, uses FROM token_usage;
DROP TABLE token_usage;
ALTER TABLE token_usage_compact RENAME TO token_usage;

-- The access log's unique key leads with (token, address), so it also answers "was this
-- token ever used from this address" and `token_access_address` goes.
DROP INDEX token_access_key;
DROP INDEX token_access_address;
CREATE UNIQUE INDEX token_access_key
    ON token_access(token_uuid, address, day, user_agent, action);
