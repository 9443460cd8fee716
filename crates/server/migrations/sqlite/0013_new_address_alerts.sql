-- A token used from an address it was never used from is recorded as a `new_address` event
-- (issue 16, alerts), unless its owner turned that off for the token (a CI token used from
-- many addresses).
ALTER TABLE access_tokens ADD COLUMN new_address_alerts BOOLEAN NOT NULL DEFAULT TRUE;
-- Whether a token was ever used from an address: one probe per (token, address) pair the
-- access log's flush has not seen yet.
CREATE INDEX token_access_address ON token_access(token_uuid, address);
