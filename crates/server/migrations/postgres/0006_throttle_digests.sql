-- Throttling subjects become 16-byte digests (of a valid user name, an IPv4 address or an
-- IPv6 /64) instead of the raw name and address, so an attacker's input never sizes a row.
-- Rows in the old form are dropped: failures older than an hour no longer count anyway, and
-- a known address becomes known again at the account's next full sign-in from it.
DROP TABLE login_failures;
CREATE TABLE login_failures (
    subject            BYTEA NOT NULL,
    at                 BIGINT NOT NULL
);
-- The start-up load and the timed deletion both read by time.
CREATE INDEX login_failures_at ON login_failures(at);

DROP TABLE sign_in_addresses;
CREATE TABLE sign_in_addresses (
    account            BYTEA NOT NULL,
    address            BYTEA NOT NULL,
    last_at            BIGINT NOT NULL,
    PRIMARY KEY (account, address)
);
CREATE INDEX sign_in_addresses_last ON sign_in_addresses(last_at);

-- Wrong second-factor codes in a row per account, across challenges and restarts; only a
-- full sign-in deletes the row. From the tenth on, each attempt sets a wait (blocked_until).
CREATE TABLE second_factor_failures (
    user_id            TEXT COLLATE "C" PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    consecutive        BIGINT NOT NULL,
    last_at            BIGINT NOT NULL,
    blocked_until      BIGINT
);

-- Voiding an account's open challenges after too many wrong codes.
CREATE INDEX mfa_challenges_user ON mfa_challenges(user_id);
