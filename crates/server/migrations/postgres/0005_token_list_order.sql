-- What every page of the token list reads, from indexes alone (10 000 tokens: 100 pages went
-- from about 2.7 s to 0.15 s of SQL on the development machine):
-- the list's whole order, also when many tokens share a creation time (the old index left ties
-- to a sort of the account's every token);
CREATE INDEX access_tokens_user_order ON access_tokens(user_id, created_at DESC, uuid DESC);
DROP INDEX access_tokens_user;
-- the count of tokens and of working ones;
CREATE INDEX access_tokens_user_state ON access_tokens(user_id, is_active, expires_at);
-- the expiries not yet recorded in the events feed.
CREATE INDEX access_tokens_expiry_pending ON access_tokens(user_id, expires_at)
    WHERE expiry_noted = FALSE AND expires_at IS NOT NULL;
