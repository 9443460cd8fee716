-- The token check's covering index (issue 13, the hot path): a token cache miss on SQLite
-- reads every column it needs from the digest's entry here, one B-tree descent, instead of
-- descending the digest's unique index and then the table by rowid. With a million tokens
-- (`hubkey-bench flushes`) a lookup reads 2.3 pages instead of 2.9 and takes about a tenth
-- less CPU; the index adds about 140 MB to such a database (a quarter).
-- The token check names it (`INDEXED BY`); the digest's unique index stays, for uniqueness.
-- PostgreSQL has no copy: there a lookup's cost is the pool's round trip, not the heap fetch.
CREATE INDEX access_tokens_check ON access_tokens(
    digest, uuid, user_id, scopes, expires_at, is_active, rotated_to, overlap_until);
