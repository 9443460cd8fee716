-- PostgreSQL copy of sqlite/0016_last_used_per_day.sql (the same statements).
-- A token's latest use moves onto its usage rows: each (token, day) row carries the latest
-- use of that day, and the token's latest use is that of its latest day's row. The usage
-- flush then writes one row of one table for a token's first use of a day, instead of one
-- row in each of two tables (each a random descent of its B-tree and a probe of the token's
-- key for the foreign key): the flush's share of a request under a load of distinct tokens.
-- NULL when that day's latest use is not known: an earlier day of a batch that spans
-- midnight (only the batch's latest use is kept), which is never a token's latest day.
ALTER TABLE token_usage ADD COLUMN last_used BIGINT;

UPDATE token_usage SET last_used = (
    SELECT l.last_used FROM token_last_used l WHERE l.token_uuid = token_usage.token_uuid)
WHERE day = (SELECT MAX(u.day) FROM token_usage u WHERE u.token_uuid = token_usage.token_uuid);

-- A latest use without a counted day (none is expected; kept rather than lost).
INSERT INTO token_usage (token_uuid, day, uses, last_used)
    SELECT l.token_uuid, l.last_used / 86400000, 0, l.last_used FROM token_last_used l
    WHERE NOT EXISTS (SELECT 1 FROM token_usage u WHERE u.token_uuid = l.token_uuid);

DROP TABLE token_last_used;
