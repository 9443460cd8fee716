-- The token list's order, whole: pages are read straight off the index, also when many tokens
-- share a creation time (the old index left ties to a sort of the account's every token).
CREATE INDEX access_tokens_user_order ON access_tokens(user_id, created_at DESC, uuid DESC);
DROP INDEX access_tokens_user;
