-- What a change made stale in a running server's caches, for that server to forget (issue 13:
-- what an admin command, another process on the same SQLite file, changes is refused on the
-- next request). Every change a cache could hide writes one row in its own transaction, its
-- stale items one a line as `invalidation::Stale::payload` writes them (a token by 16 hex
-- digits of its digest, an account by id, a repository by name; never a secret); each server
-- polls the newest id. AUTOINCREMENT: an id is never reused, even after the sweep.
CREATE TABLE cache_changes (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    items              TEXT NOT NULL
);
-- The servers polling `cache_changes`: the newest id each has forgotten, and when it last
-- said it was alive (Unix ms, every 2 s), so that an admin command waits for running
-- servers only.
CREATE TABLE cache_listeners (
    id                 TEXT PRIMARY KEY,
    seen               BIGINT NOT NULL,
    heartbeat_at       BIGINT NOT NULL
);
