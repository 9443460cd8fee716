-- Addresses each account fully signed in from (right password, and the second factor when
-- the account has one). The account's failure limit does not hold back a known address, so
-- guesses from many addresses cannot lock the real user out of the places they use.
CREATE TABLE sign_in_addresses (
    -- The throttling subjects: 'user:NAME' and 'ip:ADDR'.
    account            TEXT COLLATE "C" NOT NULL,
    address            TEXT COLLATE "C" NOT NULL,
    last_at            BIGINT NOT NULL,
    PRIMARY KEY (account, address)
);
CREATE INDEX sign_in_addresses_last ON sign_in_addresses(last_at);
