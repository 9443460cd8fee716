-- PostgreSQL copy of the index change in sqlite/0015_compact_usage_writes.sql (its tables
-- have no rowid to drop): the access log's unique key leads with (token, address), so it
-- also answers "was this token ever used from this address" and `token_access_address` goes.
DROP INDEX token_access_key;
DROP INDEX token_access_address;
CREATE UNIQUE INDEX token_access_key
    ON token_access(token_uuid, address, day, user_agent, action);
