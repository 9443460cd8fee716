-- The registry token service: repository visibility and per-day token usage.

-- Repositories hubkeyd knows the visibility of. A repository not listed here is private.
CREATE TABLE repositories (
    namespace          TEXT COLLATE "C" NOT NULL,
    name               TEXT COLLATE "C" NOT NULL,
    is_public          BOOLEAN NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- Uses of each token per UTC day (days since the Unix epoch), for usage charts.
CREATE TABLE token_usage (
    token_uuid         TEXT COLLATE "C" NOT NULL REFERENCES access_tokens(uuid) ON DELETE CASCADE,
    day                BIGINT NOT NULL,
    uses               BIGINT NOT NULL,
    PRIMARY KEY (token_uuid, day)
);
